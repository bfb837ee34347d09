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
        let deadline = ContinuousClock.now + .seconds(60)
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: group))
        let inputs = [TopicPartition("in", 0), TopicPartition("in", 1)]
        let total = try await inputs.asyncSum { try await probe.watermarks($0).high }
        while try await probe.committed(inputs).reduce(0, { $0 + max($1.offset, 0) }) < total, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        await consumer.close()
        try await run.value
        let counts = try #require(consumer.transactionCounts)
        #expect(counts.committed > 0 && counts.aborted == 0, "\(counts)")
        #expect(try await probe.committed(inputs).reduce(0, { $0 + max($1.offset, 0) }) == total, "every input offset committed")
        await probe.close()
    }
}

extension Array {
    fileprivate func asyncSum(_ value: (Element) async throws -> Int64) async rethrows -> Int64 {
        var total: Int64 = 0
        for element in self { total += try await value(element) }
        return total
    }
}
