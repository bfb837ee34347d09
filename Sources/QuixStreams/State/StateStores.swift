import Foundation
import Logging
import QuixKafka
import QuixState
import Synchronization

/// Where a topic consumer keeps per-stream state.
public struct StateOptions: Sendable, Hashable {
    /// The state directory (a Kubernetes PVC, a systemd StateDirectory).
    public var directory: String
    /// The folder under `directory` for this consumer's partitions; the consumer group when nil.
    public var name: String?
    /// Whether a stream's state is deleted when the stream ends with a StreamEnd (fleets of
    /// short-lived streams), or kept.
    public var clearOnStreamEnd: Bool
    /// Whether every change also goes to a compacted changelog topic
    /// (`<name>-<input topic>-changelog`), from which a partition's state is restored on a
    /// replica whose directory is missing or behind.
    public var changelog: Bool
    /// What to do when the local state holds more than its changelog.
    public var onStateMismatch: StateMismatchPolicy

    public init(
        directory: String, name: String? = nil, clearOnStreamEnd: Bool = false, changelog: Bool = true,
        onStateMismatch: StateMismatchPolicy = .fail
    ) {
        self.directory = directory
        self.name = name
        self.clearOnStreamEnd = clearOnStreamEnd
        self.changelog = changelog
        self.onStateMismatch = onStateMismatch
    }
}

/// The state of a topic consumer's assigned partitions: one `PartitionState` per partition,
/// under `<directory>/<name>/<topic>-<partition>/`, opened when the partition is assigned
/// (on the consumer's thread, before it fetches: restored from the changelog first) and closed
/// when it is revoked.
final class StateStores: Sendable {
    let root: String
    let options: StateOptions
    let changelog: ChangelogWriter?
    private let restorer: ChangelogRestorer?
    private let logger: Logger
    private let state = Mutex(Registry())

    private struct Registry {
        var open: [TopicPartition: PartitionState] = [:]
        /// Closed partitions whose environment may still be alive (a handler kept a state):
        /// reopening one reuses it, as LMDB allows one environment per directory and process.
        var closed: [TopicPartition: WeakPartition] = [:]
        var failures: [TopicPartition: any Error] = [:]
        /// Where each partition resumes from its state's checkpoint, until its first message
        /// shows whether that offset still exists.
        var resumes: [TopicPartition: Int64] = [:]
        /// Partitions opened again while still open: assigned back before their revocation was
        /// handled.
        var reopened: Set<TopicPartition> = []
    }

    private struct WeakPartition {
        weak var partition: PartitionState?
    }

    /// - Parameter producer: the transactional producer the changelog writes through (exactly-once).
    init(options: StateOptions, name: String, topic: String, client: KafkaClientSettings, producer: KafkaProducer?, logger: Logger) throws {
        self.options = options
        let stateName = options.name ?? name
        root = URL(fileURLWithPath: options.directory).appendingPathComponent(stateName).path
        self.logger = logger
        if options.changelog {
            let changelogTopic = "\(stateName)-\(topic)-changelog"
            changelog = try ChangelogWriter(topic: changelogTopic, client: client, producer: producer, logger: logger)
            restorer = ChangelogRestorer(topic: changelogTopic, client: client, policy: options.onStateMismatch, logger: logger)
        } else {
            changelog = nil
            restorer = nil
        }
    }

    /// Opens the partitions' state; returns, for those that have a checkpoint, the offset to
    /// resume from. A partition whose state cannot be opened is recorded in `takeFailures`.
    func open(_ partitions: [TopicPartition]) -> [TopicPartition: Int64] {
        var opened: [PartitionState] = []
        for partition in partitions {
            do {
                opened.append(try openPartition(partition))
            } catch {
                logger.error("state could not be opened", metadata: ["kafka.partition": "\(partition)", "error": "\(error)"])
                state.withLock { $0.failures[partition] = error }
            }
        }
        do {
            try restorer?.restore(opened)
        } catch {
            logger.error("state could not be restored", metadata: ["partitions": "\(partitions)", "error": "\(error)"])
            state.withLock { registry in for partition in opened { registry.failures[partition.partition] = error } }
            return [:]
        }
        var offsets: [TopicPartition: Int64] = [:]
        for partition in opened {
            do {
                guard let checkpoint = try partition.checkpoint else { continue }
                offsets[partition.partition] = checkpoint
                state.withLock { $0.resumes[partition.partition] = checkpoint }
                logger.info(
                    "state opened; resuming from its checkpoint",
                    metadata: ["state.path": "\(partition.environment.path)", "kafka.partition": "\(partition.partition)", "offset": "\(checkpoint)"])
            } catch {
                state.withLock { $0.failures[partition.partition] = error }
            }
        }
        return offsets
    }

    private func openPartition(_ partition: TopicPartition) throws -> PartitionState {
        if let open = state.withLock({ registry -> PartitionState? in
            if let open = registry.open[partition] {
                registry.reopened.insert(partition)
                return open
            }
            if let alive = registry.closed.removeValue(forKey: partition)?.partition {
                registry.open[partition] = alive
                return alive
            }
            return nil
        }) {
            return open
        }
        let directory = URL(fileURLWithPath: root).appendingPathComponent("\(partition.topic)-\(partition.partition)").path
        let opened: PartitionState
        do {
            opened = try PartitionState(directory: directory, partition: partition, changelogged: restorer != nil)
        } catch let error as StateError where error.code == .corrupt {
            opened = try rebuildCorrupt(directory, partition, error)
        }
        state.withLock { $0.open[partition] = opened }
        return opened
    }

    /// A corrupt environment: with a changelog and `onStateMismatch: rebuild`, it is moved
    /// aside (kept for a post-mortem) and rebuilt from the changelog; otherwise the error
    /// stands, with what to do.
    private func rebuildCorrupt(_ directory: String, _ partition: TopicPartition, _ error: StateError) throws -> PartitionState {
        guard restorer != nil, options.onStateMismatch == .rebuild else {
            throw StreamStateError(
                .storage,
                "the state of \(partition) at \(directory) is corrupt; with a changelog, onStateMismatch: rebuild rebuilds it",
                underlying: error)
        }
        let aside = directory + ".corrupt-\(Int(Date().timeIntervalSince1970))"
        try FileManager.default.moveItem(atPath: directory, toPath: aside)
        logger.warning(
            "corrupt state moved aside; rebuilding it from the changelog",
            metadata: ["state.path": "\(directory)", "moved.to": "\(aside)", "error": "\(error)"])
        return try PartitionState(directory: directory, partition: partition, changelogged: true)
    }

    /// Checks a partition's first message after it resumed from its state's checkpoint: if it
    /// comes after the checkpoint, the messages in between were deleted (retention) before they
    /// were processed, and the state misses them. `fail` stops with that explanation; `rebuild`
    /// says so and goes on with what is left.
    func checkResume(_ partition: TopicPartition, firstOffset: Int64) throws {
        guard let expected = state.withLock({ $0.resumes.removeValue(forKey: partition) }), firstOffset > expected else { return }
        let what = "the state of \(partition) was checkpointed at offset \(expected), but the partition now starts at \(firstOffset): "
            + "\(firstOffset - expected) messages were deleted (retention) before they were processed, and the state misses them"
        guard options.onStateMismatch == .rebuild else {
            throw StreamStateError(.storage, what + "; set onStateMismatch to rebuild to go on without them")
        }
        logger.warning("state mismatch: going on without the deleted messages", metadata: ["what": "\(what)"])
    }

    /// The offset `partition`'s state resumes from (its checkpoint), until its first message.
    func resumeOffset(_ partition: TopicPartition) -> Int64? {
        state.withLock { $0.resumes[partition] }
    }

    func partition(_ partition: TopicPartition) -> PartitionState? {
        state.withLock { $0.open[partition] }
    }

    var openPartitions: [PartitionState] { state.withLock { Array($0.open.values) } }

    /// Errors of partitions that could not be opened since the last call.
    func takeFailures() -> [TopicPartition: any Error] {
        state.withLock { registry in
            defer { registry.failures.removeAll() }
            return registry.failures
        }
    }

    /// Which of `partitions` were opened again while still open, since the last call.
    func takeReopened(_ partitions: [TopicPartition]) -> Set<TopicPartition> {
        state.withLock { registry in
            let reopened = registry.reopened.intersection(partitions)
            registry.reopened.subtract(reopened)
            return reopened
        }
    }

    /// Closes the partitions' state (its environment closes once no stream holds it).
    func close(_ partitions: [TopicPartition]) {
        state.withLock { registry in
            for partition in partitions {
                registry.resumes[partition] = nil
                registry.reopened.remove(partition)
                guard let closing = registry.open.removeValue(forKey: partition) else { continue }
                closing.discardPending()
                registry.closed[partition] = WeakPartition(partition: closing)
            }
        }
    }
}
