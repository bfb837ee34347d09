import Foundation
import QuixKafka
import Testing

/// Reads every message of `topic` (all partitions, from the beginning) until it has `expected`.
private func messages(_ cluster: MockCluster, _ topic: String, expected: Int) async throws -> [KafkaMessage] {
    let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
    try consumer.assign((0..<2).map { TopicPartitionOffset(topic, $0, offset: KafkaOffset.beginning) })
    var result: [KafkaMessage] = []
    if expected > 0 {
        for await event in consumer.events {
            if case .messages(let batch) = event { result += batch }
            if result.count >= expected { break }
        }
    }
    await consumer.close()
    return result
}

private func high(_ cluster: MockCluster, _ topic: String) async throws -> Int64 {
    let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
    var total: Int64 = 0
    for partition in Int32(0)..<2 { total += try await consumer.watermarks(TopicPartition(topic, partition)).high }
    await consumer.close()
    return total
}

@Suite("quixd dlq", .serialized, .timeLimit(.minutes(3)))
struct DeadLetterCommandTests {
    /// 50 letters over 5 streams as a pipeline writes them: 30 bad-data of stage `limit`, 20
    /// malformed messages; values `car-S #N` in each stream's source order.
    private func deadLetters(_ cluster: MockCluster) async throws {
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        for index in 0..<50 {
            let stream = "car-\(index % 5)"
            let malformed = index % 5 >= 3
            let headers = [
                KafkaHeader("quixd-pipeline", Array("gforce".utf8)),
                KafkaHeader("quixd-stage", Array((malformed ? "handler" : "limit").utf8)),
                KafkaHeader("quixd-error", Array((malformed ? "not a Quix package" : "speed is negative").utf8)),
                KafkaHeader("quixd-error-code", Array((malformed ? "malformed-message" : "bad-data").utf8)),
                KafkaHeader("quixd-source-topic", Array("telemetry".utf8)),
                KafkaHeader("quixd-source-partition", Array("0".utf8)),
                KafkaHeader("quixd-source-offset", Array(String(100 + index).utf8)),
                KafkaHeader("trace", Array("t-\(index)".utf8)),
            ]
            let value = Array("\(stream) #\(index / 5)".utf8)
            try await producer.send(OutgoingMessage(topic: "dlq", key: Array(stream.utf8), value: value, headers: headers))
        }
        try await producer.flush()
        await producer.close()
    }

    @Test("list groups letters by error with their headers; replay keeps each stream's order, records it, and a second run sends nothing")
    func listAndReplay() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["dlq", "telemetry", "retry"] { try cluster.createTopic(topic, partitions: 2) }
        try await deadLetters(cluster)
        let brokers = cluster.bootstrapServers

        let listed = try await runQuixd(["dlq", "list", "--brokers", brokers, "--topic", "dlq"])
        #expect(listed.status == 0, "\(listed.error)")
        #expect(listed.output.hasPrefix("50 dead letters in dlq, 2 errors\n"), "\(listed.output)")
        #expect(listed.output.contains("\n30 × bad-data  limit: speed is negative\n"))
        #expect(listed.output.contains("\n20 × malformed-message  handler: not a Quix package\n"))
        #expect(listed.output.contains("car-3  ") && listed.output.contains("quixd-source-offset=103 trace=t-3"), "\(listed.output)")
        let filtered = try await runQuixd(["dlq", "list", "--brokers", brokers, "--topic", "dlq", "--error", "MALFORMED"])
        #expect(filtered.output.hasPrefix("20 dead letters in dlq, 1 errors\n"), "\(filtered.output)")

        let dry = try await runQuixd(["dlq", "replay", "--brokers", brokers, "--topic", "dlq", "--dry-run"])
        #expect(dry.status == 0 && dry.output.hasSuffix("would replay 50 dead letters (dry run: nothing sent or recorded)\n"), "\(dry)")
        #expect(try await high(cluster, "telemetry") == 0, "a dry run sends nothing")

        let replayed = try await runQuixd(["dlq", "replay", "--brokers", brokers, "--topic", "dlq"])
        #expect(replayed.status == 0, "\(replayed.error)")
        #expect(replayed.output.hasPrefix("replayed 50 dead letters from dlq"), "\(replayed.output)")
        #expect(replayed.error.contains("50/50 dead letters replayed\n"), "plain progress lines when not on a terminal: \(replayed.error)")
        let sent = try await messages(cluster, "telemetry", expected: 50)
        #expect(sent.count == 50)
        let byStream = Dictionary(grouping: sent) { String(decoding: $0.key ?? [], as: UTF8.self) }
        #expect(byStream.keys.sorted() == (0..<5).map { "car-\($0)" })
        for (stream, messages) in byStream {
            let values = messages.map { String(decoding: $0.value ?? [], as: UTF8.self) }
            #expect(values == (0..<10).map { "\(stream) #\($0)" }, "one stream's letters in their original order")
        }
        let first = try #require(sent.first { $0.value.map { String(decoding: $0, as: UTF8.self) } == "car-0 #0" })
        #expect(first.headers.map(\.name) == ["trace", "quixd-replayed-from"], "the quixd-* headers are the letter's, not the message's")

        let again = try await runQuixd(["dlq", "replay", "--brokers", brokers, "--topic", "dlq"])
        #expect(again.status == 0 && again.output.hasPrefix("replayed 0 dead letters"), "\(again)")
        #expect(try await high(cluster, "telemetry") == 50, "a second run sends nothing twice")

        let narrow = try await runQuixd(["dlq", "replay", "--brokers", brokers, "--topic", "dlq", "--error", "bad-data", "--to", "retry"])
        #expect(narrow.output.hasPrefix("replayed 30 dead letters"), "another selection is another record: \(narrow)")
        #expect(try await messages(cluster, "retry", expected: 30).count == 30)
        #expect(try await high(cluster, "telemetry") == 50)
    }

    @Test("a missing dead-letter topic and a bad --since are refused at once, saying what to do")
    func mistakes() async throws {
        let cluster = try MockCluster(brokers: 1)
        let missing = try await runQuixd(["dlq", "list", "--brokers", cluster.bootstrapServers, "--topic", "nope"])
        #expect(missing.status != 0 && missing.error.contains("dead-letter topic \"nope\" does not exist"), "\(missing)")
        let since = try await runQuixd(["dlq", "replay", "--brokers", cluster.bootstrapServers, "--topic", "nope", "--since", "yesterday"])
        #expect(since.status != 0 && since.error.contains("--since expects an ISO 8601 time"), "\(since)")
    }
}
