import Foundation
import QuixKafka
import Testing

@Suite("failures: brokers that go away, injected errors, bad input", .timeLimit(.minutes(3)))
struct FailureTests {
    @Test("a broker taken down mid-produce and brought back: every message delivered exactly once")
    func brokerDownAndUp() async throws {
        let fixture = try Fixture(brokers: 3, replicationFactor: 3)
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        try fixture.cluster.setLeader(topic: fixture.topic, partition: 0, broker: 1)
        let reports = Shared([Int: DeliveryReport]())
        func send(_ range: Range<Int>) async throws {
            for id in range {
                try await producer.send(OutgoingMessage(topic: topic, key: bytes("k"), value: bytes("\(id)"))) { report in
                    reports.update { $0[id] = report }
                }
            }
        }
        try await send(0..<2_000)
        try await eventually(.seconds(20), "first messages delivered") { reports.value.count >= 1_000 }
        try cluster.setBrokerDown(1)
        try await send(2_000..<5_000)
        try await eventually(.seconds(20), "messages held while the leader is down") { producer.outstandingMessages >= 3_000 }
        #expect(reports.value.count < 5_000)
        try cluster.setBrokerUp(1)
        try await producer.flush(timeout: .seconds(60))

        let delivered = reports.value
        #expect(delivered.count == 5_000)
        let failed = delivered.values.compactMap(\.error)
        #expect(failed.isEmpty, "\(failed.prefix(3))")
        #expect(Set(delivered.values.map(\.offset)) == Set(0..<5_000))

        let consumer = try fixture.reader()
        let messages = try await consume(consumer) { $0.count >= 5_000 }
        #expect(try await consumer.watermarks(TopicPartition(topic, 0)).high == 5_000, "duplicates were written")
        #expect(messages.map { Int(text($0.value))! }.sorted() == Array(0..<5_000))
        await consumer.close()
    }

    @Test("retriable produce errors are retried until the message is stored once")
    func retriableErrorsAreRetried() async throws {
        let fixture = try Fixture()
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        try await producer.deliver(OutgoingMessage(topic: topic, value: bytes("warm-up")))
        cluster.pushRequestErrors(.produce, [.notEnoughReplicas, .notLeaderForPartition, .requestTimedOut])
        let report = try await producer.deliver(OutgoingMessage(topic: topic, value: bytes("retried")))
        #expect(report.offset == 1)

        let consumer = try fixture.reader()
        let messages = try await consume(consumer) { $0.count >= 2 }
        #expect(messages.map { text($0.value) } == ["warm-up", "retried"])
        #expect(try await consumer.watermarks(TopicPartition(topic, 0)).high == 2)
        await consumer.close()
    }

    @Test("a permanent produce error reaches the caller typed, with librdkafka's code and message")
    func permanentErrorIsTyped() async throws {
        let fixture = try Fixture()
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        try await producer.deliver(OutgoingMessage(topic: topic, value: bytes("warm-up")))
        cluster.pushRequestErrors(.produce, [.topicAuthorizationFailed])
        let error = await #expect(throws: KafkaError.self) {
            try await producer.deliver(OutgoingMessage(topic: topic, value: bytes("refused")))
        }
        #expect(error?.librdkafkaCode == KafkaErrorCode.topicAuthorizationFailed.rawValue)
        #expect(error?.librdkafkaName == "TOPIC_AUTHORIZATION_FAILED")
        #expect(error?.detail.contains("authoriz") == true, "\(String(describing: error))")
        #expect(error?.isRetriable == false)
    }

    @Test("a fatal idempotence error makes the producer refuse further sends with a fatal error")
    func fatalErrorStopsTheProducer() async throws {
        let fixture = try Fixture()
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        try await producer.deliver(OutgoingMessage(topic: topic, value: bytes("warm-up")))
        cluster.pushRequestErrors(.produce, [.outOfOrderSequenceNumber])
        await #expect(throws: KafkaError.self) {
            try await producer.deliver(OutgoingMessage(topic: topic, value: bytes("out of order")))
        }
        try await eventually(.seconds(10), "the producer reports its fatal error") { producer.fatalError != nil }
        #expect(producer.fatalError?.isFatal == true)
        let error = await #expect(throws: KafkaError.self) {
            try await producer.send(OutgoingMessage(topic: topic, value: bytes("after")))
        }
        #expect(error?.isFatal == true)
        #expect(error?.librdkafkaCode == KafkaErrorCode.outOfOrderSequenceNumber.rawValue)
    }

    @Test("an unknown or invalid property is refused with librdkafka's own message")
    func badProperties() throws {
        var producerSettings = ProducerSettings(bootstrapServers: ["127.0.0.1:9092"])
        producerSettings.client.librdkafka["no.such.property"] = "1"
        let unknown = #expect(throws: KafkaError.self) { try KafkaProducer(settings: producerSettings) }
        #expect(unknown?.code == .invalidSetting)
        #expect(unknown?.detail.contains("No such configuration property: \"no.such.property\"") == true, "\(String(describing: unknown))")

        var consumerSettings = ConsumerSettings(bootstrapServers: ["127.0.0.1:9092"], group: "g")
        consumerSettings.client.librdkafka["session.timeout.ms"] = "soon"
        let invalid = #expect(throws: KafkaError.self) { try KafkaConsumer(settings: consumerSettings) }
        #expect(invalid?.code == .invalidSetting)
        #expect(invalid?.detail.contains("session.timeout.ms") == true, "\(String(describing: invalid))")

        let noBrokers = #expect(throws: KafkaError.self) { try KafkaProducer(settings: ProducerSettings(bootstrapServers: [])) }
        #expect(noBrokers?.code == .invalidSetting)
    }

    @Test("an empty topic name is refused everywhere a topic is named")
    func emptyTopicName() async throws {
        let cluster = try MockCluster(brokers: 1)
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        let send = await #expect(throws: KafkaError.self) { try await producer.send(OutgoingMessage(topic: "", value: [1])) }
        #expect(send?.code == .invalidArgument)
        let consumer = try KafkaConsumer(settings: groupSettings(cluster))
        #expect(throws: KafkaError.self) { try consumer.subscribe([""]) }
        #expect(throws: KafkaError.self) { try consumer.assign([TopicPartitionOffset("", 0, offset: 0)]) }
        #expect(throws: KafkaError.self) { try cluster.createTopic("", partitions: 1) }
        let admin = try KafkaAdmin(settings: AdminSettings(bootstrapServers: [cluster.bootstrapServers]))
        await #expect(throws: KafkaError.self) { try await admin.createTopics([NewTopic(name: "", partitions: 1)]) }
        await consumer.close()
    }

    @Test("an unreachable bootstrap address: the consumer reports the error, keeps trying, and closes cleanly")
    func unreachableBroker() async throws {
        let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: ["127.0.0.1:1"], group: uniqueTopic("g")))
        try consumer.subscribe([uniqueTopic()])
        let error = try await withTimeout(.seconds(30), "an error event") { () -> KafkaError? in
            for await event in consumer.events {
                if case .error(let error) = event { return error }
            }
            return nil
        }
        #expect(error?.isRetriable == true, "\(String(describing: error))")
        await consumer.close()
    }

    @Test("a consumer whose only broker is down reports it, and reads once the broker is back")
    func consumerRecoversWhenBrokerReturns() async throws {
        let fixture = try Fixture()
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        for index in 0..<10 { try await producer.send(OutgoingMessage(topic: topic, value: bytes("\(index)"))) }
        try await producer.flush()
        try cluster.setBrokerDown(1)

        let consumer = try fixture.reader()
        let messages = try await withTimeout(.seconds(60), "read after the broker returns") { () -> [KafkaMessage] in
            var messages: [KafkaMessage] = []
            var sawError = false
            for await event in consumer.events {
                switch event {
                case .error:
                    if !sawError { try cluster.setBrokerUp(1) }
                    sawError = true
                case .messages(let batch):
                    #expect(sawError, "messages arrived while the broker was down")
                    messages += batch
                default: break
                }
                if messages.count >= 10 { break }
            }
            return messages
        }
        #expect(messages.map { text($0.value) } == (0..<10).map { "\($0)" })
        await consumer.close()
    }
}

@Suite("transactions and admin", .timeLimit(.minutes(2)))
struct TransactionAndAdminTests {
    /// The aborted record never reaches the broker: the abort purges it from the producer's queue.
    /// (The mock would show it otherwise: `MockClusterQuirkTests.transactionsAreNotEnforced`.)
    @Test("a committed transaction's records arrive; an aborted one's queued records are purged before they are sent")
    func transactions() async throws {
        let cluster = try MockCluster(brokers: 3)
        let topic = uniqueTopic()
        try cluster.createTopic(topic, partitions: 1, replicationFactor: 3)
        var settings = ProducerSettings(bootstrapServers: [cluster.bootstrapServers])
        settings.transactionalID = uniqueTopic("txn")
        let producer = try KafkaProducer(settings: settings)
        try await producer.initTransactions()

        try producer.beginTransaction()
        try await producer.send(OutgoingMessage(topic: topic, value: bytes("aborted")))
        try await producer.abortTransaction()

        let consumer = try KafkaConsumer(settings: groupSettings(cluster))
        try consumer.subscribe([topic])
        try producer.beginTransaction()
        try await producer.send(OutgoingMessage(topic: topic, value: bytes("committed")))
        try await producer.sendOffsetsToTransaction(
            [TopicPartitionOffset(topic, 0, offset: 0)], group: try consumer.groupMetadata())
        try await producer.commitTransaction()

        let messages = try await consume(consumer) { !$0.isEmpty }
        #expect(messages.map { text($0.value) } == ["committed"])
        await consumer.close()
    }

    @Test("admin lists topic metadata, and reports the mock's refusal of CreateTopics as an error")
    func admin() async throws {
        let cluster = try MockCluster(brokers: 2)
        let topic = uniqueTopic()
        try cluster.createTopic(topic, partitions: 3, replicationFactor: 2)
        var settings = AdminSettings(bootstrapServers: [cluster.bootstrapServers])
        settings.requestTimeout = .seconds(5)
        let admin = try KafkaAdmin(settings: settings)
        let metadata = try await admin.metadata(topic: topic)
        #expect(metadata.map(\.name) == [topic])
        #expect(metadata.first?.partitions.map(\.id) == [0, 1, 2])
        #expect(metadata.first?.partitions.allSatisfy { $0.replicas.count == 2 && $0.leader > 0 } == true)
        #expect(try await admin.metadata(topic: "absent").isEmpty)
        // librdkafka's mock cluster has no controller: CreateTopics must fail loudly, not hang or pretend.
        await #expect(throws: KafkaError.self) { try await admin.createTopics([NewTopic(name: uniqueTopic(), partitions: 2)]) }
    }
}

@Suite("librdkafka mock cluster quirks we work around", .timeLimit(.minutes(2)))
struct MockClusterQuirkTests {
    /// librdkafka 2.0's mock group coordinator puts a group whose last member left into a
    /// rebalance that lasts `session.timeout.ms - 1 s`; a member joining then waits for it. A real
    /// broker lets it in at once. Tests use a short session timeout (`groupSettings`) for this.
    /// When this test fails, the mock is fixed and the workaround can go.
    @Test("a member joining right after the last one left waits session.timeout.ms - 1 s")
    func rejoinWaitsForSessionTimeout() async throws {
        let cluster = try MockCluster(brokers: 1)
        let topic = uniqueTopic()
        try cluster.createTopic(topic, partitions: 1)
        var settings = groupSettings(cluster)
        settings.sessionTimeout = .seconds(8)
        let first = try KafkaConsumer(settings: settings)
        try first.subscribe([topic])
        _ = try await withTimeout(.seconds(30), "first join") {
            for await event in first.events { if case .assigned = event { break } }
        }
        // The mock's timer starts when the LeaveGroup arrives, during close: start the clock before it,
        // so the wait measured cannot be shorter than the timer (8 s - 1 s = 7 s).
        let clock = ContinuousClock()
        let start = clock.now
        await first.close()

        let second = try KafkaConsumer(settings: settings)
        try second.subscribe([topic])
        _ = try await withTimeout(.seconds(30), "second join") {
            for await event in second.events { if case .assigned = event { break } }
        }
        #expect(clock.now - start >= .milliseconds(6_900))
        await second.close()
    }

    /// librdkafka's mock accepts transactions but implements none of their guarantees: EndTxn
    /// writes no control records (an aborted transaction's records stay visible to
    /// read_committed readers), TxnOffsetCommit stores nothing (the group's offsets do not
    /// move), and a producer whose transactional id a newer one took is not fenced. Exactly-once therefore cannot be observed on it (docs/exactly-once.md says what is
    /// tested instead), and quixd also commits a transaction's offsets through the group after
    /// it. When this test fails, the mock implements transactions and the exactly-once output
    /// test can run here.
    @Test("the mock shows aborted records to read_committed readers, drops transactional offset commits and fences no zombie")
    func transactionsAreNotEnforced() async throws {
        let cluster = try MockCluster(brokers: 1)
        let topic = uniqueTopic()
        try cluster.createTopic(topic, partitions: 1)
        var settings = ProducerSettings(bootstrapServers: [cluster.bootstrapServers])
        settings.transactionalID = uniqueTopic("txn")
        let producer = try KafkaProducer(settings: settings)
        try await producer.initTransactions()
        let group = groupSettings(cluster)
        let consumer = try KafkaConsumer(settings: group)
        try consumer.subscribe([topic])
        try producer.beginTransaction()
        try await producer.send(OutgoingMessage(topic: topic, value: bytes("aborted")))
        try await producer.flush()  // on the broker before the abort
        try await producer.sendOffsetsToTransaction([TopicPartitionOffset(topic, 0, offset: 7)], group: try consumer.groupMetadata())
        try await producer.abortTransaction()
        try producer.beginTransaction()
        try await producer.sendOffsetsToTransaction([TopicPartitionOffset(topic, 0, offset: 5)], group: try consumer.groupMetadata())
        try await producer.commitTransaction()

        var readCommitted = ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil)
        readCommitted.client.librdkafka["isolation.level"] = "read_committed"
        let reader = try KafkaConsumer(settings: readCommitted)
        try reader.assign([TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning)])
        let messages = try await consume(reader) { !$0.isEmpty }
        #expect(messages.map { text($0.value) } == ["aborted"], "the aborted record is visible")
        let committed = try await consumer.committed([TopicPartition(topic, 0)])
        #expect(committed.map(\.offset) == [KafkaOffset.invalid], "the committed transaction's offset was not stored")

        // Nor does it fence: a second producer with the same transactional id starts, and the
        // first still commits (a real broker answers PRODUCER_FENCED).
        let successor = try KafkaProducer(settings: settings)
        try await successor.initTransactions()
        try producer.beginTransaction()
        try await producer.send(OutgoingMessage(topic: topic, value: bytes("zombie")))
        try await producer.commitTransaction()
        await successor.close()
        await reader.close()
        await consumer.close()
        await producer.close()
    }
}
