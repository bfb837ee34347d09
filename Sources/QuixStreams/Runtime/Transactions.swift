import Logging
import QuixKafka
import Synchronization

/// The Kafka transactions of an exactly-once consumer (Kafka Streams' EOS v2): one transactional
/// producer per consumer, fenced through the consumer group's metadata. A transaction is always
/// open while the consumer processes; each checkpoint adds the consumed offsets to it, commits
/// it and begins the next.
final class Transactions: Sendable {
    let producer: KafkaProducer
    private let records: RecordProducer
    private let consumer: KafkaConsumer
    private let state = Mutex(State())

    private struct State {
        var open = false
        var counts = TransactionCounts()
        /// `records.queuedCount` when the open transaction began.
        var queuedAtBegin = 0
        /// Why the transactions ended, once one failed: nothing may be sent or processed after.
        var failure: TransactionFailure?
    }

    init(producer: RecordProducer, consumer: KafkaConsumer) {
        self.producer = producer.producer
        records = producer
        self.consumer = consumer
    }

    /// The failure that ended the transactions, if one did.
    var failure: TransactionFailure? { state.withLock { $0.failure } }

    private func failed(_ failure: TransactionFailure) -> TransactionFailure {
        state.withLock { state in
            if state.failure == nil { state.failure = failure }
        }
        return failure
    }

    /// Why the open transaction cannot commit any more, once a send met it.
    var brokenBy: KafkaError? { records.transactionError }

    /// Whether the open transaction holds records (a timer's output, say) though no offset
    /// moved: it must commit anyway, or it would block read_committed readers until the broker
    /// aborts it.
    var holdsRecords: Bool { state.withLock { $0.open && records.queuedCount != $0.queuedAtBegin } }

    var counts: TransactionCounts { state.withLock { $0.counts } }

    /// Registers the transactional id (fencing an earlier instance with the same id and aborting
    /// the transaction it left open), then begins the first transaction.
    func start() async throws {
        do {
            try await producer.initTransactions()
            try producer.beginTransaction()
        } catch {
            throw failed(TransactionFailure("the transactional producer could not start", error))
        }
        began()
    }

    /// Adds `offsets` (the next offsets to read) to the open transaction and commits it; then,
    /// unless `final`, begins the next. On failure the transaction is aborted where librdkafka
    /// allows it, and the error says so: nothing of it reaches a read_committed reader.
    func commit(_ offsets: [TopicPartitionOffset], final: Bool) async throws {
        do {
            if !offsets.isEmpty { try await producer.sendOffsetsToTransaction(offsets, group: try consumer.groupMetadata()) }
            try await producer.commitTransaction()
        } catch {
            state.withLock { $0.open = false }
            let aborted = await abort(after: error)
            throw failed(TransactionFailure(aborted ? "the transaction was aborted" : "the transaction failed and could not be aborted", error))
        }
        state.withLock { state in
            state.open = false
            state.counts.committed += 1
        }
        guard !final else { return }
        do {
            try producer.beginTransaction()
        } catch {
            throw failed(TransactionFailure("the next transaction could not begin", error))
        }
        began()
    }

    private func began() {
        let queued = records.queuedCount
        state.withLock { state in
            state.open = true
            state.queuedAtBegin = queued
        }
    }

    /// Aborts the open transaction, if any (the consumer stops without its final checkpoint).
    func abortIfOpen() async {
        let open = state.withLock { state in
            defer { state.open = false }
            return state.open
        }
        if open { _ = await abort(after: nil) }
    }

    /// Whether the transaction was aborted. A fenced or fatal producer cannot abort; its
    /// transaction ends when the broker times it out or the next instance fences it.
    private func abort(after error: (any Error)?) async -> Bool {
        if let error = error as? KafkaError, error.isFatal { return false }
        do {
            try await producer.abortTransaction()
        } catch {
            return false
        }
        state.withLock { $0.counts.aborted += 1 }
        return true
    }
}

/// Transactions an exactly-once consumer committed and aborted.
public struct TransactionCounts: Sendable, Hashable {
    public var committed = 0
    public var aborted = 0

    public init() {}
}

/// An exactly-once checkpoint failed: its transaction was aborted (or could not be), so the
/// consumer stops; a restart resumes from the last committed transaction, with the state
/// restored to it. Nothing of the failed transaction is visible to read_committed readers.
public struct TransactionFailure: Error, CustomStringConvertible {
    public let what: String
    public let underlying: any Error

    init(_ what: String, _ underlying: any Error) {
        self.what = what
        self.underlying = underlying
    }

    public var description: String { "exactly-once: \(what): \(underlying)" }
}

/// Lanes stopped between an exactly-once cut and the end of its transaction: nothing runs on
/// them (no package, timer or revocation), so the transaction holds exactly what came before
/// the cut.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func wait() async {
        await withCheckedContinuation { continuation in
            let open = state.withLock { state in
                if !state.open { state.waiters.append(continuation) }
                return state.open
            }
            if open { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

extension Checkpointer {
    /// An exactly-once round over every task of the consumer: each lane releases what its
    /// streams hold and is cut, and stays stopped until the transaction is committed; the
    /// changelog records of the state changes go into the transaction, then the offsets; after
    /// the commit the state is written to LMDB (never ahead of a committed transaction) and the
    /// next transaction begins before the lanes go on.
    func transactionalRound(
        _ tasks: [PartitionTask], transactions: Transactions, strict: Bool, committing: () async -> Bool
    ) async throws -> [TopicPartitionOffset] {
        let byLane = Dictionary(grouping: tasks) { ObjectIdentifier($0.lane) }
        guard !byLane.isEmpty else {
            if strict { try await transactions.commit([], final: true) }
            return []
        }
        let gate = Gate()
        let (cutStream, cutsMade) = AsyncStream<[Cut]>.makeStream()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for laneTasks in byLane.values {
                group.addTask {
                    await laneTasks[0].lane.urgent {
                        var cuts: [Cut] = []
                        for task in laneTasks {
                            await task.releaseHeld()
                            if let cut = task.cut() { cuts.append(Cut(task: task, offset: cut.offset, savepoint: cut.savepoint ?? 0)) }
                        }
                        cutsMade.yield(cuts)
                        await gate.wait()
                    }
                }
            }
            var cuts: [Cut] = []
            var lanesCut = 0
            for await laneCuts in cutStream {
                cuts += laneCuts
                lanesCut += 1
                if lanesCut == byLane.count { break }
            }
            let outcome: Result<[TopicPartitionOffset], any Error>
            do {
                outcome = .success(try await commitTransaction(cuts, transactions: transactions, strict: strict, committing: committing))
            } catch {
                outcome = .failure(error)
            }
            gate.open()
            try await group.waitForAll()
            return try outcome.get()
        }
    }

    private func commitTransaction(
        _ cuts: [Cut], transactions: Transactions, strict: Bool, committing: () async -> Bool
    ) async throws -> [TopicPartitionOffset] {
        for cut in cuts where cut.offset < (cut.task.processed ?? cut.offset) {
            report(
                StreamError(.deliveryFailed, "rows of \(cut.task.partition) stay held after the stopping handler"),
                "an exactly-once checkpoint (release held rows in onStopping; offsets stay at the oldest held row)")
        }
        let moving = cuts.filter { needsCheckpoint($0.task, at: $0.offset, strict: true) }
        guard strict || !moving.isEmpty || transactions.holdsRecords else { return [] }
        guard await committing() else {
            if strict { throw StreamError(.deliveryFailed, "the committing handler failed; nothing was committed") }
            return []
        }
        var markers: [TopicPartition: ChangelogWriter.Marker] = [:]
        if let changelog = stores?.changelog {
            // A marker for every stateful partition, changed or not: it moves the checkpoint a
            // restore resumes from along with the committed offset.
            for cut in cuts where cut.task.state != nil {
                markers[cut.task.partition] = try await changelog.enqueue(
                    cut.task.state!.pendingEffects(before: cut.offset, savepoint: cut.savepoint), partition: cut.task.partition.partition,
                    checkpoint: cut.offset)
            }
        }
        let offsets = cuts.map { TopicPartitionOffset($0.task.partition, offset: $0.offset) }
        try await transactions.commit(offsets, final: strict)
        // The same offsets through the group as well, once the transaction holds them: a real
        // cluster already has them, but librdkafka's mock cluster (the development broker)
        // stores no transactional offset commit, and its group would never move.
        do {
            try consumer.storeOffsets(offsets)
            try await consumer.commit()
        } catch {
            report(error, "the group commit after the transaction of \(offsets.map(\.partition).sorted()) (the transaction holds the offsets)")
        }
        // Committed: every record is acknowledged, so each marker knows its offset. The state
        // follows the transaction; a crash before this restores it from the changelog.
        let (_, stateFailure) = await writeState(cuts.filter { $0.task.state != nil }, markers: markers)
        recordCommitted(Dictionary(uniqueKeysWithValues: offsets.map { ($0.topicPartition, $0.offset) }))
        if strict, let stateFailure { throw stateFailure }
        return offsets
    }
}
