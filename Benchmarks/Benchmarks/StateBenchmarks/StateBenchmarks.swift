// State get+put per message, as a handler does it (StreamState.update), with a checkpoint (one
// LMDB write transaction, fsynced) every 5,000 messages: 10,000 streams with 1 key each, and
// with 100 keys each (1,000,000 entries). A sample is 1,000,000 messages (scaled iterations), so
// the throughput is messages per second, checkpoints included.
//
//   swift package --package-path Benchmarks benchmark --target StateBenchmarks
import Benchmark
import Foundation
import QuixStreams

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.throughput, .wallClock, .cpuTotal, .mallocCountTotal], scalingFactor: .mega, maxDuration: .seconds(20),
        maxIterations: 5)

    for keysPerStream in [1, 100] {
        Benchmark("get+put, 10,000 streams × \(keysPerStream) keys, checkpoint every 5,000") { benchmark in
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("state-bench-\(UUID().uuidString)").path
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let state = try LocalState(directory: directory)
            let streams = (0..<10_000).map { state.stream("stream-\($0)") }
            let keys = (0..<keysPerStream).map { "key-\($0)" }
            // Every entry exists on disk before the measurement.
            for stream in streams { for key in keys { stream.set(key, 0.0) } }
            try state.checkpoint(offset: 0)

            var message = 0
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations {
                let stream = streams[message % streams.count]
                try stream.update(keys[(message / streams.count) % keys.count], default: 0.0) { $0 += 1 }
                message += 1
                if message % 5_000 == 0 { try state.checkpoint(offset: Int64(message)) }
            }
            benchmark.stopMeasurement()
        }
    }
}
