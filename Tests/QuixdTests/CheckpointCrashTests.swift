import Foundation
import QuixKafka
import QuixProtocol
import QuixStreams
import Testing

/// The checkpoint crash test of the library: a child consumer (Tests/Programs/CheckpointProbe)
/// commits every 50 packages and holds rows in packet-size buffers; it is killed with SIGKILL at
/// random points and restarted. Afterwards no row is missing, not even rows a buffer held at a
/// kill, and a restart redelivers only packages at or after the committed offset.
@Suite("checkpoints survive SIGKILL", .timeLimit(.minutes(5)))
struct CheckpointCrashTests {
    static let streams = 20
    static let rowsPerStream = 150
    static let kills = 4

    @Test("4 kills at random points: no row lost, only uncommitted packages redelivered")
    func killAndRestart() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("crash", partitions: 4)
        try await produceRows(cluster)
        let origin = try await offsetsOfValues(cluster)
        #expect(origin.count == Self.streams * Self.rowsPerStream)

        let output = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: output) }
        let group = "crash-\(UUID().uuidString.prefix(8))"
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: group))
        let partitions = (Int32(0)..<4).map { TopicPartition("crash", $0) }
        var runs: [[Int]] = []  // the values each run released
        var committedAtKill: [[Int32: Int64]] = []
        var seen = 0
        for run in 0...Self.kills {
            let child = try startProbe(cluster: cluster, group: group, output: output)
            defer {  // a failed wait leaves no child behind
                if child.isRunning { kill(child.processIdentifier, SIGKILL) }
                child.waitUntilExit()
            }
            if run < Self.kills {
                let target = seen + Int.random(in: 100...700)
                try await waitFor("\(target) rows in run \(run)") { try released(output).count >= target }
                kill(child.processIdentifier, SIGKILL)
                child.waitUntilExit()
                let committed = try await probe.committed(partitions)
                committedAtKill.append(Dictionary(uniqueKeysWithValues: committed.map { ($0.partition, max($0.offset, 0)) }))
            } else {
                try await waitFor("every row") { Set(try released(output)).count == origin.count }
                kill(child.processIdentifier, SIGTERM)
                child.waitUntilExit()
            }
            let all = try released(output)
            runs.append(Array(all[seen...]))
            seen = all.count
        }

        let everything = runs.flatMap { $0 }
        let missing = Set(origin.keys).subtracting(everything)
        #expect(missing.isEmpty, "\(missing.count) rows lost, such as \(missing.sorted().prefix(10))")
        print("crash test: \(everything.count) rows released for \(origin.count), in runs of \(runs.map(\.count)); committed at the kills: \(committedAtKill)")
        for (index, values) in runs.enumerated().dropFirst() {
            let committed = committedAtKill[index - 1]
            let early = values.filter { value in origin[value].map { $0.offset < committed[$0.partition, default: 0] } ?? true }
            #expect(early.isEmpty, "run \(index) redelivered rows of committed packages: \(early.prefix(10)), committed \(committed)")
        }
        #expect(committedAtKill.last!.values.reduce(0, +) > 0, "nothing was ever committed")
        await probe.close()
    }

    /// 20 streams of 150 one-row packages each, interleaved; each stream then ends (which makes
    /// the consumer's buffers release their last rows). Value = stream * 1000 + row.
    private func produceRows(_ cluster: MockCluster) async throws {
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("crash")
        let streams = try (0..<Self.streams).map { try producer.createStream("s\($0)") }
        for row in 0..<Self.rowsPerStream {
            for (index, stream) in streams.enumerated() {
                try await stream.addTimestamp(nanoseconds: Int64(row + 1)).addValue("v", Double(index * 1_000 + row)).publish()
            }
        }
        for stream in streams { try await stream.close() }
        try await producer.close()
    }

    /// Where each value was written: its package's partition and offset.
    private func offsetsOfValues(_ cluster: MockCluster) async throws -> [Int: TopicPartitionOffset] {
        let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
        var total: Int64 = 0
        for partition in Int32(0)..<4 { total += try await consumer.watermarks(TopicPartition("crash", partition)).high }
        try consumer.assign((0..<4).map { TopicPartitionOffset("crash", $0, offset: KafkaOffset.beginning) })
        var origin: [Int: TopicPartitionOffset] = [:]
        var read: Int64 = 0
        for await event in consumer.events {
            guard case .messages(let batch) = event else { continue }
            for message in batch {
                read += 1
                guard case .model(.timeseries(let data)) = try QuixCodec.decode((message.value ?? [])[...]) else { continue }
                origin[Int(data.numericValues["v"]![0]!)] = TopicPartitionOffset(message.topicPartition, offset: message.offset)
            }
            if read >= total { break }
        }
        await consumer.close()
        return origin
    }

    private func startProbe(cluster: MockCluster, group: String, output: URL) throws -> Process {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("CheckpointProbe")
        let process = Process()
        process.executableURL = executable
        process.arguments = ["--brokers", cluster.bootstrapServers, "--topic", "crash", "--group", group, "--output", output.path]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    private func released(_ output: URL) throws -> [Int] {
        guard let text = try? String(contentsOf: output, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").map { Int($0.split(separator: " ")[1])! }
    }

    private func waitFor(_ what: String, _ condition: () throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(90)
        while try !condition() {
            guard clock.now < deadline else {
                Issue.record("timed out waiting for \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
