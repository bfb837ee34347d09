import Foundation
import Logging
import QuixKafka
import QuixState

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
