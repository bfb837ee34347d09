import ArgumentParser
import Foundation
import Logging
import QuixKafka
import Synchronization

/// `quixd dlq`: the way back for dead-lettered messages.
struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "List a dead-letter topic's messages by error, or replay them to their pipeline's input.",
        subcommands: [List.self, Replay.self])

    /// The topic and the selection both subcommands take.
    struct Selection: ParsableArguments {
        @OptionGroup var target: TopicOptions

        @Option(help: "Only letters of this pipeline (the quixd-pipeline header).")
        var pipeline: String?

        @Option(help: "Only letters whose error code or message contains this text.")
        var error: String?

        @Option(help: "Only letters written at or after this time (ISO 8601, e.g. 2026-12-06T10:00:00Z).")
        var since: String?

        func selection() throws -> DeadLetterSelection {
            var selection = DeadLetterSelection(pipeline: pipeline, error: error)
            if let since {
                guard let date = ISO8601DateFormatter().date(from: since) else {
                    throw ValidationError("--since expects an ISO 8601 time such as 2026-12-06T10:00:00Z, found \(since)")
                }
                selection.sinceMilliseconds = Int64(date.timeIntervalSince1970 * 1_000)
            }
            return selection
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the dead letters with their headers, grouped by error (code, stage and message).")

        @OptionGroup var options: Selection

        func run() async throws {
            let selection = try options.selection()
            let (letters, _) = try await DeadLetterReader.read(
                brokers: options.target.servers, topic: options.target.topic, group: nil, logger: quietLogger())
            let selected = letters.keys.sorted().flatMap { letters[$0]! }.filter(selection.contains)
            let groups = Dictionary(grouping: selected, by: \.error)
            print("\(selected.count) dead letters in \(options.target.topic), \(groups.count) errors")
            for (error, group) in groups.sorted(by: { $0.value.count > $1.value.count || ($0.value.count == $1.value.count && $0.key < $1.key) }) {
                print("\n\(group.count) × \(error)")
                for letter in group {
                    let headers = letter.headers.filter { !["quixd-error", "quixd-error-code", "quixd-stage"].contains($0.name) }
                        .map { "\($0.name)=\($0.value.map { String(decoding: $0, as: UTF8.self) } ?? "")" }
                    let time = letter.timestampMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1_000).formatted(.iso8601) } ?? "-"
                    print("  [\(letter.partition)]@\(letter.offset)  \(letter.streamID)  \(time)  \(letter.value.count) B  " + headers.joined(separator: " "))
                }
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send dead letters again, with their key and value, to their pipeline's input or --to.",
            discussion: """
                Each letter goes to the topic it came from (its quixd-source-topic header), or to --to, with \
                its original key, value and timestamp, its headers other than quixd-*, and \
                quixd-replayed-from naming the letter. Letters are read partition by partition in \
                offset order, so the letters of one stream go in their original order. What was \
                replayed is recorded as the committed offsets of the consumer group \
                quixd-dlq-replay.TOPIC.HASH (HASH of --to, --pipeline, --error and --since): a second \
                run with the same selection sends nothing twice. A different selection is a different \
                record. Progress goes to standard error.
                """)

        @OptionGroup var options: Selection

        @Option(help: "Send every letter to this topic instead of the one it came from.")
        var to: String?

        @Flag(help: "Say what would be sent, and send and record nothing.")
        var dryRun = false

        func run() async throws {
            let selection = try options.selection()
            let (brokers, topic) = (options.target.servers, options.target.topic)
            let group = Self.recordGroup(topic: topic, to: to, selection: selection)
            let logger = quietLogger()
            let (letters, ends) = try await DeadLetterReader.read(brokers: brokers, topic: topic, group: group, logger: logger)
            let selected = letters.mapValues { $0.filter(selection.contains) }
            let total = selected.values.reduce(0) { $0 + $1.count }
            for letter in selected.values.joined() where (to ?? letter.sourceTopic) == nil {
                throw ValidationError("dead letter [\(letter.partition)]@\(letter.offset) has no quixd-source-topic header; say where it goes with --to")
            }
            if dryRun {
                for partition in selected.keys.sorted() {
                    for letter in selected[partition]! {
                        print("would replay [\(letter.partition)]@\(letter.offset)  \(letter.streamID)  to \(to ?? letter.sourceTopic!)")
                    }
                }
                print("would replay \(total) dead letters (dry run: nothing sent or recorded)")
                return
            }
            let failures = DeliveryFailures()
            let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: brokers), logger: logger)
            let recorder = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: brokers, group: group), logger: logger)
            var progress = ProgressReporter(total: total, unit: "dead letters replayed")
            var sent = 0
            do {
                // One partition at a time: it is sent, acknowledged and recorded before the next.
                for partition in ends.keys.sorted() {
                    for letter in selected[partition] ?? [] {
                        try await producer.send(message(letter, topic: topic), onDelivery: failures.note)
                        sent += 1
                        progress.update(sent)
                    }
                    try await producer.flush(timeout: .seconds(60))
                    if let failure = failures.first {
                        throw DeadLetterError("the broker did not take a replayed letter (\(failure)); nothing of partition \(partition) is recorded, so a rerun sends it again")
                    }
                    try await recorder.commit([TopicPartitionOffset(topic, partition, offset: ends[partition]!)])
                }
            } catch {
                await producer.close()
                await recorder.close()
                throw error
            }
            await producer.close()
            await recorder.close()
            print("replayed \(sent) dead letters from \(topic); recorded in consumer group \(group)")
        }

        private func message(_ letter: DeadLetter, topic: String) -> OutgoingMessage {
            var headers = letter.headers.filter { !$0.name.hasPrefix("quixd-") }
            headers.append(KafkaHeader("quixd-replayed-from", Array("\(topic)[\(letter.partition)]@\(letter.offset)".utf8)))
            return OutgoingMessage(
                topic: to ?? letter.sourceTopic!, key: letter.key, value: letter.value, headers: headers,
                timestampMilliseconds: letter.timestampMilliseconds)
        }

        /// The consumer group that records what a replay of this selection sent.
        static func recordGroup(topic: String, to: String?, selection: DeadLetterSelection) -> String {
            let described = [to ?? "(source)", selection.pipeline ?? "", selection.error ?? "", selection.sinceMilliseconds.map(String.init) ?? ""]
            var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a: the same in every run
            for byte in described.joined(separator: "\u{0}").utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
            return "quixd-dlq-replay.\(topic).\(String(hash, radix: 16))"
        }
    }
}

/// The first delivery failure of a replay, noted from the producer's delivery thread.
private final class DeliveryFailures: Sendable {
    private let failure = Mutex<KafkaError?>(nil)

    var first: KafkaError? { failure.withLock { $0 } }

    @Sendable func note(_ report: DeliveryReport) {
        guard let error = report.error else { return }
        failure.withLock { $0 = $0 ?? error }
    }
}

private func quietLogger() -> Logger {
    var logger = Logger(label: "quixd.dlq")
    logger.logLevel = .warning
    return logger
}
