import QuixKafka
import Testing

@Suite("backpressure", .timeLimit(.minutes(2)))
struct BackpressureTests {
    @Test("a full producer queue makes send wait, not fail or drop, until the broker drains it")
    func producerWaitsWhenQueueIsFull() async throws {
        let cluster = try MockCluster(brokers: 1)
        let topic = uniqueTopic()
        try cluster.createTopic(topic, partitions: 1)
        var settings = ProducerSettings(bootstrapServers: [cluster.bootstrapServers])
        settings.queueMaxMessages = 100
        let producer = try KafkaProducer(settings: settings)
        try await producer.deliver(OutgoingMessage(topic: topic, value: bytes("warm-up")))
        try cluster.setBrokerDown(1)

        let returned = Shared(0)
        let delivered = Shared(0)
        let sender = Task {
            for index in 0..<500 {
                try await producer.send(OutgoingMessage(topic: topic, value: bytes("\(index)"))) { report in
                    if report.isDelivered { delivered.update { $0 += 1 } }
                }
                returned.update { $0 += 1 }
            }
        }
        try await eventually(.seconds(10), "the local queue fills") { producer.outstandingMessages >= 100 }
        try await Task.sleep(for: .milliseconds(300))  // a window in which a non-waiting send would run ahead
        #expect(returned.value <= 100, "send returned for messages that had no room")
        try cluster.setBrokerUp(1)
        try await sender.value
        try await producer.flush(timeout: .seconds(60))
        #expect(delivered.value == 500)
    }

    @Test("a consumer whose application falls behind pauses fetching and still delivers everything in order")
    func consumerPausesWhenApplicationIsBehind() async throws {
        let fixture = try Fixture()
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        for index in 0..<30_000 { try await producer.send(OutgoingMessage(topic: topic, value: bytes("\(index)"))) }
        try await producer.flush()

        var settings = ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil)
        settings.maxBatch = 100
        settings.maxBufferedMessages = 1_000
        settings.prefetchKilobytes = 64
        let consumer = try KafkaConsumer(settings: settings)
        try consumer.assign([TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning)])
        try await eventually(.seconds(20), "the buffer fills") { consumer.bufferedMessages >= 1_000 }
        try await Task.sleep(for: .milliseconds(300))  // a window in which an unbounded buffer would take everything
        #expect(consumer.bufferedMessages < 5_000, "buffered \(consumer.bufferedMessages) of 30,000")

        let messages = try await consume(consumer) { $0.count >= 30_000 }
        #expect(messages.map(\.offset) == Array(0..<30_000))
        await consumer.close()
    }
}
