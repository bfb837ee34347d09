import Foundation
import Logging
import QuixKafka
import ServiceLifecycleTestKit
import Synchronization
import Testing
@testable import QuixStreams
@testable import quixd

/// A stateful consumer of `topic` (changelog on), as a pipeline has one.
private func statefulConsumer(_ cluster: MockCluster, _ topic: String, directory: String) throws -> TopicConsumer {
    try TopicConsumer(
        client: KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" },
        topic: topic, group: "g", startFrom: .earliest, state: StateOptions(directory: directory, name: "s"))
}

private func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("changelog-\(UUID().uuidString)").path
}

/// The partitions of `topic`, or nil when the cluster does not have it.
private func partitionCount(_ cluster: MockCluster, _ topic: String) async throws -> Int? {
    try await KafkaAdmin(settings: AdminSettings(bootstrapServers: [cluster.bootstrapServers])).metadata(topic: topic).first?.partitions.count
}

/// What `run()` threw and how long it took to throw it.
private func failure(of consumer: TopicConsumer) async -> (error: (any Error)?, after: Duration) {
    let started = ContinuousClock.now
    do {
        try await consumer.run()
        return (nil, .now - started)
    } catch {
        return (error, .now - started)
    }
}

@Suite("the changelog topic: checked before assignment, created with the input's partitions", .serialized, .timeLimit(.minutes(2)))
struct ChangelogTopicTests {
    @Test("fewer partitions than the input: the consumer stops at once, naming both counts")
    func tooFewPartitions() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("narrow", partitions: 8)
        try cluster.createTopic("s-narrow-changelog", partitions: 4)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (error, after) = await failure(of: try statefulConsumer(cluster, "narrow", directory: directory))
        let refusal = try #require(error as? ChangelogTopicError, "\(String(describing: error))")
        print("measured: too few changelog partitions reported after \(after)")
        #expect(refusal.code == .tooFewPartitions)
        #expect(refusal.description.contains("\"s-narrow-changelog\" has 4 partitions, fewer than the 8 of input topic \"narrow\""), "\(refusal)")
        #expect(refusal.description.contains("--alter --topic s-narrow-changelog --partitions 8"), "\(refusal)")
        #expect(after < .seconds(5), "at once, not after a restore's timeout")
    }

    @Test("missing and not creatable (no controller, no development broker): the consumer stops at once with what to create")
    func notCreatable() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("orphan", partitions: 3)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (error, after) = await failure(of: try statefulConsumer(cluster, "orphan", directory: directory))
        let refusal = try #require(error as? ChangelogTopicError, "\(String(describing: error))")
        print("measured: a changelog that cannot be created reported after \(after)")
        #expect(refusal.code == .notCreated)
        #expect(
            refusal.description.contains(
                "kafka-topics.sh --bootstrap-server \(cluster.bootstrapServers) --create --topic s-orphan-changelog --partitions 3 --config cleanup.policy=compact"),
            "\(refusal)")
        #expect(refusal.description.contains("no controller"), "why: \(refusal)")
        #expect(after < .seconds(5), "at once, not after CreateTopics' timeout")
        #expect(try await partitionCount(cluster, "s-orphan-changelog") == nil, "nothing auto-created it")
    }

    @Test("missing on a development broker: created through its topic requests, with the input's partitions")
    func createdOnRequest() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("wide", partitions: 6)
        let requests = try TopicRequestService(cluster: cluster, logger: Logger(label: "test"))
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let consumer = try statefulConsumer(cluster, "wide", directory: directory)
        let assigned = Mutex<[TopicPartition]>([])
        consumer.onAssigned { _, partitions in assigned.withLock { $0 += partitions } }
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await requests.run() }
                group.addTask { try await consumer.run() }
                let deadline = ContinuousClock.now + .seconds(30)
                while assigned.withLock({ $0.count }) < 6 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                await consumer.close()
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(assigned.withLock { $0.count } == 6, "every partition assigned, so every one restored")
        #expect(try await partitionCount(cluster, "s-wide-changelog") == 6)
    }

    @Test("a restore never waits on a changelog partition that does not exist")
    func restoreOfMissingPartition() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("grown", partitions: 8)
        try cluster.createTopic("s-grown-changelog", partitions: 4)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let stores = try StateStores(
            options: StateOptions(directory: directory, name: "s"), name: "s", topic: "grown",
            client: KafkaClientSettings(bootstrapServers: [cluster.bootstrapServers]), producer: nil, logger: Logger(label: "test"))
        let started = ContinuousClock.now
        _ = stores.open([TopicPartition("grown", 6)])
        let after = ContinuousClock.now - started
        print("measured: a restore of a missing changelog partition failed after \(after)")
        let failure = try #require(stores.takeFailures()[TopicPartition("grown", 6)])
        #expect((failure as? ChangelogTopicError)?.code == .missingPartition, "\(failure)")
        #expect(after < .seconds(5), "not the restore's \(ChangelogRestorer.readTimeout) read timeout")
        stores.close([TopicPartition("grown", 6)])
    }
}
