import Logging
import QuixKafka
import QuixProtocol
import Synchronization

/// One assigned input partition (Kafka Streams' StreamTask): its package assembler, its streams
/// and their consumer buffers, its state and the tracker of what its handlers sent. Its lane runs
/// it, one package at a time in offset order; the checkpointer takes cuts of it on that lane.
final class PartitionTask: Sendable {
    let partition: TopicPartition
    let lane: Lane
    let state: PartitionState?
    let tracker: DeliveryTracker
    let streams = StreamRegistry()
    private let consumer: TopicConsumer
    private let progress: Mutex<Progress>

    private struct Progress {
        var assembler = PackageAssembler()
        /// The offset after the last package processed; nil before the first.
        var processed: Int64?
        /// Stateful partitions check their first message against their state's checkpoint.
        var awaitingFirstMessage: Bool
        /// Messages below this were processed before (the partition came back while its
        /// revocation was handled); they are passed over.
        var floor: Int64?
        /// Packages processed since the last checkpoint.
        var uncommitted = 0
        /// The Kafka timestamp of the last package processed.
        var processedTimestamp: Int64?
        /// Where the partition's state resumes (its checkpoint), until a package is processed.
        var resumeOffset: Int64?
    }

    /// How long a task that has processed nothing waits before its checkpoint commits where its
    /// state resumes. Assignments come in bursts while a group rebalances, and a commit made
    /// then is refused with an illegal generation, which makes librdkafka rejoin: a commit at
    /// once from every newly assigned idle partition kept a scaling group from settling.
    static let resumeCommitDelay: Duration = .seconds(10)
    private let assignedAt = ContinuousClock.now

    /// - Parameters:
    ///   - floor: messages below it were processed before (the partition came back while its
    ///     revocation was handled).
    ///   - resumeOffset: where the partition's state resumes (its checkpoint). Everything below
    ///     it is durable, so a checkpoint commits it even when no message arrives (after
    ///     `resumeCommitDelay`). The member that wrote the state may have lost the group before
    ///     its own commit went through, leaving the group's offset behind the state (and behind
    ///     the end of the input, where no message would ever come to move it).
    init(partition: TopicPartition, lane: Lane, state: PartitionState?, floor: Int64?, resumeOffset: Int64?, consumer: TopicConsumer) {
        self.partition = partition
        self.lane = lane
        self.state = state
        self.consumer = consumer
        tracker = DeliveryTracker(partition: partition)
        progress = Mutex(Progress(processed: floor, awaitingFirstMessage: state != nil, floor: floor, resumeOffset: resumeOffset))
    }

    /// The offset after the last package processed (nil before the first).
    var processed: Int64? { progress.withLock { $0.processed } }

    /// The Kafka timestamp (ms) of the last package processed, if it had one.
    var processedTimestamp: Int64? { progress.withLock { $0.processedTimestamp } }

    /// Packages processed since the last checkpoint (for `CommitOptions.everyPackages`).
    var uncommitted: Int { progress.withLock { $0.uncommitted } }

    // MARK: Processing (on the lane)

    /// Processes messages of this partition in offset order. Throws `ConsumerStoppedAtFailure`
    /// when the failure handler says stop: the failed package is not counted as processed.
    func process(_ messages: ArraySlice<KafkaMessage>) async throws {
        // Exactly-once: after a failed transaction nothing more is processed (or sent).
        if let failure = consumer.checkpointer.transactions?.failure { throw failure }
        for message in messages {
            let (skip, checkResume) = progress.withLock { progress -> (Bool, Bool) in
                if let floor = progress.floor {
                    if message.offset < floor { return (true, false) }
                    progress.floor = nil
                }
                defer { progress.awaitingFirstMessage = false }
                return (false, progress.awaitingFirstMessage)
            }
            if skip { continue }
            if checkResume {
                try consumer.stores?.checkResume(partition, firstOffset: message.offset)
                if let state, let starting = consumer.partitionStartingHandler {
                    state.beginPackage(at: message.offset)
                    try starting(PartitionStateAccess(partition: partition, state: state))
                }
            }
            let (ready, dropped) = progress.withLock { progress in
                let ready = progress.assembler.add(
                    partition: message.partition, key: message.key.map(Array.init), offset: message.offset,
                    timestampMilliseconds: message.timestampMilliseconds, value: message.value ?? [])
                return (ready, progress.assembler.takeDropped())
            }
            for error in dropped { consumer.report(error, "topic \(partition.topic)[\(partition.partition)]") }
            for package in ready {
                let failed = await handle(package)
                // Exactly-once: a send that met a broken transaction is no failure of the
                // package's; the transaction is aborted and the consumer stops.
                if failed != nil, let transactions = consumer.checkpointer.transactions {
                    if let failure = transactions.failure { throw failure }
                    if let broken = transactions.brokenBy { throw TransactionFailure("a record could not be sent in the transaction", broken) }
                }
                if let failure = failed,
                    // What the failure handler sends (a dead letter) belongs to the package too.
                    await DeliveryOrigin.$current.withValue(tracker.origin(package.offset), operation: { await consumer.packageFailed(failure) })
                        == .stop
                {
                    throw ConsumerStoppedAtFailure(failure: failure)
                }
                progress.withLock { progress in
                    progress.processed = package.lastOffset + 1
                    progress.uncommitted += 1
                    if let time = package.timestampMilliseconds { progress.processedTimestamp = time }
                }
            }
        }
    }

    /// Hands a package to its stream; returns why it failed, if it did. What its handlers send
    /// carries its origin; the state changes they make are rolled back if one throws.
    private func handle(_ package: PackageAssembler.Assembled) async -> PackageFailure? {
        let id = QuixCodec.streamID(fromKey: package.key?[...])
        guard id != QuixCodec.keepAliveKey else { return nil }
        func failure(_ error: any Error, _ phase: PackageFailure.Phase) -> PackageFailure {
            PackageFailure(
                topic: partition.topic, partition: package.partition, offset: package.offset, key: package.key, value: Array(package.value),
                timestampMilliseconds: package.timestampMilliseconds, streamID: id, error: error, phase: phase)
        }
        let message: DecodedMessage
        do {
            message = try consumer.decode(package.value, package.timestampMilliseconds)
        } catch {
            consumer.reportPackageError(error, "stream \(id), partition \(package.partition), offset \(package.offset)")
            return failure(error, .decoding)
        }
        let (stream, isNew) = streams.stream(id) { StreamConsumer(id: id, partition: package.partition, state: state) }
        if isNew { consumer.streamReceived(stream) }
        state?.beginPackage(at: package.offset)
        let savepoint = state?.savepoint()
        let failed = Mutex<PackageFailure?>(nil)
        // Handed over, not shared: the stream's handlers own the decoded frame.
        var handedOver: DecodedMessage? = consume message
        let ended = await DeliveryOrigin.$current.withValue(tracker.origin(package.offset)) {
            await stream.deliver(
                handedOver.take()!, value: package.value, offset: package.offset, timestampMilliseconds: package.timestampMilliseconds,
                onError: { error, context in
                    failed.withLock { if $0 == nil { $0 = failure(error, .handling(context)) } }
                    consumer.reportPackageError(error, context)
                })
        }
        let failure = failed.withLock { $0 }
        if failure != nil, let savepoint { state?.rollBack(to: savepoint) }
        if ended {
            if consumer.clearsStateOnStreamEnd { stream.clearState() }
            streams.remove(id)  // a later package with this id starts a new stream
        }
        return failure
    }

    // MARK: Cuts, timers and endings (on the lane)

    /// Where a checkpoint of this partition may commit now: past every processed package, but
    /// not past one whose rows a consumer or output buffer still holds; and the state changes made
    /// so far (`savepoint`), of which those of packages before the offset go with it. Before the
    /// first package, where the state resumes once the task is `resumeCommitDelay` old, else nil.
    /// The checkpointer still waits for deliveries below the offset.
    func cut() -> (offset: Int64, savepoint: Int?)? {
        let processed = progress.withLock { progress -> Int64? in
            defer { progress.uncommitted = 0 }
            return progress.processed ?? (ContinuousClock.now - assignedAt >= Self.resumeCommitDelay ? progress.resumeOffset : nil)
        }
        guard let processed else { return nil }
        // Housekeeping first: its changes belong to the last package processed, so this cut has them.
        if let state, let housekeeping = consumer.checkpointingHandler {
            do {
                try housekeeping(PartitionStateAccess(partition: partition, state: state))
            } catch {
                consumer.report(error, "checkpointing \(partition.topic)[\(partition.partition)]")
            }
        }
        let offset = [processed, streams.oldestHeldOffset, tracker.lowestHeld].compactMap { $0 }.min()!
        return (offset, state?.savepoint())
    }

    /// Releases the rows of consumer buffers past their timeout, and ends streams idle for longer
    /// than the consumer's idle timeout.
    func tick(now: ContinuousClock.Instant) async {
        for stream in streams.all {
            await withOrigin { await stream.expireBuffers(now: now, onError: consumer.report) }
        }
        guard let timeout = consumer.idleStreamTimeout else { return }
        for stream in streams.removeIdle(now: now, timeout: timeout) {
            consumer.logger.debug("closing an idle stream", metadata: ["stream": "\(stream.streamID)"])
            await withOrigin { await stream.deliverClosed(.terminated, onError: consumer.report) }
            if consumer.clearsStateOnStreamEnd { stream.clearState() }
        }
    }

    /// Ends every stream of the partition (it is revoked or lost): their buffers release what
    /// they hold and their closed handlers run. Returns them.
    func closeStreams() async -> [StreamConsumer] {
        let closing = streams.removeAll()
        for stream in closing {
            await withOrigin { await stream.deliverClosed(.terminated, onError: consumer.report) }
        }
        return closing
    }

    /// Tells the stopping handler about the partition's open streams (the consumer stops), as
    /// the last processed package's work.
    func stopping() async {
        let open = streams.all
        guard !open.isEmpty else { return }
        await withOrigin { _ = await consumer.notify(\.stopping, open, "the stopping handler") }
    }

    /// Exactly-once, before a cut: the streams' consumer buffers release what they hold, then
    /// the stopping handler sees the open streams (a pipeline's output releases its rows), so
    /// everything sent for the packages before the cut is in the transaction it commits with.
    func releaseHeld() async {
        for stream in streams.all {
            await withOrigin { await stream.flushBuffers(onError: consumer.report) }
        }
        await stopping()
    }

    /// Runs work that is not a package's (timers, endings) as the last processed package's: what
    /// it sends and changes belongs to that package.
    private func withOrigin(_ body: () async -> Void) async {
        guard let processed = processed else {
            await body()
            return
        }
        state?.beginPackage(at: processed - 1)
        await DeliveryOrigin.$current.withValue(tracker.origin(processed - 1)) { await body() }
    }
}
