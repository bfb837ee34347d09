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

/// Produces checkpoints to the changelog: with its own producer, or (exactly-once) through the
/// consumer's transactional one, which it does not close.
final class ChangelogWriter: Sendable {
    let topic: String
    private let producer: KafkaProducer
    private let ownsProducer: Bool

    init(topic: String, client: KafkaClientSettings, producer shared: KafkaProducer?, logger: Logger) throws {
        self.topic = topic
        producer = try shared ?? KafkaProducer(settings: ProducerSettings(client: client), logger: logger)
        ownsProducer = shared == nil
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

    func close() async {
        if ownsProducer { await producer.close() }
    }
}
