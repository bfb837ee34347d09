import Foundation
import QuixKafka
import QuixStreams
import Synchronization
import Testing

@Suite("consumer buffers", .timeLimit(.minutes(2)))
struct ConsumerBufferTests {
    /// Writes 7 single-row packages (a and b) on stream "s", then closes it if `close`.
    private func produce(_ cluster: MockCluster, _ topic: String, close: Bool) async throws {
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer(topic)
        let stream = try producer.createStream("s")
        for index in 0..<7 {
            try await stream.addTimestamp(nanoseconds: Int64(index)).addValue("a", Double(index)).addValue("b", -Double(index)).addTag("t", "x").publish()
        }
        if close { try await stream.close() }
        try await producer.close()
    }

    @Test("a packet-size buffer with a parameter filter releases 3, 3, and the rest when the stream closes")
    func releases() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("buffered", partitions: 1)
        try await produce(cluster, "buffered", close: true)
        let consumer = try TopicConsumer(client: KafkaStreamingClient(brokers: cluster.bootstrapServers), topic: "buffered", group: nil, startFrom: .earliest)
        let released = Mutex([[Double?]]())
        let columns = Mutex(Set<String>())
        let closed = Mutex(false)
        consumer.onStreamReceived { stream in
            stream.createBuffer(TimeseriesBufferConfiguration(packetSize: 3), parameters: ["a"]).onReleased { _, frame in
                released.withLock { $0.append(Array(frame["a"]!)) }
                columns.withLock { $0.formUnion(frame.numeric.keys); $0.formUnion(frame.tags.keys) }
            }
            stream.onStreamClosed { _, _ in closed.withLock { $0 = true } }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            while !closed.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(20)) }
            await consumer.close()
            try await group.waitForAll()
        }
        #expect(released.withLock { $0 } == [[0, 1, 2], [3, 4, 5], [6]], "the last row is released when the stream closes")
        #expect(columns.withLock { $0 } == ["a", "t"], "only the filtered parameter, and the tags")
    }

    @Test("a buffer timeout releases held rows while no package arrives")
    func timeout() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("quiet", partitions: 1)
        try await produce(cluster, "quiet", close: false)  // 7 rows, and then nothing
        let consumer = try TopicConsumer(client: KafkaStreamingClient(brokers: cluster.bootstrapServers), topic: "quiet", group: nil, startFrom: .earliest)
        let released = Mutex([[Double?]]())
        consumer.onStreamReceived { stream in
            stream.createBuffer(TimeseriesBufferConfiguration(packetSize: 100, timeout: .milliseconds(300))).onReleased { _, frame in
                released.withLock { $0.append(Array(frame["a"]!)) }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(20)
            while released.withLock({ $0.isEmpty }) && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            await consumer.close()
            try await group.waitForAll()
        }
        #expect(released.withLock { $0 } == [[0, 1, 2, 3, 4, 5, 6]], "one release of all 7 rows, with the stream still open")
    }

    @Test("rows held in a buffer are not committed: the commit stops at their first package")
    func heldRowsAreNotCommitted() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("held", partitions: 1)
        try await produce(cluster, "held", close: false)  // packages: properties at 0, rows at 1...7
        let group = "g-\(UUID().uuidString.prefix(8))"
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" }
        let consumer = try TopicConsumer(client: client, topic: "held", group: group, startFrom: .earliest, commit: CommitOptions(everyPackages: 1, interval: nil))
        let seen = Mutex(0)
        consumer.onStreamReceived { stream in
            _ = stream.createBuffer(TimeseriesBufferConfiguration(packetSize: 100))  // holds everything
            stream.onFrameReceived { _, _ in seen.withLock { $0 += 1 } }
        }
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: group))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            while seen.withLock({ $0 }) < 7 { try await Task.sleep(for: .milliseconds(20)) }
            // Every package was processed and committed one by one, yet the buffer holds rows 1...7.
            let partition = TopicPartition("held", 0)
            var committed = try await probe.committed([partition])
            let clock = ContinuousClock()
            let deadline = clock.now + .seconds(10)
            while committed.first?.offset != 1 && clock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
                committed = try await probe.committed([partition])
            }
            #expect(committed.first?.offset == 1, "committed past rows a buffer holds: \(committed)")
            await consumer.close()
            try await group.waitForAll()
        }
    }
}
