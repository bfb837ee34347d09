@testable import QuixKafka
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

extension StopPollingTests {
    /// A group member 20,000 messages behind, with a 1,000-message buffer.
    private func behindMember(holdBeforePausing: Duration) async throws -> (KafkaConsumer, Fixture) {
        let fixture = try Fixture()
        for index in 0..<20_000 { try await fixture.producer.send(OutgoingMessage(topic: fixture.topic, value: bytes("\(index)"))) }
        try await fixture.producer.flush()
        var settings = ConsumerSettings(bootstrapServers: [fixture.cluster.bootstrapServers], group: uniqueTopic("g"))
        settings.sessionTimeout = .seconds(6)
        settings.maxBatch = 100
        settings.maxBufferedMessages = 1_000
        settings.holdBeforePausing = holdBeforePausing
        let consumer = try KafkaConsumer(settings: settings)
        try consumer.subscribe([fixture.topic])
        try await eventually(.seconds(30), "the buffer fills") { consumer.bufferedMessages >= 1_000 }
        return (consumer, fixture)
    }

    @Test("a group member whose application is busy holds (no pause, nothing fetched twice) within holdBeforePausing, and delivers everything in order")
    func memberHoldsBeforePausing() async throws {
        let (consumer, fixture) = try await behindMember(holdBeforePausing: .seconds(10))
        try await Task.sleep(for: .milliseconds(500))
        #expect(!consumer.isPausedByBackpressure, "paused within the hold")
        #expect(consumer.bufferedMessages < 1_000 + 100, "buffered \(consumer.bufferedMessages) of 20,000")
        let messages = try await consume(consumer) { $0.count >= 20_000 }
        #expect(messages.map(\.offset) == Array(0..<20_000))
        await consumer.close()
        withExtendedLifetime(fixture) {}  // its mock cluster
    }

    @Test("a group member whose application stays behind past holdBeforePausing pauses, so it keeps polling for callbacks, and resumes")
    func memberPausesAfterTheHold() async throws {
        let (consumer, fixture) = try await behindMember(holdBeforePausing: .milliseconds(200))
        try await eventually(.seconds(5), "the pause") { consumer.isPausedByBackpressure }
        let messages = try await consume(consumer) { $0.count >= 20_000 }
        #expect(messages.map(\.offset) == Array(0..<20_000))
        await consumer.close()
        withExtendedLifetime(fixture) {}  // its mock cluster
    }
}
