import Foundation
import Logging
import QuixKafka
import QuixProtocol

/// A message a pipeline dead-lettered (`onError: dead-letter`): the failed message's key and
/// bytes, with the `quixd-*` headers that say where it came from and why it failed.
struct DeadLetter: Sendable {
    let partition: Int32
    let offset: Int64
    let timestampMilliseconds: Int64?
    let key: [UInt8]?
    let value: [UInt8]
    let headers: [KafkaHeader]

    init(_ message: KafkaMessage) {
        partition = message.partition
        offset = message.offset
        timestampMilliseconds = message.timestampMilliseconds
        key = message.key.map(Array.init)
        value = message.value.map(Array.init) ?? []
        headers = message.headers
    }

    func header(_ name: String) -> String? {
        headers.last { $0.name == name }?.value.map { String(decoding: $0, as: UTF8.self) }
    }

    var streamID: String { QuixCodec.streamID(fromKey: key?[...]) }
    var pipeline: String? { header("quixd-pipeline") }
    var sourceTopic: String? { header("quixd-source-topic") }
    /// `quixd-error-code  stage: message`, what `dlq list` groups by.
    var error: String {
        "\(header("quixd-error-code") ?? "no code")  \(header("quixd-stage") ?? "no stage"): \(header("quixd-error") ?? "no message")"
    }
    /// Where it came from, `topic[partition]@offset`, when its headers say.
    var source: String? {
        guard let topic = sourceTopic, let partition = header("quixd-source-partition"), let offset = header("quixd-source-offset") else { return nil }
        return "\(topic)[\(partition)]@\(offset)"
    }
}

/// Which dead letters a `dlq` command works on.
struct DeadLetterSelection: Sendable, Hashable {
    var pipeline: String?
    /// Text in the error message or code.
    var error: String?
    /// Milliseconds since the Unix epoch: letters written before it are left out.
    var sinceMilliseconds: Int64?

    func contains(_ letter: DeadLetter) -> Bool {
        if let pipeline, letter.pipeline != pipeline { return false }
        if let error, !letter.error.localizedCaseInsensitiveContains(error) { return false }
        if let sinceMilliseconds, (letter.timestampMilliseconds ?? .min) < sinceMilliseconds { return false }
        return true
    }
}

/// Reads a dead-letter topic, every partition to the end it had when reading began.
enum DeadLetterReader {
    /// The letters of each partition in offset order, and the end offsets read to. Without
    /// `group`, from the beginning; with one, from that group's committed offsets.
    static func read(
        brokers: [String], topic: String, group: String?, logger: Logger
    ) async throws -> (letters: [Int32: [DeadLetter]], ends: [Int32: Int64]) {
        let admin = try KafkaAdmin(settings: AdminSettings(bootstrapServers: brokers), logger: logger)
        guard let metadata = try await admin.metadata(topic: topic).first, !metadata.partitions.isEmpty else {
            throw DeadLetterError("dead-letter topic \"\(topic)\" does not exist; it is the onError.topic of a pipeline")
        }
        var settings = ConsumerSettings(bootstrapServers: brokers, group: group)
        settings.startFrom = .earliest
        settings.reportPartitionEnd = true
        let consumer = try KafkaConsumer(settings: settings, logger: logger)
        let read: Result<(letters: [Int32: [DeadLetter]], ends: [Int32: Int64]), any Error>
        do {
            read = .success(try await self.read(consumer, topic: topic, partitions: metadata.partitions.map(\.id), committed: group != nil))
        } catch {
            read = .failure(error)
        }
        await consumer.close()
        return try read.get()
    }

    private static func read(
        _ consumer: KafkaConsumer, topic: String, partitions: [Int32], committed: Bool
    ) async throws -> (letters: [Int32: [DeadLetter]], ends: [Int32: Int64]) {
        var ends: [Int32: Int64] = [:]
        var next: [Int32: Int64] = [:]
        for partition in partitions {
            let topicPartition = TopicPartition(topic, partition)
            ends[partition] = try await consumer.watermarks(topicPartition).high
            let stored = committed ? try await consumer.committed([topicPartition]).first?.offset : nil
            next[partition] = stored.flatMap { $0 >= 0 ? $0 : nil } ?? 0
        }
        let unread = next.filter { $0.value < ends[$0.key]! }
        var letters: [Int32: [DeadLetter]] = [:]
        guard !unread.isEmpty else { return (letters, ends) }
        try consumer.assign(unread.map { TopicPartitionOffset(topic, $0.key, offset: $0.value) })
        var open = Set(unread.keys)
        for await event in consumer.events {
            switch event {
            case .messages(let messages):
                for message in messages where message.offset < ends[message.partition]! {
                    letters[message.partition, default: []].append(DeadLetter(message))
                    if message.offset + 1 >= ends[message.partition]! { open.remove(message.partition) }
                }
            case .partitionEnd(let end):
                if end.offset >= ends[end.topicPartition.partition]! { open.remove(end.topicPartition.partition) }
            case .error(let error):
                throw DeadLetterError("reading \(topic): \(error)")
            default:
                break
            }
            if open.isEmpty { break }
        }
        return (letters, ends)
    }
}

struct DeadLetterError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
