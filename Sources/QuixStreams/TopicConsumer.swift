import Logging
import QuixKafka
import QuixProtocol
import QuixState
import Synchronization

/// Reads the streams of one topic. Set `onStreamReceived` (and, in it, the stream's handlers),
/// then `run()`. Each assigned partition is a task on a worker thread of the pool: packages are
/// handled in order per partition, one at a time, and the partitions spread over the workers.
/// A package counts as processed once its handlers have returned; what is committed never
/// passes a package whose rows a consumer buffer still holds, whose messages the broker has not
/// acknowledged, or whose state is not written (see `Checkpointer`).
public final class TopicConsumer: Sendable {
    public typealias Handler<Value> = @Sendable (TopicConsumer, Value) async throws -> Void

    public let topic: String
    let consumer: KafkaConsumer
    let group: String?
    let clientSettings: KafkaClientSettings
    let startFrom: AutoOffsetReset
    let options: CommitOptions
    let logger: Logger
    let stores: StateStores?
    let idleStreamTimeout: Duration?
    let decode: MessageDecoder
    let pool: WorkerPool
    let checkpointer: Checkpointer
    private let handlers = Mutex(Handlers())
    private let lifecycle = Mutex(Lifecycle())
    /// The run in progress, for `commit()`, `lag()` and health.
    let current = Mutex<ConsumerRun?>(nil)

    /// How often `run()` releases timed-out buffer rows and ends idle streams, and the longest
    /// the consumer waits for an event before it looks at the time.
    static let tick: Duration = .milliseconds(50)

    @TaskLocal static var running: ObjectIdentifier?

    struct Handlers: Sendable {
        var streamReceived: (@Sendable (StreamConsumer) -> Void)?
        var error: (@Sendable (any Error, String) -> Void)?
        var packageFailed: (@Sendable (PackageFailure) async -> PackageDisposition)?
        var consumed: (@Sendable ([TopicPartition: (messages: Int, bytes: Int)]) -> Void)?
        var committing: Handler<Void>?
        var committed: Handler<[TopicPartitionOffset]>?
        var assigned: Handler<[TopicPartition]>?
        var revoking: Handler<[TopicPartition]>?
        var streamsRevoked: Handler<[StreamConsumer]>?
        var stopping: Handler<[StreamConsumer]>?
        var checkpointing: (@Sendable (PartitionStateAccess) throws -> Void)?
        var partitionStarting: (@Sendable (PartitionStateAccess) throws -> Void)?
    }

    struct Lifecycle: Sendable {
        var running = false
        var stopRequested = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// - Parameter state: where streams keep state (`StreamConsumer.state(_:)`). A partition's
    ///   state is checkpointed with its offsets, and an assigned partition resumes from its
    ///   state's checkpoint.
    /// - Parameter closeIdleStreamsAfter: a stream with no package for this long ends as
    ///   `Terminated` (its buffers release, its closed handler runs, and with
    ///   `StateOptions.clearOnStreamEnd` its state is deleted); a later package starts it anew.
    /// - Parameter decoder: reads message values that are not in the Quix format (JSON rows,
    ///   raw bytes); the stream id is the message key either way.
    /// - Parameter groupInstanceID: static group membership (a pod name): a member that comes
    ///   back with the same id within the session timeout gets its partitions back without a
    ///   rebalance.
    /// - Parameter workers: the worker threads the partitions run on (the process's pool by default).
    public init(
        client: KafkaStreamingClient, topic: String, group: String?, startFrom: AutoOffsetReset = .latest,
        commit: CommitOptions = CommitOptions(), state: StateOptions? = nil, closeIdleStreamsAfter: Duration? = nil,
        decoder: MessageDecoder? = nil, groupInstanceID: String? = nil, workers: WorkerPool? = nil
    ) throws {
        decode = decoder ?? { value, _ in try QuixCodec.decodeFrame(value) }
        guard !topic.isEmpty else { throw StreamError(.invalidStreamID, "the topic name is empty") }
        idleStreamTimeout = closeIdleStreamsAfter
        self.topic = topic
        self.group = group
        self.startFrom = startFrom
        pool = workers ?? .shared
        clientSettings = client.settings
        options = group == nil ? .manual : commit
        logger = client.logger
        var settings = ConsumerSettings(client: client.settings, group: group)
        settings.startFrom = startFrom == .earliest ? .earliest : .latest
        settings.autoCommit = false
        settings.idleInterval = Self.tick
        settings.readsHeaders = false  // Quix 0.5 carries everything in key and value
        // Small buffers: fetching resumes as soon as they drain, so more would only hold memory
        // (W1 of the shared bench ran as fast with 5,000 messages and 4 MB as with 20,000 and 16 MB).
        settings.maxBufferedMessages = 5_000
        settings.prefetchKilobytes = 4_096
        // A backlog fills the consumer's buffer faster than the workers drain it: pausing each
        // time dropped librdkafka's prefetch and fetched it again, stalling the input (W1 of the
        // shared bench: 51,000 msg/s steady, 95,000 without the pauses).
        settings.holdBeforePausing = .seconds(10)
        // A held-back queue fills; fetching must then resume when it drains, not a second later.
        settings.fetchQueueBackoff = .milliseconds(10)
        settings.groupInstanceID = groupInstanceID
        let transactional = client.transactionalProducer
        if let transactional {
            guard group != nil else { throw StreamError(.invalidStreamID, "exactly-once needs a consumer group (its offsets commit in the transactions)") }
            guard transactional.claim() else {
                throw StreamError(.invalidStreamID, "this transactional client already has a consumer; give each consumer its own (KafkaStreamingClient.transactional(id:))")
            }
            if let state, !state.changelog {
                throw StreamError(.invalidStreamID, "exactly-once with state needs its changelog: a crash after a transaction commits is caught up from it")
            }
        }
        let stores = try state.map {
            try StateStores(
                options: $0, name: group ?? "default", topic: topic, client: client.settings, producer: transactional?.producer, logger: client.logger)
        }
        self.stores = stores
        var startOffsets: KafkaConsumer.StartOffsets?
        if let stores { startOffsets = { partitions in stores.open(partitions) } }
        consumer = try KafkaConsumer(settings: settings, logger: client.logger, startOffsets: startOffsets)
        let transactions = transactional.map { [consumer] in Transactions(producer: $0, consumer: consumer) }
        checkpointer = Checkpointer(consumer: consumer, stores: stores, transactions: transactions, logger: client.logger)
        checkpointer.onProblem { [weak self] error, context in self?.report(error, context) }
    }

    // MARK: Handlers

    /// Called once per new stream, before its first package is handled: attach its handlers here.
    public func onStreamReceived(_ handler: @escaping @Sendable (StreamConsumer) -> Void) {
        handlers.withLock { $0.streamReceived = handler }
    }

    /// Called with errors the consumer goes on after: a handler that throws or a package that
    /// cannot be decoded (unless `onPackageFailed` is set: that handler takes those), a
    /// checkpoint that fails.
    public func onError(_ handler: @escaping @Sendable (any Error, String) -> Void) {
        handlers.withLock { $0.error = handler }
    }

    /// Called for a package that could not be decoded or whose handler threw, instead of
    /// `onError` and the consumer's error log (it may log them with a bound, as quixd does); it
    /// decides whether the consumer goes on or stops before the package. Without it, the
    /// consumer logs them, passes them to `onError` and goes on.
    public func onPackageFailed(_ handler: @escaping @Sendable (PackageFailure) async -> PackageDisposition) {
        handlers.withLock { $0.packageFailed = handler }
    }

    /// Called once per batch of messages read, before they are handled, with the messages and
    /// value bytes per partition (for metrics).
    public func onConsumed(_ handler: @escaping @Sendable ([TopicPartition: (messages: Int, bytes: Int)]) -> Void) {
        handlers.withLock { $0.consumed = handler }
    }

    /// Called before offsets are committed (flush outputs of your own here); if it throws, the
    /// commit is skipped and tried again at the next occasion.
    public func onCommitting(_ handler: @escaping Handler<Void>) { handlers.withLock { $0.committing = handler } }

    /// Called after a commit succeeded, with the offsets committed (the next offset to read).
    public func onCommitted(_ handler: @escaping Handler<[TopicPartitionOffset]>) { handlers.withLock { $0.committed = handler } }

    /// Called when partitions were assigned to this consumer (their state, if any, is open).
    public func onAssigned(_ handler: @escaping Handler<[TopicPartition]>) { handlers.withLock { $0.assigned = handler } }

    /// Called when partitions are about to move to another member, before their streams close
    /// and what is processed is committed.
    public func onRevoking(_ handler: @escaping Handler<[TopicPartition]>) { handlers.withLock { $0.revoking = handler } }

    /// Called after the streams of revoked (or lost) partitions were closed.
    public func onStreamsRevoked(_ handler: @escaping Handler<[StreamConsumer]>) { handlers.withLock { $0.streamsRevoked = handler } }

    /// Called while the consumer stops, once per partition with its open streams, before the
    /// final checkpoint: what it sends (held output, say) is covered by that checkpoint. The
    /// streams stay open; they do not end because this replica stops. Exactly-once consumers
    /// call it before every checkpoint too: a transaction commits with the offsets only what
    /// was sent before them, so held rows must go out.
    public func onStopping(_ handler: @escaping Handler<[StreamConsumer]>) { handlers.withLock { $0.stopping = handler } }

    /// Called on each stateful partition's worker before each checkpoint takes its cut, with the
    /// partition's state: for bounded housekeeping, such as removing the state of streams idle
    /// for too long. What it changes is part of that checkpoint (and its changelog records);
    /// an error it throws is reported to `onError` and the checkpoint goes on.
    public func onCheckpointing(_ handler: @escaping @Sendable (PartitionStateAccess) throws -> Void) {
        handlers.withLock { $0.checkpointing = handler }
    }

    var checkpointingHandler: (@Sendable (PartitionStateAccess) throws -> Void)? { handlers.withLock { $0.checkpointing } }

    /// Called on each stateful partition's worker before its first message is processed (its
    /// state opened, and restored from the changelog where it had to be), with the partition's
    /// state: to check what the state holds, or to change it first. Its changes go with the
    /// first message's; an error it throws stops `run()` with that error.
    public func onPartitionStarting(_ handler: @escaping @Sendable (PartitionStateAccess) throws -> Void) {
        handlers.withLock { $0.partitionStarting = handler }
    }

    var partitionStartingHandler: (@Sendable (PartitionStateAccess) throws -> Void)? { handlers.withLock { $0.partitionStarting } }

    // MARK: Health

    /// Per assigned partition, the messages after what is processed, as of the last fetch.
    public func lag() -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        let processed: [TopicPartition: Int64] = current.withLock { $0?.processedOffsets() ?? [:] }
        for (partition, offset) in processed {
            if let high = consumer.cachedHighWatermark(partition) { result[partition] = max(0, high - offset) }
        }
        return result
    }

    /// Per assigned partition, how far processing is behind in data time: milliseconds between the
    /// Kafka timestamps of the newest message read and of the last one processed (0 once every
    /// message read is processed).
    public func timeLag() -> [TopicPartition: Int64] {
        current.withLock { $0?.timeLags() ?? [:] }
    }

    /// Partitions whose state checkpoints fail now (their input is paused and retried), with the
    /// error and since when.
    /// Exactly-once: the transactions committed and aborted so far (nil otherwise).
    public var transactionCounts: TransactionCounts? { checkpointer.transactions?.counts }

    /// Whether checkpoints are Kafka transactions (the client was `transactional(id:)`).
    public var isExactlyOnce: Bool { checkpointer.transactions != nil }

    public func checkpointProblems() -> [TopicPartition: (error: any Error, since: ContinuousClock.Instant)] {
        checkpointer.failing.mapValues { ($0.error, $0.since) }
    }

    // MARK: Running

    /// Reads until `close()` is called or the task is cancelled. Subscribes with the group, or
    /// reads every partition without one. Commits what is processed before it returns (unless
    /// commits are manual); throws if that final checkpoint fails.
    public func run() async throws {
        let stopped = lifecycle.withLock { lifecycle in
            if lifecycle.stopRequested { return true }
            lifecycle.running = true
            return false
        }
        guard !stopped else { return }
        defer {
            let waiters = lifecycle.withLock { lifecycle in
                lifecycle.running = false
                defer { lifecycle.waiters.removeAll() }
                return lifecycle.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
        let run = ConsumerRun(self)
        current.withLock { $0 = run }
        defer { current.withLock { $0 = nil } }
        do {
            try await createChangelogIfMissing()
            // Before any partition is assigned: a restore must not wait on the transaction an
            // earlier instance with this id left open (starting fences it and aborts that).
            try await checkpointer.transactions?.start()
            try await Self.$running.withValue(ObjectIdentifier(self)) { try await run.run() }
        } catch {
            await shutDown()  // leave the group, so the partitions go to a member that can work
            throw error
        }
        await shutDown()
    }

    var stopRequested: Bool { lifecycle.withLock { $0.stopRequested } }

    /// Closes the Kafka consumer (leaving the group), the changelog producer and the state
    /// environments (another process, or this one later, may open them).
    private func shutDown() async {
        // Stopped without committing (a failure): nothing of the open transaction may reach a
        // read_committed reader; a restart reprocesses from the last committed one.
        await checkpointer.transactions?.abortIfOpen()
        await consumer.close()
        await checkpointer.transactions?.producer.close()
        await stores?.changelog?.close()
        if let stores { stores.close(stores.openPartitions.map(\.partition)) }
    }

    /// Checks the state's changelog topic before any partition is assigned: creates it when
    /// missing (compacted, one partition per input partition); throws at once, saying what to
    /// do, when it has fewer partitions than the input or cannot be created.
    private func createChangelogIfMissing() async throws {
        guard let changelog = stores?.changelog else { return }
        try await ChangelogTopic.ensure(changelog.topic, input: topic, settings: clientSettings, logger: logger)
    }

    // MARK: Committing

    /// Checkpoints every package processed so far (except what buffers still hold or the broker
    /// has not acknowledged) and commits the offsets.
    public func commit() async throws {
        guard let run = current.withLock({ $0 }) else { return }
        try await run.checkpoint(strict: true)
    }

    // MARK: Closing

    /// Stops `run()` after the batch in hand, commits what is processed (unless commits are
    /// manual) and leaves the group. Called from a handler, it returns at once and `run()`
    /// stops after that handler.
    public func close() async {
        let wait = lifecycle.withLock { lifecycle in
            lifecycle.stopRequested = true
            return lifecycle.running && Self.running != ObjectIdentifier(self)
        }
        if wait {
            await withCheckedContinuation { continuation in
                let ended = lifecycle.withLock { lifecycle in
                    guard lifecycle.running else { return true }
                    lifecycle.waiters.append(continuation)
                    return false
                }
                if ended { continuation.resume() }
            }
        }
        if Self.running != ObjectIdentifier(self) { await consumer.close() }
    }

    // MARK: What partition tasks call

    var clearsStateOnStreamEnd: Bool { stores?.options.clearOnStreamEnd == true }

    func streamReceived(_ stream: StreamConsumer) {
        handlers.withLock { $0.streamReceived }?(stream)
    }

    func packageFailed(_ failure: PackageFailure) async -> PackageDisposition {
        await handlers.withLock({ $0.packageFailed })?(failure) ?? .skip
    }

    func consumed(_ counts: [TopicPartition: (messages: Int, bytes: Int)]) {
        handlers.withLock { $0.consumed }?(counts)
    }

    var hasConsumedHandler: Bool { handlers.withLock { $0.consumed != nil } }

    /// Calls a topic-level handler; returns false if it threw (the error is reported).
    @discardableResult
    func notify<Value>(_ handler: KeyPath<Handlers, Handler<Value>?>, _ value: Value, _ name: String) async -> Bool {
        guard let handler = handlers.withLock({ $0[keyPath: handler] }) else { return true }
        do {
            try await handler(self, value)
            return true
        } catch {
            report(error, name)
            return false
        }
    }

    /// An error that fails a package: the package-failed handler takes it when there is one (a
    /// poison flood must not write a log line per message).
    func reportPackageError(_ error: any Error, _ context: String) {
        guard handlers.withLock({ $0.packageFailed == nil }) else { return }
        report(error, context)
    }

    func report(_ error: any Error, _ context: String) {
        logger.error("topic consumer", metadata: ["error": "\(error)", "where": "\(context)", "kafka.topic": "\(topic)"])
        handlers.withLock { $0.error }?(error, context)
    }
}
