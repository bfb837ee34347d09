import Foundation
import QuixKafka
import QuixStreams
import Testing

/// Replicas of one stateful pipeline on one mock cluster, each with its own state directory (its
/// PVC) and member id (its pod name), scaled 1 → 3 → 1 while data flows.
@Suite("Scaling out", .serialized, .timeLimit(.minutes(6)))
struct ScaleOutTests {
    static let partitions: Int32 = 6
    static let streams = 24
    static let rows = 300

    final class Replica: Sendable {
        let index: Int
        let port: Int
        let daemon: DaemonProcess

        init(_ index: Int, _ cluster: MockCluster, directory: String, pipeline: String) throws {
            self.index = index
            port = freePort()
            daemon = try DaemonProcess([
                "--brokers", cluster.bootstrapServers, "--state-dir", "\(directory)/pvc-\(index)", "--http", "127.0.0.1:\(port)",
                "--set", "kafka.groupInstanceId=quixd-\(index)", "--set", "kafka.properties={session.timeout.ms: 6000}", pipeline,
            ])
        }

        /// The partitions `/readyz` says this replica has, or nil while it is not ready.
        func partitions() async -> [Int]? {
            guard let (status, body) = try? await httpGet(port, "/readyz"), status == 200,
                let list = body.split(separator: "[").dropFirst().first?.split(separator: "]").first
            else { return nil }
            return list.split(separator: ",").compactMap { Int($0) }
        }
    }

    @Test("1 → 3 → 1 replicas while data flows: no input lost, exact running sums, /readyz per replica, a restarted member gets its partitions back")
    func scaleOutAndIn() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["scale-in", "scale-out", "sums-scale-in-changelog"] { try cluster.createTopic(topic, partitions: Int(Self.partitions)) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-scale-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = directory + "/sums.yaml"
        try """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: sums }
            spec:
              input: { topic: scale-in }
              stages:
                - { id: sum, uses: cumulative, with: { column: x, aggregate: sum, as: x_sum } }
              output: { topic: scale-out }
              checkpoint: { interval: 500ms }
            """.write(toFile: pipeline, atomically: true, encoding: .utf8)

        // Data flows for the whole test: a row per stream every 60 ms.
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("scale-in")
        let expected = (0..<Self.streams).reduce(into: [String: [Double]]()) { sums, stream in
            var total = 0.0
            sums["car-\(stream)"] = (0..<Self.rows).map { row in
                total += Double((row * 7 + stream * 13) % 100 - 50)
                return total
            }
        }
        let feeding = Task {
            let handles = try (0..<Self.streams).map { try producer.createStream("car-\($0)") }
            for row in 0..<Self.rows {
                for (stream, handle) in handles.enumerated() {
                    try await handle.addTimestamp(nanoseconds: Int64(row + 1) * 1_000_000).addValue("x", Double((row * 7 + stream * 13) % 100 - 50)).publish()
                }
                try await producer.flush()
                try await Task.sleep(for: .milliseconds(60))
            }
        }

        let first = try Replica(0, cluster, directory: directory, pipeline: pipeline)
        #expect(try await settle([first]) == [[0, 1, 2, 3, 4, 5]], "one replica has every partition")

        // Scale out: the newcomers say they are not ready while they join.
        let second = try Replica(1, cluster, directory: directory, pipeline: pipeline)
        let third = try Replica(2, cluster, directory: directory, pipeline: pipeline)
        let firstAnswer = try await firstHTTPAnswer(second)
        #expect(
            firstAnswer.0 == 503 && (firstAnswer.1 == "sums not ready: starting\n" || firstAnswer.1 == "sums not ready: joining consumer group sums\n"),
            "\(firstAnswer)")
        let spread = try await settle([first, second, third])
        #expect(spread.allSatisfy { !$0.isEmpty }, "each of three replicas has partitions: \(spread)")

        // A replica restarted with the same member id (a pod rescheduled with its PVC) gets its
        // partitions back without moving the others' partitions.
        let before = first.daemon.log.count + second.daemon.log.count
        #expect(try await third.daemon.terminate() == 0)
        let restarted = try Replica(2, cluster, directory: directory, pipeline: pipeline)
        let after = try await settle([first, second, restarted])
        let othersMoved = (first.daemon.log + second.daemon.log).dropFirst(before).contains("partitions revoked")
        // Observed with librdkafka 2.0.2's mock cluster: the restarted member (same group.instance.id)
        // is treated as a new one and the group rebalances; a real Kafka keeps the assignment.
        withKnownIssue("the mock cluster ignores group.instance.id (static membership)", isIntermittent: true) {
            #expect(!othersMoved && after.count == 3 && spread.count == 3 && after[2] == spread[2], "before \(spread), after \(after)")
        }

        // Scale in: the remaining replica takes every partition back.
        #expect(try await second.daemon.terminate() == 0, "\(second.daemon.log)")
        #expect(try await restarted.daemon.terminate() == 0, "\(restarted.daemon.log)")
        #expect(try await settle([first]) == [[0, 1, 2, 3, 4, 5]])

        try await feeding.value
        let total = Int64(Self.streams * Self.rows)
        let deadline = ContinuousClock.now + .seconds(90)
        while try await endOffsets(cluster, "scale-out", partitions: Self.partitions).reduce(0, +) < total && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        // Rows written twice pad the output's count, so also wait until every input message is committed.
        let inputEnd = try await endOffsets(cluster, "scale-in", partitions: Self.partitions)
        while try await committed(cluster, group: "sums", topic: "scale-in", partitions: Self.partitions) != inputEnd && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try await first.daemon.terminate() == 0, "\(first.daemon.log)")

        // At least once: a row may be written twice across a move, never lost, never wrong.
        let output = try frames(try await messages(cluster, "scale-out", partitions: Self.partitions))
        var duplicates = 0
        for (stream, sums) in expected {
            let frame = try #require(output.rows[stream], "no output for \(stream)")
            var byRow: [Int64: Double] = [:]
            for (index, timestamp) in frame.timestamps.enumerated() {
                let sum = frame["x_sum"]?[index]
                if let earlier = byRow[timestamp] {
                    duplicates += 1
                    #expect(earlier == sum, "\(stream) row \(timestamp): written as \(earlier) and \(sum ?? .nan)")
                }
                byRow[timestamp] = sum
            }
            #expect(byRow.count == Self.rows, "\(stream): \(byRow.count) of \(Self.rows) rows")
            #expect((1...Self.rows).map { byRow[Int64($0) * 1_000_000] } == sums, "\(stream): running sums")
        }
        print("scale-out test: \(duplicates) rows written twice across partition moves, of \(total)")
    }

    /// Waits until every replica is ready and together they have each partition once; returns
    /// each replica's partitions.
    private func settle(_ replicas: [Replica]) async throws -> [[Int]] {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            var lists: [[Int]] = []
            for replica in replicas { if let list = await replica.partitions() { lists.append(list) } }
            if lists.count == replicas.count, lists.flatMap({ $0 }).sorted() == Array(0..<Int(Self.partitions)) { return lists }
            try await Task.sleep(for: .milliseconds(250))
        }
        let logs = replicas.map { "replica \($0.index):\n\($0.daemon.log.split(separator: "\n").suffix(25).joined(separator: "\n"))" }
        Issue.record("replicas did not settle: \(await replicas.asyncMap { await $0.partitions() })\n\(logs.joined(separator: "\n"))")
        return []
    }

    private func firstHTTPAnswer(_ replica: Replica) async throws -> (Int, String) {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if let answer = try? await httpGet(replica.port, "/readyz") { return answer }
            try await Task.sleep(for: .milliseconds(20))
        }
        return (0, "no answer")
    }
}

extension Array {
    fileprivate func asyncMap<T>(_ transform: (Element) async -> T) async -> [T] {
        var result: [T] = []
        for element in self { result.append(await transform(element)) }
        return result
    }
}
