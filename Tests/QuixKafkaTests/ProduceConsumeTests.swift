import Foundation
import QuixKafka
import Testing

@Suite("produce and consume through the mock cluster", .timeLimit(.minutes(3)))
struct ProduceConsumeTests {
    @Test("100,000 keyed messages on 4 partitions all arrive, in order per key, on the key's CRC-32 partition")
    func everyMessageArrivesInKeyOrder() async throws {
        let fixture = try Fixture(partitions: 4)
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        let keys = 100
        let total = 100_000
        let failures = Shared(0)
        for index in 0..<total {
            let message = OutgoingMessage(topic: topic, key: bytes("key-\(index % keys)"), value: bytes("\(index / keys)"))
            try await producer.send(message) { report in
                if !report.isDelivered { failures.update { $0 += 1 } }
            }
        }
        try await producer.flush()
        #expect(failures.value == 0)

        var settings = groupSettings(cluster)
        settings.maxBatch = 2_000
        let consumer = try KafkaConsumer(settings: settings)
        try consumer.subscribe([topic])
        let messages = try await consume(consumer) { $0.count >= total }
        await consumer.close()

        #expect(messages.count == total)
        var nextSequence: [String: Int] = [:]
        for message in messages {
            let key = text(message.key)
            #expect(Int32(crc32(bytes(key)) % 4) == message.partition, "key \(key) on the wrong partition")
            let sequence = Int(text(message.value))!
            #expect(sequence == nextSequence[key, default: 0], "key \(key) out of order")
            nextSequence[key] = sequence + 1
        }
        #expect(nextSequence.count == keys)
        #expect(nextSequence.values.allSatisfy { $0 == total / keys })
    }

    @Test("tagged sends report to the producer's handler with their tag, topic, partition and offset")
    func taggedDeliveryReports() async throws {
        let cluster = try MockCluster(brokers: 1)
        let topic = uniqueTopic()
        try cluster.createTopic(topic, partitions: 3)
        let reports = Shared([UInt64: DeliveryReport]())
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers])) { report in
            reports.update { $0[report.tag!] = report }
        }
        let big: UInt64 = 1 << 62
        for index in 0..<1_000 {
            try await producer.send(OutgoingMessage(topic: topic, value: bytes("\(index)"), partition: Int32(index % 3)), tag: big + UInt64(index))
        }
        try await producer.flush()
        let received = reports.value
        #expect(Set(received.keys) == Set((0..<1_000).map { big + UInt64($0) }))
        #expect(received.values.allSatisfy { $0.isDelivered && $0.topic == topic })
        for partition in 0..<3 {
            let offsets = received.filter { Int($0.key - big) % 3 == partition }.map(\.value.offset).sorted()
            #expect(offsets == Array(0..<Int64(offsets.count)), "partition \(partition)")
        }
    }

    @Test("headers, an empty value and a tombstone survive the round trip")
    func recordShapesRoundTrip() async throws {
        let fixture = try Fixture()
        let (topic, producer) = (fixture.topic, fixture.producer)
        let headers = [KafkaHeader("a", bytes("1")), KafkaHeader("empty", []), KafkaHeader("none", nil)]
        let first = try await producer.deliver(
            OutgoingMessage(topic: topic, key: bytes("k"), value: bytes("v"), headers: headers, timestampMilliseconds: 1_700_000_000_000))
        try await producer.deliver(OutgoingMessage(topic: topic, key: nil, value: []))
        try await producer.deliver(OutgoingMessage(topic: topic, key: bytes("gone"), value: nil))
        #expect(first.offset == 0 && first.partition == 0 && first.topic == topic)

        let consumer = try fixture.reader()
        let messages = try await consume(consumer) { $0.count >= 3 }
        await consumer.close()

        #expect(messages.map(\.offset) == [0, 1, 2])
        #expect(messages[0].headers == headers)
        #expect(messages[0].timestampMilliseconds == 1_700_000_000_000)
        #expect(text(messages[0].value) == "v" && text(messages[0].key) == "k")
        #expect(messages[1].key == nil)
        #expect(messages[1].value.map(Array.init) == [])
        #expect(messages[2].value == nil, "a tombstone has no value")
        #expect(text(messages[2].key) == "gone")
    }

    @Test("a consumer that commits and closes is resumed by the next one exactly after its last commit")
    func resumesAfterCommittedOffset() async throws {
        let fixture = try Fixture()
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        for index in 0..<1_000 {
            try await producer.send(OutgoingMessage(topic: topic, key: bytes("k"), value: bytes("\(index)")))
        }
        try await producer.flush()

        var settings = groupSettings(cluster)
        settings.autoCommit = false
        let first = try KafkaConsumer(settings: settings)
        try first.subscribe([topic])
        let seen = try await consume(first) { $0.count >= 400 }
        try first.storeOffsets([seen[399].nextOffset])
        try await first.commit()
        let committed = try await first.committed([TopicPartition(topic, 0)])
        #expect(committed == [TopicPartitionOffset(topic, 0, offset: 400)])
        await first.close()

        let second = try KafkaConsumer(settings: settings)
        try second.subscribe([topic])
        let resumed = try await consume(second) { !$0.isEmpty }
        await second.close()
        #expect(resumed.first?.offset == 400)
        #expect(text(resumed.first?.value) == "400")
    }

    @Test("seek, pause and resume move and hold a partition's position")
    func seekPauseResume() async throws {
        let fixture = try Fixture(partitions: 2)
        let (cluster, topic, producer) = (fixture.cluster, fixture.topic, fixture.producer)
        for index in 0..<100 {
            try await producer.send(OutgoingMessage(topic: topic, value: bytes("\(index)"), partition: Int32(index % 2)))
        }
        try await producer.flush()

        let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
        let p0 = TopicPartition(topic, 0)
        let p1 = TopicPartition(topic, 1)
        try consumer.assign([TopicPartitionOffset(p0, offset: 40), TopicPartitionOffset(p1, offset: KafkaOffset.beginning)])
        try consumer.pause([p1])
        let fromP0 = try await consume(consumer) { $0.count >= 10 }
        #expect(fromP0.allSatisfy { $0.partition == 0 }, "a paused partition delivered messages")
        #expect(fromP0.first?.offset == 40)
        #expect(try consumer.position([p0]) == [TopicPartitionOffset(p0, offset: 50)])

        // Asynchronous: librdkafka 2.0's blocking seek timed out under CI load.
        try await consumer.seek([TopicPartitionOffset(p0, offset: 5)], timeout: .zero)
        try consumer.resume([p1])
        let after = try await consume(consumer) { $0.contains { $0.partition == 1 } && $0.contains { $0.partition == 0 } }
        #expect(after.first { $0.partition == 0 }?.offset == 5)
        #expect(after.first { $0.partition == 1 }?.offset == 0)
        #expect(try await consumer.watermarks(p0) == (low: 0, high: 50))
        await consumer.close()
    }
}
