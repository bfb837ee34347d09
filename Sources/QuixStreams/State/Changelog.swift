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

    /// Produces `effects` and a marker for checkpoint `offset` to `partition`; returns the
    /// changelog offset after the marker once everything is stored.
    func publish(_ effects: [(key: [UInt8], value: [UInt8]?)], partition: Int32, checkpoint offset: Int64) async throws -> Int64 {
        let failure = Mutex<KafkaError?>(nil)
        for effect in effects {
            try await producer.send(OutgoingMessage(topic: topic, key: effect.key, value: effect.value, partition: partition)) { report in
                if let error = report.error { failure.withLock { $0 = $0 ?? error } }
            }
        }
        let marker = try await producer.deliver(
            OutgoingMessage(topic: topic, key: Changelog.markerKey, value: Changelog.markerValue(offset), partition: partition))
        try await producer.flush()
        if let error = failure.withLock({ $0 }) { throw error }
        return marker.offset + 1
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

    @available(*, noasync)
    func restore(_ state: PartitionState) throws {
        let partition = state.partition.partition
        let local = try state.changelogOffset ?? 0
        var settings = ConsumerSettings(client: client, group: nil)
        settings.reportPartitionEnd = true
        settings.startFrom = .earliest
        let consumer = try KafkaConsumer(settings: settings, logger: logger)  // closes when it goes away
        try consumer.assign([TopicPartitionOffset(topic, partition, offset: local)])

        var batch: [[UInt8]: [UInt8]?] = [:]
        var read = 0
        var applied = 0
        let started = ContinuousClock.now
        reading: while true {
            guard let event = consumer.poll(timeout: Self.readTimeout) else {
                throw StreamStateError(.storage, "restoring \(state.partition) from \(topic)[\(partition)]: no record for \(Self.readTimeout)")
            }
            switch event {
            case .messages(let messages):
                for message in messages {
                    if read == 0 && message.offset < local {
                        // The changelog restarts below what the local state already holds.
                        try mismatch(state, local: local, found: message.offset)
                        return try restore(state)
                    }
                    read += 1
                    let key = message.key ?? []
                    if key.elementsEqual(Changelog.markerKey) {
                        guard let checkpoint = Changelog.markerOffset(message.value ?? []) else { continue }
                        try state.applyRestored(batch, checkpoint: checkpoint, changelogOffset: message.offset + 1)
                        applied += batch.count
                        batch.removeAll(keepingCapacity: true)
                    } else if Changelog.parse(key) != nil {
                        batch[Array(key)] = message.value.map(Array.init)
                    }
                    if read % 100_000 == 0 {
                        logger.info("restoring state", metadata: ["kafka.partition": "\(state.partition)", "records": "\(read)"])
                    }
                }
            case .partitionEnd(let end):
                if read == 0 && end.offset < local {
                    try mismatch(state, local: local, found: end.offset)
                    return try restore(state)
                }
                break reading
            case .error(let error):
                logger.warning("reading the changelog", metadata: ["topic": "\(topic)", "error": "\(error)"])
            case .assigned, .revoked, .lost, .idle:
                break
            }
        }
        if read > 0 {
            logger.info(
                "state restored from the changelog",
                metadata: [
                    "kafka.partition": "\(state.partition)", "records": "\(read)", "applied": "\(applied)",
                    "discarded": "\(batch.count)", "seconds": "\(ContinuousClock.now - started)",
                ])
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
