import Synchronization
import Testing

@testable import QuixKafka
@testable import QuixStreams

@Suite("lanes", .timeLimit(.minutes(1)))
struct LaneTests {
    /// Whether `body` finished within `limit` (it is left running if not).
    private func finishes(within limit: Duration, _ body: @escaping @Sendable () async -> Void) async -> Bool {
        let done = Mutex(false)
        Task {
            await body()
            done.withLock { $0 = true }
        }
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if done.withLock({ $0 }) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return false
    }

    @Test("an urgent action queued after the lane has ended runs at once (a checkpoint begun as the consumer stops must not wait for ever)")
    func urgentAfterEnd() async throws {
        let lane = Lane(worker: WorkerPool(count: 1).workers[0], flow: FlowControl(limit: 10))
        let running = Task { await lane.run { _ in } }
        #expect(await lane.urgent { 1 } == 1, "an urgent action runs on a running lane")
        lane.finish()
        await running.value
        let ran = Mutex(false)
        #expect(await finishes(within: .seconds(5)) {
            let value = await lane.urgent { true }
            ran.withLock { $0 = value }
        })
        #expect(ran.withLock { $0 })
    }

    @Test("messages pushed to an ended lane are dropped and their flow released")
    func pushAfterEnd() async throws {
        let flow = FlowControl(limit: 10)
        let lane = Lane(worker: WorkerPool(count: 1).workers[0], flow: flow)
        lane.finish()
        await lane.run { _ in }
        await flow.acquire(10)
        let task = PartitionTask(partition: .init("t", 0), lane: lane, state: nil, floor: nil, resumeOffset: nil, consumer: try TopicConsumer(
            client: KafkaStreamingClient(brokers: "127.0.0.1:9"), topic: "t", group: nil))
        lane.push(Array(repeating: KafkaMessage(topic: "t", partition: 0, offset: 0, timestampMilliseconds: nil, key: nil, value: nil, headers: []), count: 10)[...], for: task)
        #expect(flow.inFlight == 0, "the 10 pushed messages were released")
    }

    @Test("a waiting dispatcher is let in once the lanes have drained to half the limit, not for every processed batch")
    func flowWakesAtHalf() async throws {
        let flow = FlowControl(limit: 10)
        await flow.acquire(10)
        let admitted = Mutex(false)
        let waiting = Task {
            await flow.acquire(2)
            admitted.withLock { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(200))
        #expect(!admitted.withLock { $0 }, "admitted while 10 of 10 were in flight")
        flow.release(2)  // 8 in flight: the 2 would fit, but the lanes are still more than half full
        try await Task.sleep(for: .milliseconds(200))
        #expect(!admitted.withLock { $0 }, "woken while 8 of 10 were in flight")
        flow.release(3)  // 5 in flight: half
        #expect(await finishes(within: .seconds(5)) { await waiting.value })
        #expect(admitted.withLock { $0 })
    }
}
