// The consumer of the checkpoint crash test (Tests/QuixdTests/CheckpointCrashTests.swift): it
// reads a topic with a consumer group, commits every N packages, holds rows in a packet-size
// buffer per stream, and appends each released row as "<stream> <value>" to a file, one write
// per release, so that a SIGKILL leaves whole releases behind. Each release waits a little: the
// runtime is fast enough to read the whole topic between two looks of the test.
import ArgumentParser
import Foundation
import QuixStreams

@main
struct CheckpointProbe: AsyncParsableCommand {
    @Option(help: "Bootstrap servers.") var brokers: String
    @Option(help: "The topic to read.") var topic: String
    @Option(help: "The consumer group.") var group: String
    @Option(help: "The file the released rows are appended to.") var output: String
    @Option(help: "Commit after this many packages.") var commitEvery = 50
    @Option(help: "Rows a stream's buffer holds before it releases them.") var packetSize = 7
    @Option(help: "Milliseconds each release waits, so that a kill lands mid-stream.") var pause = 5

    func run() async throws {
        let file = open(output, O_WRONLY | O_APPEND | O_CREAT, 0o644)
        guard file >= 0 else { throw ValidationError("cannot open \(output): errno \(errno)") }
        let client = KafkaStreamingClient(brokers: brokers) {
            $0.librdkafka["session.timeout.ms"] = "6000"
            $0.librdkafka["heartbeat.interval.ms"] = "500"
        }
        let consumer = try TopicConsumer(
            client: client, topic: topic, group: group, startFrom: .earliest,
            commit: CommitOptions(everyPackages: commitEvery, interval: nil))
        consumer.onStreamReceived { stream in
            stream.createBuffer(TimeseriesBufferConfiguration(packetSize: packetSize)).onReleased { stream, frame in
                try await Task.sleep(for: .milliseconds(pause))
                let lines = (0..<frame.rowCount).map { "\(stream.streamID) \(Int(frame["v"]![$0]!))\n" }.joined()
                let written = lines.utf8CString.withUnsafeBufferPointer { write(file, $0.baseAddress, $0.count - 1) }
                guard written == lines.utf8.count else { throw ValidationError("short write to \(output): errno \(errno)") }
            }
        }
        try await consumer.run()
    }
}
