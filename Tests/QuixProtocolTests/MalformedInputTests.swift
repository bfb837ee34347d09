import Foundation
import OrderedCollections
import QuixProtocol
import QuixTestSupport
import Testing

/// Decodes a whole value, or returns the typed error.
private func outcome(_ text: String) -> Result<DecodedMessage, QuixProtocolError> {
    Result { () throws(QuixProtocolError) in try QuixCodec.decode(Array(text.utf8)[...]) }
}

/// An envelope whose V is the base64 of `payload`, so the payload can be broken while the
/// envelope stays valid JSON.
private func base64Envelope(_ key: String, _ payload: String) -> String {
    envelope(key, "\"" + Data(payload.utf8).base64EncodedString() + "\"")
}

private func envelope(_ key: String, _ payload: String, codec: String = "JT") -> String {
    let prefix = #"{"C":"\#(codec)","K":"\#(key)","V":"#
    let start = prefix.utf8.count
    return prefix + payload + #","S":\#(start),"E":\#(start + payload.utf8.count)}"#
}

@Suite("what the reference consumer accepts, and malformed input")
struct MalformedInputTests {
    @Test("the consumer-acceptance cases classify as the reference does, or fail with a named error")
    func acceptanceCases() throws {
        let cases = try Vectors.acceptanceCases()
        /// The case whose name starts with `code` (`c01`, ...).
        func acceptanceCase(_ code: String) throws -> (key: [UInt8]?, values: [[UInt8]]) {
            try #require(cases.first { $0.key.hasPrefix(code + "-") }?.value, "case \(code)")
        }
        func decode(_ code: String) throws -> Result<DecodedMessage, QuixProtocolError> {
            let value = try #require(try acceptanceCase(code).values.first, "case \(code)")
            return Result { () throws(QuixProtocolError) in try QuixCodec.decode(value[...]) }
        }
        func model(_ name: String) throws -> QuixModel? {
            if case .success(.model(let model)) = try decode(name) { model } else { nil }
        }
        guard case .success(.raw) = try decode("c01") else { Issue.record("c01 is raw"); return }
        #expect(try model("c02") != nil)
        if case .timeseries(let data) = try model("c03") {
            #expect(data.numericValues.values.first == [1.0, nil])
        } else { Issue.record("c03") }
        #expect(try model("c04") != nil)
        if case .success(.unknown(let key, _, _)) = try decode("c05") { #expect(key == "Foo") } else { Issue.record("c05") }
        if case .success(.unknown(_, let codec, _)) = try decode("c06") { #expect(codec == "ZZ") } else { Issue.record("c06") }
        guard case .success(.raw) = try decode("c07") else { Issue.record("c07 is raw"); return }
        #expect(try model("c09") != nil)
        #expect(try model("c10") != nil)
        #expect(try model("c13") == .streamEnd(.aborted))
        #expect(try model("c14") == .streamEnd(.terminated))
        if case .failure(let error) = try decode("c15") { #expect(error.code == .wrongType) } else { Issue.record("c15 must fail") }
        if case .failure(let error) = try decode("c16") { #expect(error.code == .missingMember) } else { Issue.record("c16 must fail") }
        // The reference's raw callback takes a column shorter than Timestamps; we refuse it, by name.
        if case .failure(let error) = try decode("c17") { #expect(error.code == .inconsistentData) } else { Issue.record("c17 must fail") }
        #expect(QuixCodec.streamID(fromKey: try acceptanceCase("c18").key?[...]) == "c18-a-b")
        #expect(try model("c19") != nil)
        if case .timeseries(let data) = try model("c21") {
            #expect(data.numericValues.values.allSatisfy { $0.allSatisfy { $0?.isNaN == true } })
        } else { Issue.record("c21") }
        if case .success(.unknown(let key, _, _)) = try decode("c22") { #expect(key == "EventData") } else { Issue.record("c22") }
        #expect(try model("c23") != nil)
        #expect(try model("c24") != nil)
        if case .failure(let error) = try decode("c26") { #expect(error.code == .invalidOffsets) } else { Issue.record("c26 must fail") }
        if case .success(.unknown(_, let codec, _)) = try decode("c27") { #expect(codec == "J") } else { Issue.record("c27") }
        #expect(QuixCodec.streamID(fromKey: nil) == "NO_STREAM_ID")
        #expect(try model("c29") != nil)
        if case .timeseries(let data) = try model("c30") { #expect(data.epoch == 1000) } else { Issue.record("c30") }
    }

    @Test("each kind of malformed input gives the error that names it", arguments: [
        ("", QuixProtocolError.Code.truncated),
        (base64Envelope("ParameterData", #"{"Timestamps":[1,2"#), .truncated),
        (base64Envelope("ParameterData", #"{"Timestamps":[1,2]} trailing"#), .unexpectedToken),
        (envelope("ParameterData", #"{"Timestamps":"notalist"}"#), .wrongType),
        (envelope("ParameterData", #"{"Timestamps":[1],"NumericValues":{"x":["abc"]}}"#), .wrongType),
        (envelope("ParameterData", #"{"Timestamps":[1,2],"NumericValues":{"x":[1.0]}}"#), .inconsistentData),
        (envelope("ParameterData", #"{"Timestamps":[99999999999999999999]}"#), .invalidNumber),
        (envelope("ParameterData", #"{"NumericValues":{}}"#), .missingMember),
        (envelope("ParameterData", #"{"Timestamps":[1],"BinaryValues":{"b":["!!!!"]}}"#), .invalidBase64),
        (envelope("StreamEnd", #"{"StreamEndType":"Exploded"}"#), .unknownEnumValue),
        (envelope("StreamEnd", #"{"StreamEndType":7}"#), .unknownEnumValue),
        (envelope("StreamProperties", #"{"Name":"\ud800x"}"#), .invalidUTF8),
        (envelope("ParameterData", #"{"Numerics":{"a":[5,1.0]},"Timestamps":[1]}"#, codec: "JT-PaDa-1"), .inconsistentData),
        (envelope("ParameterData", #"{"Strings":{"s":{"K":["x"],"V":[0,3]}},"Timestamps":[1]}"#, codec: "JT-PaDa-1"), .inconsistentData),
        (#"{"C":"JT","K":"StreamEnd","V":{},"S":31,"E":32}"#, .invalidOffsets),
        (#"{"C":"JT","K":"StreamEnd","V":{},"S":30,"E":99}"#, .invalidOffsets),
        (#"{"C":"JT","K":"StreamEnd","V":"e30=","S":30,"E":35}"#, .invalidOffsets),
        (#"{"C":"JT","K":"StreamEnd","V":"e30","S":30,"E":35}"#, .invalidBase64),
    ])
    func malformed(input: String, expected: QuixProtocolError.Code) {
        guard case .failure(let error) = outcome(input) else {
            Issue.record("accepted: \(input.prefix(120))")
            return
        }
        #expect(error.code == expected, "\(error)")
        #expect(!error.detail.isEmpty)
    }

    @Test("a broken envelope is raw data, as the reference reads it, with the reason")
    func brokenEnvelopeIsRaw() throws {
        let broken = Array(#"{"C":"JT","K":"ParameterData","V":{"Timestamps":[1,2"#.utf8)
        guard case .raw(let reason) = try TransportPackage.decode(broken[...]) else { Issue.record("not raw"); return }
        #expect(reason?.code == .truncated)
        #expect(try QuixCodec.decode(broken[...]) == .raw(broken))
    }

    @Test("invalid UTF-8 bytes in a string are refused")
    func invalidUTF8Bytes() {
        var bytes = Array(envelope("StreamProperties", #"{"Name":"ab"}"#).utf8)
        let index = bytes.indices.first { bytes[$0] == UInt8(ascii: "a") && bytes[$0 + 1] == UInt8(ascii: "b") }!
        bytes[index] = 0xFF
        let result = Result { () throws(QuixProtocolError) in try QuixCodec.decode(bytes[...]) }
        guard case .failure(let error) = result else { Issue.record("accepted invalid UTF-8"); return }
        #expect(error.code == .invalidUTF8)
    }

    @Test("binary envelopes that lie about their lengths are refused")
    func brokenBinaryEnvelopes() throws {
        let good = QuixCodec.encode(.streamEnd(.aborted), timeseriesCodec: .protobuf)
        guard case .model(.streamEnd(.aborted)) = try QuixCodec.decode(good[...]) else { Issue.record("the good one"); return }
        for length in 1..<good.count {
            let result = Result { () throws(QuixProtocolError) in try QuixCodec.decode(good[..<length]) }
            guard case .failure = result else { Issue.record("a binary envelope cut at \(length) was accepted"); continue }
        }
        var lying = good
        lying[lying.count - 6] = 0x7F  // the payload length
        #expect(throws: QuixProtocolError.self) { try QuixCodec.decode(lying[...]) }
    }

    @Test("split parts: merged in any order, a duplicate ignored, a missing part named, streams kept apart")
    func splitMerging() throws {
        let envelope = QuixCodec.encode(.timeseries(TimeseriesData(timestamps: [1], binaryValues: ["b": [Array(repeating: 7, count: 2_500)]])))
        let parts = try MessageSplit.split(envelope, messageID: 9, maximumSize: 1_000)
        #expect(parts.count == 4 && parts.allSatisfy { $0.count <= 1_000 })

        var merger = SplitMerger()
        let order = [2, 0, 0, 1, 3]  // out of order, part 0 twice
        var merged: [UInt8]?
        for (step, index) in order.enumerated() {
            let outcome = try merger.add(parts[index][...], partition: 0, key: [1], offset: Int64(10 + index))
            if case .merged(let bytes, let firstOffset, let parts) = outcome {
                #expect(parts == 4)
                #expect(step == order.count - 1)
                #expect(firstOffset == 10)
                merged = bytes
            }
        }
        #expect(merged == envelope)

        // Another stream's part with the same message id does not mix in.
        _ = try merger.add(parts[0][...], partition: 0, key: [1], offset: 0)
        _ = try merger.add(parts[1][...], partition: 0, key: [2], offset: 0)
        #expect(merger.pendingCount == 2)
        #expect(merger.hasPending(partition: 0, key: [1]))
        let missing = #expect(throws: QuixProtocolError.self) { try merger.add(parts[3][...], partition: 0, key: [1], offset: 3) }
        #expect(missing?.code == .invalidSplit)
        #expect(missing?.detail.contains("missing parts [1, 2]") == true, "\(String(describing: missing))")
        #expect(merger.pendingCount == 1)

        // Bounded: the oldest incomplete message goes first, and is reported.
        var bounded = SplitMerger(maximumMessages: 2)
        let clock = ContinuousClock.now
        for id in 0..<3 {
            let part = try MessageSplit.split(envelope, messageID: UInt32(id), maximumSize: 1_000)[0]
            _ = try bounded.add(part[...], partition: 0, key: [UInt8(id)], offset: 0, now: clock + .seconds(id))
        }
        #expect(bounded.pendingCount == 2)
        #expect(bounded.takeDropped().count == 1)
        bounded.expire(now: clock + .seconds(120))
        #expect(bounded.pendingCount == 0)
        #expect(bounded.takeDropped().count == 2)

        // Bounded in bytes too: oversized parts cannot pile up past the limit.
        var small = SplitMerger(maximumMessages: 50, maximumBytes: 2_500)
        let big = try MessageSplit.split(Array(repeating: 1, count: 9_000), messageID: 5, maximumSize: 1_000)
        for (index, part) in big.dropLast().enumerated() {
            _ = try small.add(part[...], partition: 0, key: [9], offset: Int64(index))
        }
        #expect(small.pendingCount == 0, "a message over the byte limit is evicted, not kept")
        #expect(small.takeDropped().first?.detail.contains("evicted") == true)

        #expect(throws: QuixProtocolError.self) { try MessageSplit.split(Array(repeating: 0, count: 256 * 100), messageID: 1, maximumSize: 100) }
    }
}
