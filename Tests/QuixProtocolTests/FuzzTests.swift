import OrderedCollections
import QuixProtocol
import QuixTestSupport
import Testing

/// SplitMix64: a small seeded generator, so a failing case can be replayed from its seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("decoder fuzzing", .timeLimit(.minutes(3)))
struct FuzzTests {
    static let cases = 100_000

    /// Small seeds of real traffic: every golden vector below 64 KB.
    static let seeds: [[UInt8]] = {
        let files = Vectors.files.filter { $0 != "split" }
        return ((try? files.flatMap { try Vectors.messages($0).map(\.value) }) ?? []) + [
            Array(#"{"C":"JT-PaDa-1","K":"ParameterData","V":{"Numerics":{"a":[0,[1.5,1.0],1,-0.5]},"Strings":{"s":{"K":["x","y"],"V":[0,[0,0,1]]}},"Timestamps":[1,1,4,1]},"S":41,"E":143}"#.utf8)
        ]
    }()

    @Test("100,000 random and mutated inputs: typed errors or stable models, never a crash or a hang")
    func fuzz() throws {
        try #require(Self.seeds.count > 50, "the golden vectors must be there to mutate")
        var random = SeededGenerator(state: 0x5157_4958_4400_0001)
        var outcomes = (models: 0, raw: 0, unknown: 0, errors: 0)
        var merger = SplitMerger(maximumMessages: 8, maximumBytes: 1 << 20)
        for index in 0..<Self.cases {
            let input = Self.input(index, &random)
            // The columnar reader accepts exactly what the model reader accepts, with the same meaning.
            let general = Result { () throws(QuixProtocolError) in try QuixCodec.decode(input[...]) }
            let columnar = Result { () throws(QuixProtocolError) in try QuixCodec.decodeFrame(input[...]) }
            switch (general, columnar) {
            case (.success(let model), .success(let frame)):
                #expect(frame.encodedForComparison == model.encodedForComparison, "case \(index)")
            case (.failure(let expected), .failure(let found)):
                #expect(expected.code == found.code && expected.offset == found.offset, "case \(index): \(expected) vs \(found)")
            default:
                Issue.record("case \(index): the model reader gave \(general), the columnar one \(columnar)")
            }
            do {
                switch try QuixCodec.decode(input[...]) {
                case .model(let model):
                    outcomes.models += 1
                    // What we accept, we write back in a form we read again to the same bytes.
                    for codec in TimeseriesCodec.allCases {
                        let encoded = QuixCodec.encode(model, timeseriesCodec: codec)
                        guard case .model(let again) = try QuixCodec.decode(encoded[...]) else {
                            Issue.record("case \(index): re-encoded model is no model")
                            continue
                        }
                        #expect(QuixCodec.encode(again, timeseriesCodec: codec) == encoded, "case \(index) with \(codec)")
                    }
                case .raw: outcomes.raw += 1
                case .unknown: outcomes.unknown += 1
                case .frame: Issue.record("case \(index): decode gives models, not frames")
                }
            } catch {
                outcomes.errors += 1
                #expect(!error.detail.isEmpty)
            }
            _ = try? merger.add(input[...], partition: Int32(index % 3), key: [UInt8(index % 5)], offset: Int64(index))
        }
        // Every path was exercised, not only the error path.
        #expect(outcomes.models > 1_000 && outcomes.raw > 1_000 && outcomes.errors > 1_000, "\(outcomes)")
    }

    /// Case `index`: random bytes, or a golden vector mutated (bytes flipped, cut, spliced, or a
    /// JSON token swapped for another).
    static func input(_ index: Int, _ random: inout SeededGenerator) -> [UInt8] {
        if index % 10 == 0 {
            let lead: [UInt8] = [UInt8(ascii: "{"), 0x01, 0x3C, UInt8.random(in: 0...255, using: &random)]
            return [lead.randomElement(using: &random)!] + (0..<Int.random(in: 0..<200, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
        }
        var bytes = seeds.randomElement(using: &random)!
        let mutations = Int.random(in: 1...4, using: &random)
        for _ in 0..<mutations where !bytes.isEmpty {
            let at = Int.random(in: 0..<bytes.count, using: &random)
            switch Int.random(in: 0..<6, using: &random) {
            case 0: bytes[at] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &random)
            case 1: bytes.removeSubrange(at...)
            case 2: bytes.insert(UInt8.random(in: 0...255, using: &random), at: at)
            case 3:
                let tokens = [#"""#, "{", "}", "[", "]", ",", ":", "null", "NaN", "-", "1e999", #"\u"#, "99999999999999999999", "é"]
                bytes.insert(contentsOf: tokens.randomElement(using: &random)!.utf8, at: at)
            case 4: bytes.remove(at: at)
            default:
                let other = seeds.randomElement(using: &random)!
                let from = Int.random(in: 0..<other.count, using: &random)
                bytes.replaceSubrange(at..<min(bytes.count, at + 16), with: other[from..<min(other.count, from + 16)])
            }
        }
        return bytes
    }
}

extension DecodedMessage {
    /// Bytes that tell two decodings apart (NaN cells make the models unequal to themselves);
    /// time-series data as its frame (epoch folded into the timestamps).
    var encodedForComparison: [UInt8] {
        switch self {
        case .model(.timeseries(let data)): QuixCodec.encode(TimeseriesFrame(data))
        case .model(let model): QuixCodec.encode(model)
        case .frame(let frame): QuixCodec.encode(frame)
        case .unknown(let key, let codec, let payload): Array("\(key) \(codec)".utf8) + payload
        case .raw(let bytes): [0] + bytes
        }
    }
}
