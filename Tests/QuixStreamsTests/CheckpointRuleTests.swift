import Foundation
import QuixKafka
@testable import QuixStreams
import Synchronization
import Testing

/// The durable-offset rule (docs/runtime.md): a partition commits no further than the lowest
/// offset whose effects are held in a buffer, in flight to the broker, or not in committed state.
@Suite("the durable-offset rule", .timeLimit(.minutes(2)))
struct CheckpointRuleTests {
    @Test("a checkpoint waits for the deliveries below its cut, not for those after it")
    func acksBelowTheCut() async throws {
        let tracker = DeliveryTracker(partition: TopicPartition("in", 0))
        _ = tracker.origin(5)
        _ = tracker.sent(origin: 5)
        _ = tracker.sent(origin: 12)
        let waited = Mutex(false)
        let waiter = Task {
            try await tracker.waitForDeliveries(below: 10)
            waited.withLock { $0 = true }
        }
        try await Task.sleep(for: .milliseconds(100))
        #expect(!waited.withLock { $0 }, "the delivery at 5 is still in flight")
        tracker.unsent(origin: 5)
        try await waiter.value
        #expect(waited.withLock { $0 }, "done, though the delivery at 12 is still in flight")

        let later = Task { try await tracker.waitForDeliveries(below: 13) }
        try await Task.sleep(for: .milliseconds(100))
        tracker.unsent(origin: 12)
        try await later.value
    }

    @Test("state commits only the changes before the cut; a store first written after it is listed and exists")
    func stateUpToTheCut() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("cut-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {  // the environment closes when the state goes away
            let state = try PartitionState(directory: directory, partition: TopicPartition("in", 0))
            state.beginPackage(at: 3)
            state.put(store: "early", key: StreamState.prefix(of: "s") + Array("a".utf8), value: Array("1".utf8))
            let cut = state.savepoint()
            state.beginPackage(at: 7)
            state.put(store: "late", key: StreamState.prefix(of: "s") + Array("b".utf8), value: Array("2".utf8))
            try state.checkpoint(offset: 4, savepoint: cut)
            #expect(state.hasPendingChanges(before: 8), "the change at 7 waits for a later cut")
            #expect(!state.hasPendingChanges(before: 4))
        }
        let path = try #require(try StateInspector.partitions(under: directory).first)
        let stores = try StateInspector.entries(at: path).map(\.store)
        #expect(stores == ["early"], "only the change before the cut is on disk; every listed store opens")
    }

    @Test("a buffer that holds rows for many checkpoint intervals keeps the commit below them: a restart gets them again")
    func heldRowsAcrossIntervals() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("held", partitions: 1)
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("held")
        let stream = try producer.getOrCreateStream("s")
        for row in 0..<20 { try await stream.addTimestamp(nanoseconds: Int64(row + 1)).addValue("v", Double(row)).publish() }
        try await producer.close()
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" }
        let commits = CommitOptions(everyPackages: nil, interval: .milliseconds(100))

        // A packet size of 50 never fills with 20 rows: the buffer holds them all, far longer than
        // the 100 ms checkpoint interval, and the checkpoints do not release them.
        let holding = try TopicConsumer(client: client, topic: "held", group: "g", startFrom: .earliest, commit: commits)
        let handled = Mutex(0)
        let released = Mutex(0)
        let committedRounds = Mutex(0)
        holding.onStreamReceived { stream in
            stream.onFrameReceived { _, _ in handled.withLock { $0 += 1 } }
            stream.createBuffer(TimeseriesBufferConfiguration(packetSize: 50)).onReleased { _, frame in released.withLock { $0 += frame.rowCount } }
        }
        holding.onCommitted { _, _ in committedRounds.withLock { $0 += 1 } }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await holding.run() }
            let deadline = ContinuousClock.now + .seconds(30)
            while handled.withLock({ $0 }) < 20 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .seconds(1))  // 10 checkpoint intervals
            #expect(handled.withLock { $0 } == 20)
            #expect(released.withLock { $0 } == 0, "checkpoints do not flush buffers")
            await holding.close()
            try await group.waitForAll()
        }
        #expect(released.withLock { $0 } == 0)
        print("measured: \(committedRounds.withLock { $0 }) commits while the buffer held every row")

        // The next member of the group starts below the held rows: none is lost.
        let next = try TopicConsumer(client: client, topic: "held", group: "g", startFrom: .earliest, commit: commits)
        let values = Mutex([Int]())
        next.onStreamReceived { stream in
            stream.onFrameReceived { _, frame in values.withLock { $0 += (0..<frame.rowCount).map { Int(frame["v"]![$0]!) } } }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await next.run() }
            let deadline = ContinuousClock.now + .seconds(30)
            while values.withLock({ $0.count }) < 20 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            await next.close()
            try await group.waitForAll()
        }
        #expect(values.withLock { $0 } == Array(0..<20), "every held row is read again")
    }
}
