import Logging
import QuixKafka
import QuixState
import Synchronization

/// One `TopicConsumer.run()`: the dispatcher that reads the Kafka consumer's events and hands
/// batches to the partition tasks, the lanes that run those tasks on the workers (one per
/// worker), and the periodic checkpoints. Rebalances go through here in the order the consumer
/// reports them: a revoked partition's streams end and its final checkpoint is committed before
/// the consumer moves past the revocation.
final class ConsumerRun: Sendable {
    private let owner: TopicConsumer
    private let flow: FlowControl
    private let lanes: [Lane]
    private let state = Mutex(State())

    private struct State {
        var tasks: [TopicPartition: PartitionTask] = [:]
        /// Per partition, the Kafka timestamp of the newest message handed to its task.
        var newest: [TopicPartition: Int64] = [:]
        /// Where partitions assigned back during their revocation resume (processed below it).
        var floors: [TopicPartition: Int64] = [:]
        /// What stops the run: a package the failure handler stopped at, a lost delivery.
        var failure: (any Error)?
        var stopping = false
        var lastCheckpoint = ContinuousClock.now
        var retryAfter = ContinuousClock.now
    }

    /// Messages handed to lanes and not yet processed, at most: enough to keep every worker busy
    /// while the Kafka consumer refills its buffer (librdkafka's fetchers are woken when it
    /// drains, `FetchWaker`), and no more, as each is held in memory.
    static let inFlightLimit = 5_000
    /// After a failed commit, the next is not tried before this (a commit that fails during a
    /// rebalance must not be retried after every batch, delaying the revocation).
    static let commitRetryDelay: Duration = .milliseconds(500)

    init(_ owner: TopicConsumer) {
        self.owner = owner
        let flow = FlowControl(limit: Self.inFlightLimit)
        self.flow = flow
        lanes = owner.pool.workers.map { Lane(worker: $0, flow: flow) }
    }

    /// Per task, the offset after its last processed package.
    func processedOffsets() -> [TopicPartition: Int64] {
        state.withLock { $0.tasks.compactMapValues(\.processed) }
    }

    /// Per task, the newest message's Kafka timestamp handed to it minus that of its last
    /// processed package (0 when it has processed everything handed to it).
    func timeLags() -> [TopicPartition: Int64] {
        state.withLock { state in
            state.tasks.compactMapValues { task in
                guard let newest = state.newest[task.partition], let processed = task.processedTimestamp else { return nil }
                return max(0, newest - processed)
            }
        }
    }

    private var tasks: [PartitionTask] { state.withLock { Array($0.tasks.values) } }

    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for lane in lanes {
                group.addTask(executorPreference: lane.worker) { [self] in await lane.run { self.fail($0) } }
            }
            group.addTask { [self] in await checkpointWhenDue() }
            do {
                try await dispatch()
            } catch {
                fail(error)
            }
            // Stop after the batch in hand: queued batches are not processed after the final
            // checkpoint (they would be written and never committed).
            for lane in lanes { lane.dropBatches() }
            var outcome: Result<Void, any Error> = .success(())
            do { try await finish() } catch { outcome = .failure(error) }
            // The lanes and the checkpoint loop end whatever happened (they do not react to
            // cancellation: a lane may hold a revocation or a cut that must complete).
            state.withLock { $0.stopping = true }
            for lane in lanes { lane.finish() }
            try await group.waitForAll()
            try outcome.get()
        }
    }

    private func fail(_ error: any Error) {
        state.withLock { state in
            if state.failure == nil { state.failure = error }
        }
    }

    /// The final checkpoint (up to a package the consumer stopped at, if it stopped at one),
    /// then the failure that stopped the run, if any.
    private func finish() async throws {
        // The stopping handler sees every open stream on its worker (it may release what it
        // holds), so the final checkpoint covers what that sends.
        for (_, laneTasks) in Dictionary(grouping: tasks, by: { ObjectIdentifier($0.lane) }) {
            _ = await laneTasks[0].lane.urgent {
                for task in laneTasks { await task.stopping() }
            }
        }
        let failure = state.withLock { $0.failure }
        if owner.options != .manual, failure == nil || failure is ConsumerStoppedAtFailure {
            try await checkpoint(strict: true)
        }
        if let failure { throw failure }
    }

    // MARK: Dispatching

    private func dispatch() async throws {
        if owner.group == nil {
            try await assignEveryPartition()
        } else {
            try owner.consumer.subscribe([owner.topic])
        }
        var lastTick = ContinuousClock.now
        for await event in owner.consumer.events {
            switch event {
            case .messages(let batch):
                await hand(batch)
            case .revoked(let partitions):
                await revoke(partitions, orderly: true)
            case .lost(let partitions):
                if owner.isExactlyOnce {
                    // The open transaction holds their effects and can no longer commit (the
                    // group moved on): abort it all and resume from the last committed one.
                    fail(TransactionFailure("partitions \(partitions.map(\.partition).sorted()) were lost", StreamError(.deliveryFailed, "the consumer lost its group membership")))
                    break
                }
                await revoke(partitions, orderly: false)
            case .assigned(let partitions):
                try await assign(partitions)
            case .error(let error):
                owner.logger.warning("topic consumer", metadata: ["error": "\(error)", "topic": "\(owner.topic)"])
            case .partitionEnd, .idle:
                break
            }
            let now = ContinuousClock.now
            if now - lastTick >= TopicConsumer.tick {
                lastTick = now
                for task in tasks { task.lane.post { await task.tick(now: now) } }
            }
            if state.withLock({ $0.failure != nil }) || owner.stopRequested || Task.isCancelled { break }
        }
    }

    /// Splits a poll batch into runs of one partition and queues each on its task's lane, in
    /// order. Each run is an array of its own: a slice of the batch would keep every message of
    /// the batch, and the bytes of every partition's run, alive until the last run is processed.
    private func hand(_ batch: [KafkaMessage]) async {
        let counting = owner.hasConsumedHandler
        var counts: [TopicPartition: (messages: Int, bytes: Int)] = [:]
        var start = batch.startIndex
        while start < batch.endIndex {
            let partition = batch[start].partition
            var end = start + 1
            var bytes = batch[start].value?.count ?? 0
            while end < batch.endIndex && batch[end].partition == partition {
                bytes += batch[end].value?.count ?? 0
                end += 1
            }
            let run = Array(batch[start..<end])[...]
            start = end
            if counting {
                let counted = counts[run.first!.topicPartition, default: (0, 0)]
                counts[run.first!.topicPartition] = (counted.messages + run.count, counted.bytes + bytes)
            }
            let task = state.withLock { state -> PartitionTask? in
                let partition = run.first!.topicPartition
                if let time = run.last!.timestampMilliseconds { state.newest[partition] = max(time, state.newest[partition] ?? time) }
                return state.tasks[partition]
            }
            guard let task else { continue }  // no longer ours
            await flow.acquire(run.count)
            task.lane.push(run, for: task)
        }
        if counting { owner.consumed(counts) }
    }

    // MARK: Assignment

    private func assignEveryPartition() async throws {
        let admin = try KafkaAdmin(settings: AdminSettings(client: owner.clientSettings))
        guard let metadata = try await admin.metadata(topic: owner.topic).first else {
            throw StreamError(.invalidStreamID, "topic \"\(owner.topic)\" does not exist")
        }
        let start = owner.startFrom == .earliest ? KafkaOffset.beginning : KafkaOffset.end
        let partitions = metadata.partitions.map { TopicPartition(owner.topic, $0.id) }
        let checkpoints = owner.stores?.open(partitions) ?? [:]
        try owner.consumer.assign(partitions.map { TopicPartitionOffset($0, offset: checkpoints[$0] ?? start) })
        try await assign(partitions)
    }

    private func assign(_ partitions: [TopicPartition]) async throws {
        try checkStateOpened()
        state.withLock { state in
            for partition in partitions where state.tasks[partition] == nil {
                let worker = owner.pool.leastLoaded()
                worker.taskAdded()
                state.tasks[partition] = PartitionTask(
                    partition: partition, lane: lanes[worker.index], state: owner.stores?.partition(partition),
                    floor: state.floors.removeValue(forKey: partition), resumeOffset: owner.stores?.resumeOffset(partition), consumer: owner)
            }
        }
        await owner.notify(\.assigned, partitions, "the assigned handler")
    }

    /// Throws the first error of a partition whose state could not be opened: processing it
    /// without its state would compute wrong results.
    private func checkStateOpened() throws {
        guard let (partition, error) = owner.stores?.takeFailures().first else { return }
        throw StreamStateError(.storage, "the state of \(partition) could not be opened: \(error)", underlying: error as? StateError)
    }

    /// The partitions' streams end here: their buffers release what they hold, then (for an
    /// orderly revocation, unless commits are manual) what is processed is checkpointed before
    /// the partitions move.
    private func revoke(_ partitions: [TopicPartition], orderly: Bool) async {
        await owner.notify(\.revoking, partitions, "the revoking handler")
        // When a revocation outlasts the consumer's revocation timeout, the rebalance goes on and
        // may assign some of the partitions back before this runs: their state was opened again
        // (it is the same) and must stay open.
        let reassigned = owner.stores?.takeReopened(partitions) ?? []
        let leaving = state.withLock { state in
            for partition in partitions { state.newest[partition] = nil }
            return partitions.compactMap { state.tasks.removeValue(forKey: $0) }
        }
        var closed: [StreamConsumer] = []
        for task in leaving { task.lane.drop(task) }
        for (_, laneTasks) in Dictionary(grouping: leaving, by: { ObjectIdentifier($0.lane) }) {
            closed += await laneTasks[0].lane.urgent {
                var streams: [StreamConsumer] = []
                for task in laneTasks { streams += await task.closeStreams() }
                return streams
            }
        }
        if orderly && owner.options != .manual && !leaving.isEmpty {
            do {
                // Exactly-once: the transaction holds every partition's effects, so it commits
                // with every partition's offsets.
                let checkpointed = owner.isExactlyOnce ? tasks + leaving : leaving
                let offsets = try await owner.checkpointer.checkpoint(checkpointed) {
                    await self.owner.notify(\.committing, (), "the committing handler (the commit waits for the next occasion)")
                }
                if !offsets.isEmpty { await owner.notify(\.committed, offsets, "the committed handler") }
            } catch let failure as TransactionFailure {
                fail(failure)
            } catch {
                owner.report(error, "the commit before partitions \(partitions) moved")
            }
        }
        state.withLock { state in
            for task in leaving where orderly && reassigned.contains(task.partition) {
                if let processed = task.processed { state.floors[task.partition] = processed }
            }
        }
        owner.checkpointer.forget(partitions)
        owner.stores?.close(partitions.filter { !reassigned.contains($0) })
        for task in leaving {
            task.lane.worker.taskRemoved()
            // Lost, not revoked: nothing was checkpointed, so the state goes back to its
            // checkpoint, where the partition resumes.
            if !orderly && reassigned.contains(task.partition) { task.state?.discardPending() }
        }
        await owner.notify(\.streamsRevoked, closed, "the streams revoked handler")
    }

    // MARK: Checkpoints

    /// Checkpoints when `CommitOptions` say it is time; a failed commit is reported and tried
    /// again after a pause. Stops the run when a delivery was lost.
    private func checkpointWhenDue() async {
        guard owner.options != .manual else { return }
        while !state.withLock({ $0.stopping }) {
            do { try await Task.sleep(for: TopicConsumer.tick) } catch { return }  // cancelled
            let (last, retryAfter, stopping) = state.withLock { ($0.lastCheckpoint, $0.retryAfter, $0.stopping) }
            if stopping { return }
            let now = ContinuousClock.now
            guard now >= retryAfter else { continue }
            let byTime = owner.options.interval.map { now - last >= $0 } ?? false
            let byCount = owner.options.everyPackages.map { limit in tasks.reduce(0) { $0 + $1.uncommitted } >= limit } ?? false
            guard byTime || byCount || !owner.checkpointer.failing.isEmpty else { continue }
            do {
                try await checkpoint(strict: false)
            } catch let failure as DeliveryFailure {
                fail(failure)
                return
            } catch let failure as TransactionFailure {
                fail(failure)
                return
            } catch {
                state.withLock { $0.retryAfter = .now + Self.commitRetryDelay }
                owner.report(error, "the commit of topic \(owner.topic)")
            }
        }
    }

    /// One checkpoint of every task, between the committing and committed handlers (when there
    /// is something to checkpoint).
    func checkpoint(strict: Bool) async throws {
        state.withLock { $0.lastCheckpoint = .now }
        let offsets = try await owner.checkpointer.checkpoint(tasks, strict: strict) {
            // A committing handler that fails (an output that could not be flushed) stops the commit.
            await self.owner.notify(\.committing, (), "the committing handler (the commit waits for the next occasion)")
        }
        if !offsets.isEmpty { await owner.notify(\.committed, offsets, "the committed handler") }
    }
}
