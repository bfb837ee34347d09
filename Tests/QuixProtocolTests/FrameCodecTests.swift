import Foundation
import OrderedCollections
import QuixTestSupport
import Testing

@testable import QuixProtocol

/// The columnar path (`QuixCodec.decodeFrame`, `QuixCodec.encode(frame)`, the .NET double text)
/// against the model path, which the golden vectors hold to quixstreams 0.5.7 byte for byte.
@Suite("frames straight to and from the wire")
struct FrameCodecTests {
    @Test("every golden timeseries message decodes to the frame of its model, and its frame encodes to the model's bytes", arguments: Vectors.files)
    func goldenVectors(file: String) throws {
        var frames = 0
        for message in try Vectors.messages(file) {
            guard case .model(.timeseries(let data)) = try QuixCodec.decode(message.value[...]) else { continue }
            guard case .frame(let frame) = try QuixCodec.decodeFrame(message.value[...]) else {
                Issue.record("\(file) offset \(message.record.offset): no frame")
                continue
            }
            #expect(DecodedMessage.frame(frame).encodedForComparison == DecodedMessage.frame(TimeseriesFrame(data)).encodedForComparison, "\(file) offset \(message.record.offset)")
            #expect(frame.timestamps == TimeseriesFrame(data).timestamps && frame.strings == data.stringValues && frame.binary == data.binaryValues)
            #expect(QuixCodec.encode(frame) == QuixCodec.encode(.timeseries(frame.timeseriesData)), "\(file) offset \(message.record.offset)")
            frames += 1
        }
        if ["basic", "timeseries_variants", "split"].contains(file) { #expect(frames > 0) }
    }

    @Test("random frames encode as their models do and decode back to themselves")
    func randomFrames() throws {
        var random = SystemRandomNumberGenerator()
        for round in 0..<2_000 {
            let frame = Self.randomFrame(&random)
            let encoded = QuixCodec.encode(frame)
            let expected = QuixCodec.encode(.timeseries(frame.timeseriesData))
            #expect(encoded == expected, "round \(round): \(String(decoding: encoded.prefix(300), as: UTF8.self))")
            guard case .frame(let decoded) = try QuixCodec.decodeFrame(encoded[...]) else {
                Issue.record("round \(round): no frame")
                continue
            }
            // NaN is not equal to itself: compare the texts.
            #expect(QuixCodec.encode(decoded) == encoded, "round \(round)")
        }
    }

    @Test("what the fast reader does not take goes the general way, with its tolerance and its errors")
    func generalShapes() throws {
        let payloads: [String] = [
            #"{ "Timestamps":[1,2],"NumericValues":{"a":[1.5,null]},"StringValues":{},"BinaryValues":{},"TagValues":{}}"#,
            #"{"timestamps":[1],"numericvalues":{"a":[2]}}"#,
            #"{"NumericValues":{"a":[2]},"Timestamps":[1]}"#,
            #"{"Epoch":100,"Timestamps":[1],"NumericValues":{"a":["NaN"]},"StringValues":{"s":["q\"x\u00e9"]},"BinaryValues":{},"TagValues":{}}"#,
            #"{"Timestamps":[1.0],"NumericValues":{"a":[1e3],"a":[2]},"StringValues":{},"BinaryValues":{},"TagValues":{}}"#,
        ]
        for payload in payloads {
            let value = Self.envelope(payload)
            guard case .model(.timeseries(let data)) = try QuixCodec.decode(value[...]) else {
                Issue.record("not timeseries data: \(payload)")
                continue
            }
            // Compared as text: NaN is not equal to itself.
            #expect(try QuixCodec.decodeFrame(value[...]).encodedForComparison == DecodedMessage.frame(TimeseriesFrame(data)).encodedForComparison, "\(payload)")
        }
        let broken = Self.envelope(#"{"Timestamps":[1,2],"NumericValues":{"a":[1]},"StringValues":{},"BinaryValues":{},"TagValues":{}}"#)
        do {
            _ = try QuixCodec.decodeFrame(broken[...])
            Issue.record("a column of 1 cell for 2 timestamps was accepted")
        } catch {
            #expect(error.code == .inconsistentData, "the general reader's error: \(error)")
        }
    }

    @Test(".NET's round-trip text of doubles, fast paths included, equals the reference form on a million values")
    func doubleText() {
        var random = SystemRandomNumberGenerator()
        var values: [Double] = [
            0.1, 0.0001, 0.00001, 1e15, 1e16, 123456789012345.6, 1e-5, .leastNonzeroMagnitude, .greatestFiniteMagnitude, .leastNormalMagnitude,
            12.345000000000001, 0.30000000000000004, 1.5e20, 9007199254740992, 9007199254740994, 2251799813685247.5, 100, -0.0, 0, -1e-7,
        ]
        for _ in 0..<400_000 { values.append(Double(bitPattern: random.next())) }
        for _ in 0..<300_000 { values.append(Double(Int64.random(in: -20_000...20_000, using: &random)) / 1000) }
        for _ in 0..<300_000 {
            let digits = Int.random(in: 1...8, using: &random)
            values.append(Double(Int64.random(in: -99_999_999...99_999_999, using: &random)) / pow(10, Double(digits)))
        }
        var mismatches = 0
        for value in values where value.isFinite {
            var fast: [UInt8] = []
            DotNetDouble.append(value, to: &fast)
            let reference = Self.referenceText(value)
            if fast != reference {
                mismatches += 1
                if mismatches < 10 { Issue.record("\(value.bitPattern): \(String(decoding: fast, as: UTF8.self)) != \(String(decoding: reference, as: UTF8.self))") }
            }
            #expect(Double(String(decoding: fast, as: UTF8.self)) == value || mismatches > 0)
        }
        #expect(mismatches == 0)
    }

    @Test("integers are written as Swift prints them: every digit count, chunk edges, the extremes and random values")
    func integerText() {
        var random = SystemRandomNumberGenerator()
        var values: [Int64] = [0, 1, -1, 9, 10, 99, 100, Int64.max, Int64.min, Int64.min + 1, 1_700_000_000_000_000_000]
        var power: Int64 = 1
        for _ in 0..<18 {
            power *= 10
            values += [power - 1, power, power + 1, -power, -(power - 1)]
        }
        for _ in 0..<200_000 { values.append(Int64(bitPattern: random.next())) }
        for _ in 0..<100_000 { values.append(Int64.random(in: -100_000_000...100_000_000, using: &random)) }
        var mismatches = 0
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: JSONText.maximumIntegerLength) { buffer in
            for value in values {
                let count = JSONText.writeInteger(value, to: buffer.baseAddress!)
                let text = String(decoding: UnsafeBufferPointer(rebasing: buffer[..<count]), as: UTF8.self)
                if text != String(value) {
                    mismatches += 1
                    if mismatches < 10 { Issue.record("\(value) written as \(text)") }
                }
            }
        }
        #expect(mismatches == 0)
    }

    @Test("numbers as the fast reader takes them (up to seven digits each side of the point) and around that form read as Swift parses their text")
    func numberText() throws {
        var texts = [
            "0", "-0", "7", "-7", "1234567", "12345678", "0.5", "-0.001", "00.5", "1.0", "9999999.9999999", "1.2345678", "1.23456789",
            "0.0000001", "12345678.5", "1e5", "1.5E-3", "-1.5e+3", "123456.7", "-9.999", "0.1", "0.3",
        ]
        var random = SystemRandomNumberGenerator()
        func digits(_ count: Int) -> String { String((0..<count).map { _ in Character(String(Int.random(in: 0...9, using: &random))) }) }
        for _ in 0..<60_000 {
            var text = (Bool.random(using: &random) ? "-" : "") + digits(Int.random(in: 1...9, using: &random))
            if Int.random(in: 0..<4, using: &random) > 0 { text += "." + digits(Int.random(in: 1...9, using: &random)) }
            texts.append(text)
        }
        var mismatches = 0
        for start in stride(from: 0, to: texts.count, by: 10) {
            let cells = texts[start..<min(start + 10, texts.count)]
            let payload = """
                {"Timestamps":[\((0..<cells.count).map(String.init).joined(separator: ","))],"NumericValues":{"a":[\(cells.joined(separator: ","))]},\
                "StringValues":{},"BinaryValues":{},"TagValues":{}}
                """
            guard case .frame(let frame) = try QuixCodec.decodeFrame(Self.envelope(payload)[...]), let column = frame.numeric["a"] else {
                Issue.record("no frame of \(payload)")
                continue
            }
            for (text, value) in zip(cells, column.values) where Double(text)!.bitPattern != value.bitPattern {
                mismatches += 1
                if mismatches < 10 { Issue.record("\(text) read as \(value)") }
            }
        }
        #expect(mismatches == 0)
    }

    // MARK: Helpers

    /// .NET's layout of Swift's shortest round-trip digits, written plainly from `description`.
    static func referenceText(_ value: Double) -> [UInt8] {
        if value == 0 { return Array((value.sign == .minus ? "-0.0" : "0.0").utf8) }
        var text = Array(value.magnitude.description.utf8)
        var exponent = 0
        if let e = text.firstIndex(of: UInt8(ascii: "e")) {
            exponent = Int(String(decoding: text[(e + 1)...], as: UTF8.self))!
            text.removeSubrange(e...)
        }
        let point = text.firstIndex(of: UInt8(ascii: ".")) ?? text.count
        var digits = text.filter { $0 != UInt8(ascii: ".") }
        var first = exponent + point - 1
        while digits.first == UInt8(ascii: "0") && digits.count > 1 {
            digits.removeFirst()
            first -= 1
        }
        while digits.last == UInt8(ascii: "0") && digits.count > 1 { digits.removeLast() }
        var result: [UInt8] = value.sign == .minus ? [UInt8(ascii: "-")] : []
        if first > -5 && first < 15 {
            if first < 0 {
                result += Array("0.".utf8) + Array(repeating: UInt8(ascii: "0"), count: -first - 1) + digits
            } else if digits.count <= first + 1 {
                result += digits + Array(repeating: UInt8(ascii: "0"), count: first + 1 - digits.count) + Array(".0".utf8)
            } else {
                result += digits[..<(first + 1)] + [UInt8(ascii: ".")] + digits[(first + 1)...]
            }
        } else {
            result.append(digits[0])
            if digits.count > 1 { result += [UInt8(ascii: ".")] + digits[1...] }
            let magnitude = String(abs(first))
            result += Array("E\(first < 0 ? "-" : "+")\(magnitude.count < 2 ? "0" : "")\(magnitude)".utf8)
        }
        return result
    }

    /// The envelope `{"C":"JT","K":"ParameterData","V":<payload>,"S":…,"E":…}` with S and E right.
    static func envelope(_ payload: String) -> [UInt8] {
        let prefix = #"{"C":"JT","K":"ParameterData","V":"#
        let start = prefix.utf8.count
        return Array((prefix + payload + #","S":\#(start),"E":\#(start + payload.utf8.count)}"#).utf8)
    }

    static func randomFrame(_ random: inout SystemRandomNumberGenerator) -> TimeseriesFrame {
        let rows = Int.random(in: 0...12, using: &random)
        var frame = TimeseriesFrame(timestamps: (0..<rows).map { _ in Int64.random(in: Int64.min...Int64.max, using: &random) })
        let names = ["x", "gForceX", "with \"quote\"", "tab\there", "é中", "line\u{2028}sep", "nul\u{0}", "back\\slash", "long name of a parameter"]
        for name in names.shuffled(using: &random).prefix(Int.random(in: 0...4, using: &random)) {
            frame[name] = NumericColumn((0..<rows).map { _ -> Double? in
                switch Int.random(in: 0..<8, using: &random) {
                case 0: return nil
                case 1: return Double(bitPattern: random.next())
                case 2: return [Double.nan, .infinity, -.infinity, 0, -0.0].randomElement(using: &random)!
                case 3: return Double(Int.random(in: -1_000_000...1_000_000, using: &random))
                default: return Double(Int.random(in: -20_000...20_000, using: &random)) / 1000
                }
            })
        }
        let texts = ["car-1", "", "q\"x", "é中文", "\u{85}\u{2028}\u{2029}", "ctl\u{1}\n\r\t\u{8}\u{c}", String(repeating: "long ", count: 20)]
        for name in names.shuffled(using: &random).prefix(Int.random(in: 0...2, using: &random)) {
            frame.setStrings(name, (0..<rows).map { _ in Bool.random(using: &random) ? texts.randomElement(using: &random) : nil })
        }
        for name in names.shuffled(using: &random).prefix(Int.random(in: 0...2, using: &random)) {
            frame.setTags(name, (0..<rows).map { _ in Bool.random(using: &random) ? texts.randomElement(using: &random) : nil })
        }
        for name in names.shuffled(using: &random).prefix(Int.random(in: 0...1, using: &random)) {
            frame.setBinary(name, (0..<rows).map { _ in
                Bool.random(using: &random) ? (0..<Int.random(in: 0...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) } : nil
            })
        }
        return frame
    }
}
