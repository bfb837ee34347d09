// The per-message state work of a W2 pipeline (a running sum per stream), for instruction
// counts under callgrind (Benchmarks/callgrind.sh StateWorkload): for each message, read one
// stream's sum and store the new one; a checkpoint (an LMDB commit) every 5,000 messages.
import Foundation
import QuixStreams

let count = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1])! : 10_000
let directory = FileManager.default.temporaryDirectory.appendingPathComponent("state-workload-\(UUID().uuidString)").path
defer { try? FileManager.default.removeItem(atPath: directory) }
let state = try LocalState(directory: directory)
let streams = (0..<50).map { "stream-\($0)" }
for (index, stream) in streams.enumerated() { state.stream(stream, store: "sum").set("value", Double(index)) }
try state.checkpoint(offset: 0)
var total = 0.0
for message in 0..<count {
    // As the pipeline does: the stream's state in the stage's store, then get and set.
    let stream = state.stream(streams[message % streams.count], store: "sum")
    let sum = (try stream.get("value", as: Double.self) ?? 0) + Double(message % 7) / 1000
    stream.set("value", sum)
    total += sum
    if message % 5_000 == 4_999 { try state.checkpoint(offset: Int64(message)) }
}
print("\(count) messages, total \(total)")
