import Logging
import QuixKafka
import Synchronization

/// The one owner of the durable-offset rule (docs/runtime.md): a partition's committed
/// offset is the lowest offset whose effects are not yet durable. An effect is not durable while
/// a consumer or output buffer holds it, while a message sent for it awaits the broker's
/// acknowledgement, or while its state change is not in a committed LMDB transaction.
///
/// A checkpoint round, per partition: a cut on the partition's lane (the offset past what is
/// processed, but not past what a buffer holds); the state changes of packages before the cut
/// to the changelog; a wait for the deliveries below the cut only (never a flush of every
/// output); the state changes and the cut in one LMDB transaction, committed on the state
/// thread; then the Kafka offsets. Processing goes on meanwhile. A partition whose state commit
/// fails (a full disk) is paused and retried with backoff; the consumer reports it as unhealthy
/// until it succeeds.
final class Checkpointer: Sendable {
    let consumer: KafkaConsumer
    let stores: StateStores?
    /// Exactly-once: each round is one Kafka transaction (`transactionalRound`).
    let transactions: Transactions?
    private let logger: Logger
    /// One round at a time.
    private let order = AsyncSerialLock()
    private let state = Mutex(State())
    /// Where problems go besides the log (the topic consumer's error handler).
    private let reporter = Mutex<Reporter?>(nil)

    /// In a class, not as the `Mutex`'s value itself: see `RecordProducer.SentHandler`.
    private final class Reporter: Sendable {
        let call: @Sendable (any Error, String) -> Void
        init(_ call: @escaping @Sendable (any Error, String) -> Void) { self.call = call }
    }

    private struct State {
        var committed: [TopicPartition: Int64] = [:]
        var failing: [TopicPartition: Failing] = [:]
    }

    /// A partition whose state checkpoint fails: paused until one succeeds.
    struct Failing: Sendable {
        var error: any Error
        var since: ContinuousClock.Instant
        var attempts: Int
        var nextAttempt: ContinuousClock.Instant
    }

    static let longestBackoff: Duration = .seconds(10)

    init(consumer: KafkaConsumer, stores: StateStores?, transactions: Transactions?, logger: Logger) {
        self.consumer = consumer
        self.stores = stores
        self.transactions = transactions
        self.logger = logger
    }

    /// Sends every problem to `handler` too.
    func onProblem(_ handler: @escaping @Sendable (any Error, String) -> Void) {
        reporter.withLock { $0 = Reporter(handler) }
    }

    /// Partitions whose state cannot be checkpointed now, with why and since when.
    var failing: [TopicPartition: Failing] { state.withLock { $0.failing } }

    func recordCommitted(_ offsets: [TopicPartition: Int64]) {
        state.withLock { $0.committed.merge(offsets) { _, new in new } }
    }

    /// Forgets partitions that left this consumer.
    func forget(_ partitions: [TopicPartition]) {
        state.withLock { state in
            for partition in partitions {
                state.committed[partition] = nil
                state.failing[partition] = nil
            }
        }
    }

    /// One round over `tasks`: returns the offsets committed to Kafka. Throws a
    /// `DeliveryFailure` (a message sent for a package was not stored: nothing at or after it may
    /// ever be committed) and, with `strict`, the first state or changelog failure (the final
    /// checkpoint before the consumer stops: its state is not durable). A refused Kafka commit
    /// is reported, never thrown: those messages are read again.
    /// - Parameter committing: called once there is something to checkpoint, before anything is
    ///   written; false skips the round.
    func checkpoint(
        _ tasks: [PartitionTask], strict: Bool = false, committing: @Sendable () async -> Bool
    ) async throws -> [TopicPartitionOffset] {
        try await order.withLock {
            if let transactions {
                return try await transactionalRound(tasks, transactions: transactions, strict: strict, committing: committing)
            }
            return try await round(tasks, strict: strict, committing: committing)
        }
    }

    private func round(_ tasks: [PartitionTask], strict: Bool, committing: () async -> Bool) async throws -> [TopicPartitionOffset] {
        let cuts = await self.cuts(tasks).filter { needsCheckpoint($0.task, at: $0.offset, strict: strict) }
        guard !cuts.isEmpty else { return [] }
        guard await committing() else {
            if strict { throw StreamError(.deliveryFailed, "the committing handler failed; nothing was committed") }
            return []
        }
        var firstFailure: (any Error)?
        // State changes go to the changelog first (they must be there before a replica can
        // restore past them), and every delivery below each cut must be acknowledged.
        var markers: [TopicPartition: ChangelogWriter.Marker] = [:]
        if let changelog = stores?.changelog {
            for cut in cuts where cut.task.state != nil {
                do {
                    markers[cut.task.partition] = try await changelog.enqueue(
                        cut.task.state!.pendingEffects(before: cut.offset, savepoint: cut.savepoint), partition: cut.task.partition.partition, checkpoint: cut.offset)
                } catch {
                    report(error, "the changelog of \(cut.task.partition) (its offsets are not committed until it succeeds)")
                    firstFailure = firstFailure ?? error
                }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for cut in cuts { group.addTask { try await cut.task.tracker.waitForDeliveries(below: cut.offset) } }
            try await group.waitForAll()
        }
        if let changelog = stores?.changelog, !markers.isEmpty {
            do { try await changelog.flush() } catch { report(error, "flushing the changelog") }
        }
        // The state of every partition in one job of the state thread.
        let stateful = cuts.filter { $0.task.state != nil && (stores?.changelog == nil || markers[$0.task.partition] != nil) }
        let (written, stateFailure) = await writeState(stateful, markers: markers)
        firstFailure = firstFailure ?? stateFailure
        var committable: [TopicPartition: Int64] = [:]
        for cut in cuts where cut.task.state == nil || written.contains(cut.task.partition) { committable[cut.task.partition] = cut.offset }
        guard !committable.isEmpty else {
            if strict, let firstFailure { throw firstFailure }
            return []
        }
        let offsets = committable.map { TopicPartitionOffset($0.key, offset: $0.value) }
        do {
            try consumer.storeOffsets(offsets)
            try await consumer.commit()
        } catch {
            // Not fatal even at the end: the state is written, and what the group did not
            // record is read again (at least once), by this member or the next.
            report(error, "the commit of \(offsets.map(\.partition).sorted())")
            if strict, let firstFailure { throw firstFailure }
            return []
        }
        recordCommitted(committable)
        if strict, let firstFailure { throw firstFailure }
        return offsets
    }

    struct Cut: Sendable {
        let task: PartitionTask
        let offset: Int64
        let savepoint: Int
    }

    /// The cuts of every task, one urgent action per lane, lanes side by side.
    private func cuts(_ tasks: [PartitionTask]) async -> [Cut] {
        let byLane = Dictionary(grouping: tasks) { ObjectIdentifier($0.lane) }
        return await withTaskGroup(of: [Cut].self) { group in
            for laneTasks in byLane.values {
                group.addTask {
                    await laneTasks[0].lane.urgent { laneTasks.compactMap { task in task.cut().map { Cut(task: task, offset: $0.offset, savepoint: $0.savepoint ?? 0) } } }
                }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
    }

    /// Whether a cut moves anything: a new offset, state changes before it, or a failing
    /// partition whose retry is due.
    func needsCheckpoint(_ task: PartitionTask, at offset: Int64, strict: Bool) -> Bool {
        let (committed, failing) = state.withLock { ($0.committed[task.partition], $0.failing[task.partition]) }
        if let failing, !strict, ContinuousClock.now < failing.nextAttempt { return false }
        return committed != offset || task.state?.hasPendingChanges(before: offset) == true || failing != nil
    }

    /// Writes the cuts' state changes and checkpoints to LMDB, all in one job of the state
    /// thread. A partition whose write fails is paused and retried with backoff; one that
    /// succeeds after failing resumes. Returns the partitions written and the first failure.
    func writeState(_ cuts: [Cut], markers: [TopicPartition: ChangelogWriter.Marker]) async -> (written: Set<TopicPartition>, failure: (any Error)?) {
        var written: Set<TopicPartition> = []
        var failure: (any Error)?
        for (cut, outcome) in zip(cuts, await commitState(cuts, markers: markers)) {
            switch outcome {
            case .success: written.insert(cut.task.partition)
            case .failure(let error):
                stateFailed(cut.task.partition, error)
                failure = failure ?? error
            }
        }
        resumeRecovered(written)
        return (written, failure)
    }

    private func commitState(_ cuts: [Cut], markers: [TopicPartition: ChangelogWriter.Marker]) async -> [Result<Void, any Error>] {
        guard !cuts.isEmpty else { return [] }
        var changelogOffsets: [Int64?] = []
        for cut in cuts {
            guard let marker = markers[cut.task.partition] else {
                changelogOffsets.append(nil)
                continue
            }
            do {
                changelogOffsets.append(try marker.offsetAfter())
            } catch {
                changelogOffsets.append(-1)  // the changelog did not take them: not committed
                report(error, "the changelog of \(cut.task.partition)")
            }
        }
        let jobs = Array(zip(cuts, changelogOffsets))
        do {
            return try await StateCommitter.shared.run {
                jobs.map { cut, changelogOffset in
                    if changelogOffset == -1 { return .failure(StreamStateError(.storage, "the changelog did not store the checkpoint's records")) }
                    return Result { try cut.task.state!.checkpoint(offset: cut.offset, savepoint: cut.savepoint, changelogOffset: changelogOffset) }
                }
            }
        } catch {
            return cuts.map { _ in .failure(error) }
        }
    }

    /// A state checkpoint failed: pause the partition's input (processing more would only pile up
    /// changes that cannot be written) and retry with backoff.
    private func stateFailed(_ partition: TopicPartition, _ error: any Error) {
        let attempts = state.withLock { state -> Int in
            let now = ContinuousClock.now
            var failing = state.failing[partition] ?? Failing(error: error, since: now, attempts: 0, nextAttempt: now)
            failing.error = error
            failing.attempts += 1
            failing.nextAttempt = now + min(Self.longestBackoff, .milliseconds(250) * (1 << min(failing.attempts, 6)))
            state.failing[partition] = failing
            return failing.attempts
        }
        if attempts == 1 {
            do { try consumer.pause([partition]) } catch { logger.warning("could not pause a partition", metadata: ["error": "\(error)"]) }
        }
        report(error, "the state checkpoint of \(partition) (its input is paused and it is retried; its offsets are not committed until it succeeds)")
    }

    private func resumeRecovered(_ partitions: Set<TopicPartition>) {
        let recovered = state.withLock { state in
            let recovered = state.failing.keys.filter { partitions.contains($0) }
            for partition in recovered { state.failing[partition] = nil }
            return recovered
        }
        guard !recovered.isEmpty else { return }
        logger.info("state checkpoints succeed again; input resumed", metadata: ["partitions": "\(recovered)"])
        do { try consumer.resume(recovered) } catch { logger.warning("could not resume partitions", metadata: ["error": "\(error)"]) }
    }

    func report(_ error: any Error, _ context: String) {
        if let reporter = reporter.withLock({ $0 }) {
            reporter.call(error, context)
        } else {
            logger.error("checkpoint", metadata: ["error": "\(error)", "where": "\(context)"])
        }
    }
}
