import ArgumentParser
import Foundation
import Logging
import QuixKafka
import QuixProtocol
import Synchronization

struct Consume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a topic's messages as JSON lines, Quix Streams 0.5 packages decoded.",
        discussion: """
            One line per message: stream id, partition, offset, Kafka timestamp (ms), and, in the \
            quix format, the codec, envelope, model key and the model as its JT JSON (binary values \
            as base64). Split messages are merged (the line has the offset of the first part and \
            "parts"). `quixd produce` reads these lines back, so `consume | produce` copies a topic. \
            Without --group, every partition is read; with one, offsets are committed as lines are \
            printed. A message that cannot be decoded is reported on standard error with its \
            partition and offset, and the rest goes on.
            """)

    enum Format: String, ExpressibleByArgument {
        case quix, json, raw
    }

    @OptionGroup var target: TopicOptions

    @Option(help: "A consumer group to join (commits offsets); without one, read every partition.")
    var group: String?

    @Flag(help: "Start at the oldest message (the default starts at the newest).")
    var fromBeginning = false

    @Option(help: "quix (decode 0.5 packages), json (each value is a JSON document), raw (base64).")
    var format = Format.quix

    @Option(help: "Stop after this many lines.")
    var count: Int?

    @Option(help: "Stop after this long.")
    var timeout: DurationArgument?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() async throws {
        var logger = Logger(label: "quixd.consume")
        logger.logLevel = .warning
        let (servers, topic) = (target.servers, target.topic)
        var settings = ConsumerSettings(bootstrapServers: servers, group: group)
        settings.startFrom = fromBeginning ? .earliest : .latest
        settings.reportPartitionEnd = false
        let consumer = try KafkaConsumer(settings: settings, logger: logger)
        if group != nil {
            try consumer.subscribe([topic])
        } else {
            let admin = try KafkaAdmin(settings: AdminSettings(bootstrapServers: servers), logger: logger)
            guard let metadata = try await admin.metadata(topic: topic).first else {
                throw ValidationError("topic \"\(topic)\" does not exist")
            }
            let start = fromBeginning ? KafkaOffset.beginning : KafkaOffset.end
            try consumer.assign(metadata.partitions.map { TopicPartitionOffset(topic, $0.id, offset: start) })
        }

        let limit = count
        let format = format
        let summary = ConsumeSummary()
        _ = try await withThrowingTaskGroup(of: Int?.self) { tasks in
            tasks.addTask { try await Self.printLines(consumer, format: format, limit: limit, commits: group != nil, summary: summary) }
            if let timeout {
                tasks.addTask {
                    try? await Task.sleep(for: timeout.duration)
                    return nil
                }
            }
            let first = try await tasks.next()!
            tasks.cancelAll()
            return first
        }
        if group != nil { try? await consumer.commit() }
        await consumer.close()
        report(summary.line(topic: topic))
    }

    /// Prints lines until `limit` (or cancellation); returns how many.
    private static func printLines(
        _ consumer: KafkaConsumer, format: Format, limit: Int?, commits: Bool, summary: ConsumeSummary
    ) async throws -> Int {
        var output = OutputBuffer()
        defer { output.flush() }
        var assembler = PackageAssembler()
        var printed = 0
        for await event in consumer.events {
            switch event {
            case .messages(let batch):
                var stored: [TopicPartition: Int64] = [:]
                for message in batch {
                    let ready: [PackageAssembler.Assembled]
                    if format == .quix {
                        ready = assembler.add(
                            partition: message.partition, key: message.key.map(Array.init), offset: message.offset,
                            timestampMilliseconds: message.timestampMilliseconds, value: message.value ?? [])
                        for error in assembler.takeDropped() {
                            report("\(message.topic)[\(message.partition)]: \(error)")
                            summary.error()
                        }
                    } else {
                        ready = [
                            PackageAssembler.Assembled(
                                partition: message.partition, key: message.key.map(Array.init), offset: message.offset,
                                lastOffset: message.offset, parts: 1, timestampMilliseconds: message.timestampMilliseconds,
                                value: message.value ?? [])
                        ]
                    }
                    for package in ready {
                        if let line = line(for: package, format: format, topic: message.topic, summary: summary) { output.line(line) }
                        printed += 1
                        stored[message.topicPartition] = package.lastOffset + 1
                        if let limit, printed >= limit {
                            output.flush()
                            if commits { try? consumer.storeOffsets(stored.map { TopicPartitionOffset($0.key, offset: $0.value) }) }
                            return printed
                        }
                    }
                }
                output.flush()
                if commits { try? consumer.storeOffsets(stored.map { TopicPartitionOffset($0.key, offset: $0.value) }) }
            case .error(let error):
                report("consume: \(error)")
                summary.error()
            case .revoked, .lost, .assigned, .partitionEnd, .idle:
                break
            }
        }
        return printed
    }

    private static func line(for package: PackageAssembler.Assembled, format: Format, topic: String, summary: ConsumeSummary) -> [UInt8]? {
        let stream = QuixCodec.streamID(fromKey: package.key?[...])
        switch format {
        case .quix:
            if package.key.map({ String(decoding: $0, as: UTF8.self) }) == QuixCodec.keepAliveKey { return nil }
            do {
                let record = try QuixRecord(package)
                summary.message(stream: stream, kind: ConsumeSummary.kind(of: record.message))
                return record.jsonLine()
            } catch {
                report("\(topic)[\(package.partition)] offset \(package.offset): \(error)")
                summary.error()
                return nil
            }
        case .json, .raw:
            summary.message(stream: stream, kind: format.rawValue)
            let record = QuixRecord(
                stream: stream, message: .raw(Array(package.value)), partition: package.partition, offset: package.offset,
                timestamp: package.timestampMilliseconds)
            guard format == .json else { return record.jsonLine() }
            guard (try? JSONSerialization.jsonObject(with: Data(package.value), options: .fragmentsAllowed)) != nil else {
                report("\(topic)[\(package.partition)] offset \(package.offset): the value is not JSON")
                summary.error()
                return nil
            }
            var line = Array(#"{"stream":"#.utf8)
            line += (try? JSONSerialization.data(withJSONObject: stream, options: .fragmentsAllowed)).map(Array.init) ?? []
            line += Array(#","partition":\#(package.partition),"offset":\#(package.offset),"value":"#.utf8)
            line += package.value
            line.append(UInt8(ascii: "}"))
            return line
        }
    }
}

/// What `quixd consume` read, for its last line: messages, streams, models by kind, errors.
final class ConsumeSummary: Sendable {
    private struct Counts {
        var messages = 0
        var streams = Set<String>()
        var kinds: [String: Int] = [:]
        var errors = 0
    }

    private let counts = Mutex(Counts())

    func message(stream: String, kind: String) {
        counts.withLock { counts in
            counts.messages += 1
            counts.streams.insert(stream)
            counts.kinds[kind, default: 0] += 1
        }
    }

    func error() { counts.withLock { $0.errors += 1 } }

    /// `consume: 12 messages from telemetry, 3 streams (9 ParameterData, 3 StreamProperties), 0 errors`
    func line(topic: String) -> String {
        counts.withLock { counts in
            let kinds = counts.kinds.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.map { "\($0.value) \($0.key)" }
            return "consume: \(counts.messages) messages from \(topic), \(counts.streams.count) streams"
                + (kinds.isEmpty ? "" : " (\(kinds.joined(separator: ", ")))") + ", \(counts.errors) errors"
        }
    }

    static func kind(of message: DecodedMessage) -> String {
        switch message {
        case .model(let model): model.modelKey
        case .frame: ModelKey.parameterData
        case .unknown(let key, _, _): "unknown \(key)"
        case .raw: "not Quix"
        }
    }
}
