import QuixKafka
import Testing

@Suite("backpressure by holding the poll thread", .timeLimit(.minutes(2)))
struct StopPollingTests {
    @Test("a reader with backpressure .stopPolling holds its buffer at the bound and delivers every message in order")
    func holdsAndDeliversEverything() async throws {
        let fixture = try Fixture(partitions: 2)
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        for index in 0..<20_000 {
            try await producer.send(OutgoingMessage(topic: topic, value: bytes("\(index)"), partition: Int32(index % 2)))
        }
        try await producer.flush()

        var settings = ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil)
        settings.backpressure = .stopPolling
        settings.maxBatch = 100
        settings.maxBufferedMessages = 1_000
        settings.fetchQueueBackoff = .milliseconds(10)
        let consumer = try KafkaConsumer(settings: settings)
        try consumer.assign([0, 1].map { TopicPartitionOffset(topic, $0, offset: KafkaOffset.beginning) })
        try await eventually(.seconds(20), "the buffer fills") { consumer.bufferedMessages >= 1_000 }
        try await Task.sleep(for: .milliseconds(300))  // a window in which an unbounded buffer would take everything
        #expect(consumer.bufferedMessages < 1_000 + settings.maxBatch, "buffered \(consumer.bufferedMessages) of 20,000")

        let messages = try await consume(consumer) { $0.count >= 20_000 }
        for partition: Int32 in [0, 1] {
            #expect(messages.filter { $0.partition == partition }.map(\.offset) == Array(0..<10_000), "partition \(partition)")
        }
        await consumer.close()
    }

    @Test("subscribe refuses backpressure .stopPolling: a group member must keep polling")
    func subscribeRefusesStopPolling() throws {
        let cluster = try MockCluster(brokers: 1)
        var settings = ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: "g")
        settings.backpressure = .stopPolling
        let consumer = try KafkaConsumer(settings: settings)
        #expect(throws: KafkaError.self) { try consumer.subscribe([uniqueTopic()]) }
    }
}
