@testable import QuixKafka
import Testing

/// librdkafka 2.0 stops fetching once its queue is full and looks again up to a second later;
/// a consumer that asks for a full queue (`fetchQueueBackoff`) wakes its fetchers itself.
@Suite("waking librdkafka's fetchers after it stopped", .timeLimit(.minutes(2)))
struct FetchWakerTests {
    /// Reads 20,000 messages of 2 partitions, in batches of 100, with `configure`'s settings;
    /// checks that every offset came once, in order, and returns the consumer's wake count.
    private func read(_ configure: (inout ConsumerSettings) -> Void) async throws -> Int {
        let fixture = try Fixture(partitions: 2)
        for index in 0..<20_000 {
            try await fixture.producer.send(OutgoingMessage(topic: fixture.topic, value: bytes("\(index)"), partition: Int32(index % 2)))
        }
        try await fixture.producer.flush()
        var settings = ConsumerSettings(bootstrapServers: [fixture.cluster.bootstrapServers], group: nil)
        settings.maxBatch = 100
        configure(&settings)
        let consumer = try KafkaConsumer(settings: settings)
        try consumer.assign([0, 1].map { TopicPartitionOffset(fixture.topic, $0, offset: KafkaOffset.beginning) })
        let bound = settings.maxBufferedMessages
        if bound < 20_000 {
            try await eventually(.seconds(20), "the buffer fills") { consumer.bufferedMessages >= bound }
        }
        let messages = try await consume(consumer) { $0.count >= 20_000 }
        for partition: Int32 in [0, 1] {
            // The ListOffsets requests that wake the fetchers move no position: nothing is skipped or read twice.
            #expect(messages.filter { $0.partition == partition }.map(\.offset) == Array(0..<10_000), "partition \(partition)")
        }
        let wakes = consumer.fetchWakes
        await consumer.close()
        return wakes
    }

    /// Through a 1,000-message buffer and a 64 KB prefetch, so the poll thread holds back again
    /// and again.
    private func readBehind(fetchQueueBackoff: Duration?) async throws -> Int {
        try await read { settings in
            settings.maxBufferedMessages = 1_000
            settings.prefetchKilobytes = 64
            settings.holdBeforePausing = .seconds(10)
            settings.fetchQueueBackoff = fetchQueueBackoff
        }
    }

    @Test("a consumer that asks for a full queue wakes the fetchers after its holds, and reads everything in order")
    func wakesAfterHolds() async throws {
        let wakes = try await readBehind(fetchQueueBackoff: .milliseconds(10))
        if FetchWaker.neededByLibrdkafka {
            #expect(wakes > 0, "no wake-up while 20,000 messages went through a 1,000-message buffer")
        } else {
            #expect(wakes == 0, "librdkafka 2.2+ has fetch.queue.backoff.ms instead")
        }
    }

    @Test("without fetchQueueBackoff nothing is woken")
    func leavesOthersAlone() async throws {
        #expect(try await readBehind(fetchQueueBackoff: nil) == 0)
    }

    @Test("a consumer that never holds back wakes the fetchers after librdkafka stopped at queued.min.messages, and reads everything in order")
    func wakesAfterTheMessageLimit() async throws {
        let wakes = try await read { settings in
            settings.maxBufferedMessages = 100_000  // never reached: the poll thread never holds back
            settings.client.librdkafka["queued.min.messages"] = "500"
            settings.fetchQueueBackoff = .milliseconds(10)
        }
        if FetchWaker.neededByLibrdkafka {
            #expect(wakes > 0, "no wake-up while 20,000 messages went through a 500-message queue")
        } else {
            #expect(wakes == 0, "librdkafka 2.2+ has fetch.queue.backoff.ms instead")
        }
    }
}
