import Foundation
import QuixKafka
import QuixStreams
import Synchronization
import Testing

/// What the handlers of one consumer saw: each stream's values in handling order, and the
/// threads they ran on.
private final class Handled: Sendable {
    let values = Mutex([String: [Int]]())
    let threads = Mutex(Set<UInt>())

    var total: Int { values.withLock { $0.values.reduce(0) { $0 + $1.count } } }

    func attach(to consumer: TopicConsumer) {
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { [self] stream, frame in
                threads.withLock { _ = $0.insert(UInt(bitPattern: Int(bitPattern: pthread_self()))) }
                let rows = (0..<frame.rowCount).map { Int(frame["v"]![$0]!) }
                values.withLock { $0[stream.streamID, default: []] += rows }
            }
        }
    }
}

/// `rows` one-row packages per stream on `streams` streams, interleaved (value = row).
private func produce(_ cluster: MockCluster, topic: String, streams: Int, rows: Range<Int>) async throws {
    let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer(topic)
    let handles = try (0..<streams).map { try producer.getOrCreateStream("s\($0)") }
    for row in rows {
        for stream in handles { try await stream.addTimestamp(nanoseconds: Int64(row + 1)).addValue("v", Double(row)).publish() }
    }
    try await producer.close()
}

private func waitUntil(_ what: String, seconds: Int = 60, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while !condition() {
        guard ContinuousClock.now < deadline else {
            Issue.record("timed out waiting for \(what)")
            return
        }
        try await Task.sleep(for: .milliseconds(20))
    }
}

@Suite("partitions on a worker pool", .serialized, .timeLimit(.minutes(3)))
struct WorkerTests {
    @Test("50 streams on 8 partitions and 4 workers: every row arrives once, in order per stream, on all 4 workers")
    func orderPerStream() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("spread", partitions: 8)
        try await produce(cluster, topic: "spread", streams: 50, rows: 0..<200)
        let consumer = try TopicConsumer(
            client: KafkaStreamingClient(brokers: cluster.bootstrapServers), topic: "spread", group: nil, startFrom: .earliest,
            workers: WorkerPool(count: 4))
        let handled = Handled()
        handled.attach(to: consumer)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            try await waitUntil("10,000 rows") { handled.total >= 10_000 }
            await consumer.close()
            try await group.waitForAll()
        }
        let values = handled.values.withLock { $0 }
        #expect(values.count == 50)
        for (stream, rows) in values { #expect(rows == Array(0..<200), "\(stream) out of order or incomplete: \(rows.prefix(20))") }
        #expect(handled.threads.withLock { $0.count } == 4, "the 8 partitions spread over the 4 workers")
    }
}

extension WorkerTests {
    @Test("a second member joins while the first processes on 2 workers: both stop on request, and every row is handled, in order per stream on each member")
    func rebalanceWhileBusy() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("busy", partitions: 8)
        try await produce(cluster, topic: "busy", streams: 40, rows: 0..<250)
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" }
        func member() throws -> (TopicConsumer, Handled) {
            let consumer = try TopicConsumer(
                client: client, topic: "busy", group: "g", startFrom: .earliest,
                commit: CommitOptions(everyPackages: 200, interval: .milliseconds(500)), workers: WorkerPool(count: 2))
            let handled = Handled()
            handled.attach(to: consumer)
            return (consumer, handled)
        }
        let (first, firstHandled) = try member()
        let (second, secondHandled) = try member()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await first.run() }
            try await waitUntil("the first member to start") { firstHandled.total >= 500 }
            group.addTask { try await second.run() }
            try await waitUntil("both members to handle rows") { secondHandled.total > 0 }
            try await produce(cluster, topic: "busy", streams: 40, rows: 250..<300)
            try await waitUntil("every row") {
                Set(firstHandled.values.withLock { $0.flatMap { stream, rows in rows.map { "\(stream)/\($0)" } } })
                    .union(secondHandled.values.withLock { $0.flatMap { stream, rows in rows.map { "\(stream)/\($0)" } } }).count >= 40 * 300
            }
            let stopped = ContinuousClock.now
            await first.close()
            await second.close()
            try await group.waitForAll()
            #expect(ContinuousClock.now - stopped < .seconds(20), "closing took \(ContinuousClock.now - stopped)")
        }
        for handled in [firstHandled, secondHandled] {
            for (stream, rows) in handled.values.withLock({ $0 }) {
                // A partition that moves is read again from its committed offset: a member may see
                // rows again after a move, but each run of rows goes up by one.
                let runs = zip(rows, rows.dropFirst()).filter { $1 != $0 + 1 }
                #expect(runs.allSatisfy { $1 <= $0 }, "\(stream) skipped rows: \(runs.prefix(5))")
            }
        }
    }
}
