// Decode and encode of 0.5 timeseries data, the shapes of the issue and of the shared bench:
// 10 rows × 3 numeric parameters + 1 tag (gen.py's message, byte-identical to quixstreams 0.5.7)
// and 1 row × 50 numeric parameters. Both paths: the model (`QuixCodec.decode`, what the 0.5
// API hands out) and the frame (`QuixCodec.decodeFrame`, what streams and pipelines run on).
//
//   swift package --package-path Benchmarks benchmark --target ProtocolBenchmarks
import Benchmark
import OrderedCollections
import QuixProtocol

/// gen.py's `_val`: three decimals in -10..10.
func generatedValue(_ seed: Int) -> Double { Double(seed % 20001 - 10000) / 1000 }

/// gen.py's `make_value(0, 0, 10)`: rows at BASE + i ms, gForceX/Y/Z, tag vehicle = car-0.
/// Encoded, it is byte-identical to what quixstreams 0.5.7 publishes for the same rows.
func tenByThree() -> TimeseriesData {
    let base: Int64 = 1_700_000_000_000_000_000
    var data = TimeseriesData(timestamps: (0..<10).map { base + Int64($0) * 1_000_000 })
    data.numericValues["gForceX"] = (0..<10).map { generatedValue($0 * 104729) }
    data.numericValues["gForceY"] = (0..<10).map { generatedValue($0 * 130363 + 17) }
    data.numericValues["gForceZ"] = (0..<10).map { generatedValue($0 * 15485863 + 5) }
    data.tagValues["vehicle"] = Array(repeating: "car-0", count: 10)
    return data
}

/// One row of 50 parameters p0...p49, values as gen.py makes them.
func oneByFifty() -> TimeseriesData {
    var data = TimeseriesData(timestamps: [1_700_000_000_000_000_000])
    for index in 0..<50 { data.numericValues["p\(index)"] = [generatedValue(index * 104729 + 3)] }
    return data
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .cpuTotal, .mallocCountTotal],
        maxDuration: .seconds(3), maxIterations: 1_000_000)

    for (name, data) in [("10x3+tag", tenByThree()), ("1x50", oneByFifty())] {
        let model = QuixModel.timeseries(data)
        let message = QuixCodec.encode(model)

        Benchmark("decode \(name) (\(message.count) B)") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try QuixCodec.decode(message[...]))
            }
        }
        Benchmark("encode \(name) (\(message.count) B)") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(QuixCodec.encode(model))
            }
        }
        Benchmark("decode+encode \(name) (\(message.count) B)") { benchmark in
            for _ in benchmark.scaledIterations {
                guard case .model(let decoded) = try QuixCodec.decode(message[...]) else { fatalError("benchmark input is a model") }
                blackHole(QuixCodec.encode(decoded))
            }
        }
        Benchmark("frame decode \(name) (\(message.count) B)") { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(try QuixCodec.decodeFrame(message[...]))
            }
        }
        Benchmark("frame decode+encode \(name) (\(message.count) B)") { benchmark in
            for _ in benchmark.scaledIterations {
                guard case .frame(let frame) = try QuixCodec.decodeFrame(message[...]) else { fatalError("benchmark input is a frame") }
                blackHole(QuixCodec.encode(frame))
            }
        }
    }
}
