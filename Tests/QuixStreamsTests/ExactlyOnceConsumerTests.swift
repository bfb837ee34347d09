import Foundation
import QuixKafka
import QuixStreams
import Synchronization
import Testing

/// The library's exactly-once mode: a consumer made from `KafkaStreamingClient.transactional(id:)`
/// commits each checkpoint as one Kafka transaction with the outputs made from the same client.
@Suite("exactly-once consumers", .serialized, .timeLimit(.minutes(3)))
struct ExactlyOnceConsumerTests {
    /// A copy of each package to `out`, through the consumer's transactional client.
    private func copier(_ cluster: MockCluster, id: String, group: String) throws -> TopicConsumer {
        let client = try KafkaStreamingClient(brokers: cluster.bootstrapServers) {
            $0.librdkafka["session.timeout.ms"] = "6000"
        }.transactional(id: id)
        let output = try client.topicProducer("out")
        let consumer = try TopicConsumer(
            client: client, topic: "in", group: group, startFrom: .earliest, commit: CommitOptions(everyPackages: nil, interval: .milliseconds(100)))
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { stream, frame in try await output.getOrCreateStream(stream.streamID).publish(frame) }
        }
        return consumer
    }

    @Test("a refused output record aborts the transaction: the consumer stops saying so, and its successor finishes from the last commit")
    func abortStops() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["in", "out"] { try cluster.createTopic(topic, partitions: 2) }
        try await produce(cluster, rows: 30)
        let group = "abort-\(UUID().uuidString.prefix(8))"
        cluster.pushRequestErrors(.produce, [.topicAuthorizationFailed])
        let first = try copier(cluster, id: "abort-\(group)", group: group)
        let outcome = await Task { try await first.run() }.result
        guard case .failure(let error) = outcome else {
            Issue.record("the consumer went on after its transaction failed")
            return
        }
        // Whichever met it first (a send into the failed transaction, or its commit) says so.
        #expect(error is TransactionFailure && "\(error)".hasPrefix("exactly-once: "), "\(error)")
        #expect(first.transactionCounts?.aborted == 1)

        let second = try copier(cluster, id: "abort-\(group)", group: group)
        let run = Task { try await second.run() }
        let (committed, total) = try await waitUntilCommitted(cluster, group: group)
        await second.close()
        try await run.value
        #expect(committed == total, "the successor committed every input offset")
    }

    @Test("what a timer sends with no new input (an idle stream's end) is committed at the next checkpoint, not left open")
    func timerOutputCommits() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["in", "out"] { try cluster.createTopic(topic, partitions: 1) }
        try await produce(cluster, rows: 5)
        let group = "timer-\(UUID().uuidString.prefix(8))"
        let client = try KafkaStreamingClient(brokers: cluster.bootstrapServers).transactional(id: "timer-\(group)")
        let output = try client.topicProducer("out")
        let consumer = try TopicConsumer(
            client: client, topic: "in", group: group, startFrom: .earliest, commit: CommitOptions(everyPackages: nil, interval: .milliseconds(100)),
            closeIdleStreamsAfter: .seconds(2))
        let ended = Mutex(0)
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { stream, frame in try await output.getOrCreateStream(stream.streamID).publish(frame) }
            stream.onStreamClosed { stream, _ in
                try await output.getOrCreateStream(stream.streamID).close()
                ended.withLock { $0 += 1 }
            }
        }
        let run = Task { try await consumer.run() }
        // Every package processed and committed; then nothing moves until the streams go idle.
        var deadline = ContinuousClock.now + .seconds(30)
        while (consumer.transactionCounts?.committed ?? 0) == 0 || ended.withLock({ $0 }) > 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let beforeIdle = consumer.transactionCounts?.committed ?? 0
        deadline = ContinuousClock.now + .seconds(30)
        while ended.withLock({ $0 }) < 4, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        try await Task.sleep(for: .milliseconds(500))
        let afterIdle = consumer.transactionCounts?.committed ?? 0
        await consumer.close()
        try await run.value
        #expect(ended.withLock { $0 } == 4, "the idle streams ended")
        #expect(afterIdle > beforeIdle, "the stream ends were committed in a transaction of their own (\(beforeIdle) → \(afterIdle))")
    }

    private func produce(_ cluster: MockCluster, rows: Int) async throws {
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("in")
        let streams = try (0..<4).map { try producer.createStream("s\($0)") }
        for row in 0..<rows {
            for stream in streams { try await stream.addTimestamp(nanoseconds: Int64(row + 1)).addValue("v", Double(row)).publish() }
        }
        try await producer.close()
    }

    @Test("checkpoints are transactions: outputs and offsets commit together, and the group's offsets move")
    func transactionsCommit() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["in", "out"] { try cluster.createTopic(topic, partitions: 2) }
        try await produce(cluster, rows: 50)
        let group = "eos-\(UUID().uuidString.prefix(8))"
        let consumer = try copier(cluster, id: "copier-\(group)", group: group)
        #expect(consumer.isExactlyOnce)
        let run = Task { try await consumer.run() }
        let (committed, total) = try await waitUntilCommitted(cluster, group: group)
        await consumer.close()
        try await run.value
        let counts = try #require(consumer.transactionCounts)
        #expect(counts.committed > 0 && counts.aborted == 0, "\(counts)")
        #expect(committed == total, "every input offset committed")
    }

    /// Waits (60 s at most) until `group` has committed every offset of `in`; returns what it
    /// committed and the input's end, both summed over the partitions.
    private func waitUntilCommitted(_ cluster: MockCluster, group: String) async throws -> (committed: Int64, total: Int64) {
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: group))
        let inputs = [TopicPartition("in", 0), TopicPartition("in", 1)]
        var total: Int64 = 0
        for input in inputs { total += try await probe.watermarks(input).high }
        let deadline = ContinuousClock.now + .seconds(60)
        var committed = try await probe.committed(inputs).reduce(0) { $0 + max($1.offset, 0) }
        while committed < total, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
            committed = try await probe.committed(inputs).reduce(0) { $0 + max($1.offset, 0) }
        }
        await probe.close()
        return (committed, total)
    }
}
