import Foundation
import Logging
import QuixKafka
import QuixState
import Synchronization

/// What a topic consumer does when a partition's local state and its changelog disagree in a
/// way a restore cannot settle (the changelog is shorter than the local state: it was deleted
/// or recreated).
public enum StateMismatchPolicy: String, Sendable, Hashable {
    /// Stop with an error that says what was found.
    case fail
    /// Drop the local state and rebuild it from the changelog.
    case rebuild
}

/// The changelog of a topic consumer's state: a compacted topic with one partition per input
/// partition, named `<state name>-<input topic>-changelog`. Each checkpoint produces the
/// partition's changed keys (a tombstone for a deleted one), then a checkpoint marker holding
/// the input offset; the LMDB transaction that follows records the changelog offset after the
/// marker. A restore applies records only up to the last marker, so a crash between producing
/// and committing leaves nothing half-applied.
enum Changelog {
    /// Marker records have this key; state keys start with a store name's length, which is
    /// never 0xFFFF.
    static let markerKey: [UInt8] = [0xFF, 0xFF] + Array("checkpoint".utf8)

    /// The changelog key of `key` in `store`: the store name's length (2 bytes), the name, the key.
    static func recordKey(store: String, key: [UInt8]) -> [UInt8] {
        let name = Array(store.utf8)
        return [UInt8(name.count >> 8), UInt8(name.count & 0xFF)] + name + key
    }

    /// The store and state key of a changelog key; nil for a marker or a malformed key.
    static func parse(_ record: ArraySlice<UInt8>) -> (store: String, key: [UInt8])? {
        guard record.count >= 2 else { return nil }
        let start = record.startIndex
        let length = Int(record[start]) << 8 | Int(record[start + 1])
        guard length != 0xFFFF, record.count >= 2 + length else { return nil }
        let name = String(decoding: record[(start + 2)..<(start + 2 + length)], as: UTF8.self)
        return (name, Array(record[(start + 2 + length)...]))
    }

    static func markerValue(_ offset: Int64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: UInt64(bitPattern: offset) >> (56 - 8 * $0)) }
    }

    static func markerOffset(_ value: ArraySlice<UInt8>) -> Int64? {
        guard value.count == 8 else { return nil }
        return Int64(bitPattern: value.reduce(0) { $0 << 8 | UInt64($1) })
    }
}

/// Produces checkpoints to the changelog.
final class ChangelogWriter: Sendable {
    let topic: String
    private let producer: KafkaProducer

    init(topic: String, client: KafkaClientSettings, logger: Logger) throws {
        self.topic = topic
        producer = try KafkaProducer(settings: ProducerSettings(client: client), logger: logger)
    }

    /// The outcome of one partition's checkpoint records, known after `flush()`.
    final class Marker: Sendable {
        private let outcome = Mutex<(failure: KafkaError?, offset: Int64?)>((nil, nil))

        fileprivate func record(_ report: DeliveryReport, isMarker: Bool) {
            outcome.withLock { outcome in
                if let error = report.error {
                    outcome.failure = outcome.failure ?? error
                } else if isMarker {
                    outcome.offset = report.offset
                }
            }
        }

        /// The changelog offset after the marker; throws if any record was not stored.
        func offsetAfter() throws -> Int64 {
            let (failure, offset) = outcome.withLock { $0 }
            if let failure { throw failure }
            guard let offset else {
                throw StreamStateError(.storage, "the changelog marker has no delivery report; was the changelog flushed?")
            }
            return offset + 1
        }
    }

    /// Queues `effects` and a marker for checkpoint `offset` to `partition`. The returned marker
    /// tells, after `flush()`, where the marker landed or why the records were not stored.
    func enqueue(_ effects: [(key: [UInt8], value: [UInt8]?)], partition: Int32, checkpoint offset: Int64) async throws -> Marker {
        let marker = Marker()
        for effect in effects {
            try await producer.send(OutgoingMessage(topic: topic, key: effect.key, value: effect.value, partition: partition)) { report in
                marker.record(report, isMarker: false)
            }
        }
        try await producer.send(
            OutgoingMessage(topic: topic, key: Changelog.markerKey, value: Changelog.markerValue(offset), partition: partition)
        ) { report in
            marker.record(report, isMarker: true)
        }
        return marker
    }

    /// Waits until every queued record has its delivery report.
    func flush() async throws {
        try await producer.flush()
    }

    func close() async { await producer.close() }
}

/// Brings a partition's local state up to its changelog, synchronously (it runs in the
/// rebalance callback, before the partition fetches).
struct ChangelogRestorer {
    let topic: String
    let client: KafkaClientSettings
    let policy: StateMismatchPolicy
    let logger: Logger

    /// How long a restore waits for the next changelog record before it gives up.
    static let readTimeout: Duration = .seconds(30)

    /// Restores the partitions together, with one consumer reading their changelog partitions
    /// side by side until each reports its end.
    @available(*, noasync)
    func restore(_ states: [PartitionState]) throws {
        guard !states.isEmpty else { return }
        var progress: [Int32: Progress] = [:]
        for state in states { progress[state.partition.partition] = Progress(state: state, local: try state.changelogOffset ?? 0) }
        var settings = ConsumerSettings(client: client, group: nil)
        settings.reportPartitionEnd = true
        settings.startFrom = .earliest
        let consumer = try KafkaConsumer(settings: settings, logger: logger)  // closes when it goes away
        try consumer.assign(progress.values.map { TopicPartitionOffset(topic, $0.state.partition.partition, offset: $0.local) })

        let started = ContinuousClock.now
        var rebuild: [PartitionState] = []
        var open = Set(progress.keys)
        while !open.isEmpty {
            guard let event = consumer.poll(timeout: Self.readTimeout) else {
                throw StreamStateError(.storage, "restoring from \(topic): no record for \(Self.readTimeout) (partitions \(open.sorted()))")
            }
            switch event {
            case .messages(let messages):
                for message in messages {
                    guard open.contains(message.partition), let entry = progress[message.partition] else { continue }
                    if entry.read == 0 && message.offset < entry.local {
                        // The changelog restarts below what the local state already holds.
                        try mismatch(entry.state, local: entry.local, found: message.offset)
                        rebuild.append(entry.state)
                        open.remove(message.partition)
                        continue
                    }
                    entry.read += 1
                    let key = message.key ?? []
                    if key.elementsEqual(Changelog.markerKey) {
                        if let checkpoint = Changelog.markerOffset(message.value ?? []) {
                            try entry.state.applyRestored(entry.batch, checkpoint: checkpoint, changelogOffset: message.offset + 1)
                            entry.applied += entry.batch.count
                            entry.batch.removeAll(keepingCapacity: true)
                        }
                    } else if Changelog.parse(key) != nil {
                        entry.batch[Array(key)] = message.value.map(Array.init)
                    }
                    if entry.read % 100_000 == 0 {
                        logger.info("restoring state", metadata: ["kafka.partition": "\(entry.state.partition)", "records": "\(entry.read)"])
                    }
                }
            case .partitionEnd(let end):
                guard open.contains(end.partition), let entry = progress[end.partition] else { continue }
                open.remove(end.partition)
                if entry.read == 0 && end.offset < entry.local {
                    try mismatch(entry.state, local: entry.local, found: end.offset)
                    rebuild.append(entry.state)
                } else if entry.read > 0 {
                    logger.info(
                        "state restored from the changelog",
                        metadata: [
                            "kafka.partition": "\(entry.state.partition)", "records": "\(entry.read)", "applied": "\(entry.applied)",
                            "discarded": "\(entry.batch.count)", "seconds": "\(ContinuousClock.now - started)",
                        ])
                }
            case .error(let error):
                if let missing = ChangelogTopic.missingPartition(error, topic: topic) { throw missing }
                logger.warning("reading the changelog", metadata: ["topic": "\(topic)", "error": "\(error)"])
            case .assigned, .revoked, .lost, .idle:
                break
            }
        }
        try restore(rebuild)  // the partitions reset by onStateMismatch: rebuild, from the beginning
    }

    /// One partition's restore: where it started, what it read, the records since its last
    /// marker. A class: the batch grows in place (a struct copied out of the table and back
    /// copied the whole batch on every record).
    private final class Progress {
        let state: PartitionState
        let local: Int64
        var read = 0
        var applied = 0
        var batch: [[UInt8]: [UInt8]?] = [:]

        init(state: PartitionState, local: Int64) {
            self.state = state
            self.local = local
        }
    }

    /// The changelog holds less than the local state: apply the policy.
    private func mismatch(_ state: PartitionState, local: Int64, found: Int64) throws {
        let what = "the local state of \(state.partition) has read \(topic)[\(state.partition.partition)] up to \(local), but the changelog ends or restarts at \(found)"
        switch policy {
        case .fail:
            throw StreamStateError(.storage, what + "; set onStateMismatch to rebuild to rebuild the state from the changelog")
        case .rebuild:
            logger.warning("state mismatch: rebuilding from the changelog", metadata: ["what": "\(what)"])
            try state.reset()
        }
    }
}
