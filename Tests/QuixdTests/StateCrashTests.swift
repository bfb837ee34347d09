import Foundation
import QuixKafka
import QuixStreams
import Testing

/// The state crash test: the RunningSum example keeps per-stream running sums in LMDB state,
/// checkpointed with its input offsets. It is killed with SIGKILL at 10 random points of
/// 100,000 messages and restarted each time; at the end every stream's stored sum is exactly
/// the sum of its input: no message counted twice, none missed.
@Suite("state survives SIGKILL", .timeLimit(.minutes(8)))
struct StateCrashTests {
    static let streams = 20
    static let rowsPerStream = 5_000
    static let partitions: Int32 = 8
    static let kills = 10

    @Test("partitions move to a replica with its own directory: it restores from the changelog and the sums stay exact")
    func movingPartitions() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("sums-in", partitions: Int(Self.partitions))
        try cluster.createTopic("sums-out", partitions: Int(Self.partitions))
        let expected = try await produceRows(cluster, rows: 1_000)
        let total = try await endOffsets(cluster, "sums-in")
        let group = "moving-\(UUID().uuidString.prefix(8))"
        try cluster.createTopic("\(group)-sums-in-changelog", partitions: Int(Self.partitions))
        let directories = (0..<2).map { FileManager.default.temporaryDirectory.appendingPathComponent("replica-\($0)-\(UUID().uuidString)").path }
        defer { for directory in directories { try? FileManager.default.removeItem(atPath: directory) } }

        let first = try startRunningSum(cluster: cluster, group: group, stateDir: directories[0])
        defer { kill(first.processIdentifier, SIGKILL) }
        try await waitFor("the first replica's output", first) { try await sum(endOffsets(cluster, "sums-out")) >= 4_000 }
        // A second replica joins: a rebalance moves partitions to it, and it restores them.
        let second = try startRunningSum(cluster: cluster, group: group, stateDir: directories[1])
        defer { kill(second.processIdentifier, SIGKILL) }
        try await waitFor("the second replica's state", second) {
            !((try? StateInspector.partitions(under: directories[1])) ?? []).isEmpty
        }
        try await waitFor("more output", second) { try await sum(endOffsets(cluster, "sums-out")) >= 10_000 }
        // The first replica dies: the second gets every partition and restores the first's.
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: group))
        let inputs = (0..<Self.partitions).map { TopicPartition("sums-in", $0) }
        try await waitFor("every input committed", second) {
            try await probe.committed(inputs).allSatisfy { $0.offset == total[$0.topicPartition] }
        }
        await probe.close()
        kill(second.processIdentifier, SIGTERM)
        second.waitUntilExit()

        let dump = try await runQuixd(["state", "dump", "--dir", directories[1], "--format", "json"])
        var stored: [String: Double] = [:]
        for line in dump.output.split(separator: "\n") {
            let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            if entry["key"] as? String == "gForceX_sum" { stored[entry["stream"] as! String] = entry["value"] as? Double }
        }
        #expect(stored == expected, "the replica that ends with every partition holds every exact sum")
        let partitions = try StateInspector.partitions(under: directories[1]).count
        #expect(partitions == Int(Self.partitions), "the second replica has every partition's state")
    }

    @Test("10 kills over 100,000 messages: every stream's sum is exact")
    func killAndRestart() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("sums-in", partitions: Int(Self.partitions))
        try cluster.createTopic("sums-out", partitions: Int(Self.partitions))
        let started = ContinuousClock.now
        let expected = try await produceRows(cluster, rows: Self.rowsPerStream)
        print("state crash test: produced in \(ContinuousClock.now - started)")
        let total = try await endOffsets(cluster, "sums-in")

        let stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("state-crash-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: stateDir) }
        let group = "sums-\(UUID().uuidString.prefix(8))"
        try cluster.createTopic("\(group)-sums-in-changelog", partitions: Int(Self.partitions))  // the mock cannot create it
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: group))
        let inputs = (0..<Self.partitions).map { TopicPartition("sums-in", $0) }
        var outputAtKill: [Int64] = []
        for run in 0...Self.kills {
            let child = try startRunningSum(cluster: cluster, group: group, stateDir: stateDir.path)
            defer {  // a failed wait leaves no child behind
                if child.isRunning { kill(child.processIdentifier, SIGKILL) }
                child.waitUntilExit()
            }
            if run < Self.kills {
                let target = (outputAtKill.last ?? 0) + Int64.random(in: 2_000...9_000)
                try await waitFor("output \(target) in run \(run)", child) { try await sum(endOffsets(cluster, "sums-out")) >= target }
                kill(child.processIdentifier, SIGKILL)
                child.waitUntilExit()
                outputAtKill.append(try await sum(endOffsets(cluster, "sums-out")))
            } else {
                try await waitFor("every input committed", child) {
                    let committed = try await probe.committed(inputs)
                    return committed.allSatisfy { $0.offset == total[$0.topicPartition] }
                }
                kill(child.processIdentifier, SIGTERM)
                child.waitUntilExit()
            }
        }
        await probe.close()
        print("state crash test: processed in \(ContinuousClock.now - started)")

        let dump = try await runQuixd(["state", "dump", "--dir", stateDir.path, "--format", "json"])
        #expect(dump.status == 0, "\(dump.error)")
        var stored: [String: Double] = [:]
        for line in dump.output.split(separator: "\n") {
            let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            if entry["key"] as? String == "gForceX_sum" { stored[entry["stream"] as! String] = entry["value"] as? Double }
        }
        #expect(stored == expected, "stored sums differ from the input's sums")
        let output = try await sum(endOffsets(cluster, "sums-out"))
        print("state crash test: output messages at the kills \(outputAtKill), at the end \(output) for \(Self.streams * Self.rowsPerStream) input rows")
    }

    /// 20 streams of `rows` one-row packages, interleaved; returns each stream's exact sum.
    /// Values are whole numbers, so every sum is exact in floating point whatever the order.
    private func produceRows(_ cluster: MockCluster, rows: Int) async throws -> [String: Double] {
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("sums-in")
        let streams = try (0..<Self.streams).map { try producer.createStream("car-\($0)") }
        var sums: [String: Double] = [:]
        for row in 0..<rows {
            for (index, stream) in streams.enumerated() {
                let value = Double((row * 7 + index * 13) % 1_000 - 500)
                sums[stream.streamID, default: 0] += value
                try await stream.addTimestamp(nanoseconds: Int64(row + 1) * 1_000_000).addValue("gForceX", value).publish()
            }
        }
        try await producer.close()
        return sums
    }

    private func endOffsets(_ cluster: MockCluster, _ topic: String) async throws -> [TopicPartition: Int64] {
        let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
        var ends: [TopicPartition: Int64] = [:]
        for partition in 0..<Self.partitions {
            let topicPartition = TopicPartition(topic, partition)
            ends[topicPartition] = try await consumer.watermarks(topicPartition).high
        }
        await consumer.close()
        return ends
    }

    private func sum(_ offsets: [TopicPartition: Int64]) -> Int64 { offsets.values.reduce(0, +) }

    private func startRunningSum(cluster: MockCluster, group: String, stateDir: String) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("RunningSum")
        process.arguments = [
            "--brokers", cluster.bootstrapServers, "--input", "sums-in", "--output", "sums-out", "--group", group,
            "--state-dir", stateDir, "--signed", "--commit-every", "2000",
            "--kafka", "session.timeout.ms=6000", "--kafka", "heartbeat.interval.ms=500",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }

    private func waitFor(_ what: String, _ child: Process, _ condition: () async throws -> Bool) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        while try await !condition() {
            guard child.isRunning else {
                Issue.record("RunningSum exited (\(child.terminationStatus)) while waiting for \(what)")
                return
            }
            guard clock.now < deadline else {
                Issue.record("timed out waiting for \(what)")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
