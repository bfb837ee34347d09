import QuixKafka
import Testing

@Suite("consumer groups", .timeLimit(.minutes(3)))
struct RebalanceTests {
    /// What the members of a group did, for the assertions after the run.
    struct GroupLog: Sendable {
        var processed: [TopicPartition: Set<Int64>] = [:]
        var processedCount = 0
        var duplicates: [(TopicPartition, Int64)] = []
        var duplicatesOfCommitted: [(TopicPartition, Int64)] = []
        var committed: [TopicPartition: Int64] = [:]
        var assigned: [String: Set<TopicPartition>] = [:]
        var revoked: [String: Set<TopicPartition>] = [:]
        var messagesBy: [String: Int] = [:]
    }

    /// A member's loop: process a batch, store its offsets and commit them synchronously. A
    /// commit refused because the group is rebalancing is retried at the revocation, as the
    /// stored offsets wait for it. Ends when its task is cancelled.
    static func run(_ name: String, _ consumer: KafkaConsumer, _ log: Shared<GroupLog>) async throws {
        var stored: [TopicPartition: Int64] = [:]
        for await event in consumer.events {
            switch event {
            case .messages(let batch):
                var last: [TopicPartition: Int64] = [:]
                log.update { log in
                    for message in batch {
                        let tp = message.topicPartition
                        if !log.processed[tp, default: []].insert(message.offset).inserted {
                            log.duplicates.append((tp, message.offset))
                            if message.offset < log.committed[tp, default: 0] {
                                log.duplicatesOfCommitted.append((tp, message.offset))
                            }
                        } else {
                            log.processedCount += 1
                        }
                        last[tp] = message.offset + 1
                    }
                    log.messagesBy[name, default: 0] += batch.count
                }
                try consumer.storeOffsets(last.map { TopicPartitionOffset($0.key, offset: $0.value) })
                stored.merge(last) { _, new in new }
                try await commitStored(consumer, stored, log)
            case .assigned(let partitions):
                log.update { $0.assigned[name, default: []].formUnion(partitions) }
            case .revoked(let partitions):
                try await commitStored(consumer, stored, log)
                for partition in partitions { stored[partition] = nil }
                log.update { $0.revoked[name, default: []].formUnion(partitions) }
            case .lost(let partitions):
                for partition in partitions { stored[partition] = nil }
                log.update { $0.revoked[name, default: []].formUnion(partitions) }
            case .partitionEnd, .error, .idle:
                break
            }
        }
    }

    static func commitStored(_ consumer: KafkaConsumer, _ stored: [TopicPartition: Int64], _ log: Shared<GroupLog>) async throws {
        do {
            try await consumer.commit()
        } catch {
            if error.isRetriable { return }
            throw error
        }
        log.update { log in
            for (tp, offset) in stored { log.committed[tp] = max(log.committed[tp, default: 0], offset) }
        }
    }

    @Test("a second member joins mid-stream: both get partitions, nothing is lost, nothing committed is read twice")
    func secondMemberJoinsMidStream() async throws {
        let fixture = try Fixture(partitions: 4)
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        var sent = 0
        func produce(_ count: Int) async throws {
            for _ in 0..<count {
                try await producer.send(OutgoingMessage(topic: topic, key: bytes("key-\(sent % 50)"), value: bytes("\(sent)")))
                sent += 1
            }
            try await producer.flush()
        }
        try await produce(20_000)

        var settings = groupSettings(cluster)
        settings.autoCommit = false
        settings.maxBatch = 500
        let first = try KafkaConsumer(settings: settings)
        let second = try KafkaConsumer(settings: settings)
        let log = Shared(GroupLog())
        try await withThrowingTaskGroup(of: Void.self) { group in
            try first.subscribe([topic])
            group.addTask { try await Self.run("first", first, log) }
            try await eventually(.seconds(30), "first member reads") { log.value.processedCount >= 10_000 }

            try second.subscribe([topic])
            group.addTask { try await Self.run("second", second, log) }
            try await produce(10_000)  // while the group rebalances
            try await eventually(.seconds(60), "second member gets partitions") { !log.value.assigned["second", default: []].isEmpty }
            try await produce(10_000)  // after it
            let total = sent
            try await eventually(.seconds(60), "every message read") { log.value.processedCount >= total }
            group.cancelAll()
        }
        await first.close()
        await second.close()

        let result = log.value
        let all = Set((0..<4).map { TopicPartition(topic, Int32($0)) })
        #expect(result.assigned["first"] == all)
        #expect(!result.assigned["second", default: []].isEmpty)
        #expect(result.revoked["first", default: []] == result.assigned["second"], "cooperative: only what moved was revoked")
        #expect(result.messagesBy["second", default: 0] > 0)
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
        var expectedTotal = 0
        for partition in all {
            let high = try await probe.watermarks(partition).high
            expectedTotal += Int(high)
            #expect(result.processed[partition] == Set(0..<high), "\(partition): a gap or an unknown offset")
        }
        #expect(expectedTotal == sent)
        #expect(result.duplicatesOfCommitted.isEmpty, "committed offsets were read again: \(result.duplicatesOfCommitted)")
    }

    @Test("a member with a static group.instance.id joins, reads and leaves")
    func staticMembership() async throws {
        let fixture = try Fixture(partitions: 2)
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        try await producer.deliver(OutgoingMessage(topic: topic, value: bytes("hello"), partition: 1))
        var settings = groupSettings(cluster)
        settings.groupInstanceID = "pod-0"
        let consumer = try KafkaConsumer(settings: settings)
        try consumer.subscribe([topic])
        let messages = try await consume(consumer) { !$0.isEmpty }
        #expect(text(messages.first?.value) == "hello")
        #expect(Set(try consumer.assignment()) == [TopicPartition(topic, 0), TopicPartition(topic, 1)])
        _ = try consumer.groupMetadata()
        await consumer.close()
    }
}
