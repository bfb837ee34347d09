import Logging
import QuixKafka
import QuixProtocol
import QuixState
import Synchronization

/// Where a consumer starts when its group has no committed offset (0.5's `AutoOffsetReset`).
public enum AutoOffsetReset: Sendable, Hashable {
    case earliest, latest
}

/// When a topic consumer commits the offsets of processed packages.
public struct CommitOptions: Sendable, Hashable {
    /// Commit once this many packages have been processed since the last commit.
    public var everyPackages: Int?
    /// Commit at least this often while packages are processed.
    public var interval: Duration?

    public init(everyPackages: Int? = 5_000, interval: Duration? = .seconds(5)) {
        self.everyPackages = everyPackages
        self.interval = interval
    }

    /// Only `TopicConsumer.commit()` commits.
    public static let manual = CommitOptions(everyPackages: nil, interval: nil)
}

/// A package that could not be decoded, or whose handler threw: what it was and why.
public struct PackageFailure: Sendable {
    public var topic: String
    public var partition: Int32
    /// The offset of its first message (of its first part, for a split package).
    public var offset: Int64
    public var key: [UInt8]?
    /// The package's bytes (merged, for a split package).
    public var value: [UInt8]
    public var timestampMilliseconds: Int64?
    public var streamID: String
    public var error: any Error
    /// Where it failed, in words.
    public var context: String
}

/// What a topic consumer does after a package failed.
public enum PackageDisposition: Sendable {
    /// Count it as processed and go on.
    case skip
    /// Stop `run()` before it: what came before is committed, it and what follows are not.
    case stop
}

/// `TopicConsumer.run()` stopped at a package, as its failure handler asked.
public struct ConsumerStoppedAtFailure: Error, CustomStringConvertible {
    public var failure: PackageFailure

    public var description: String {
        "stopped at \(failure.topic)[\(failure.partition)] offset \(failure.offset): \(failure.context): \(failure.error)"
    }
}

/// Turns a Kafka message's value into what a stream receives (the Quix format by default).
public typealias MessageDecoder = @Sendable (_ value: ArraySlice<UInt8>, _ timestampMilliseconds: Int64?) throws -> DecodedMessage

/// Reads the streams of one topic. Set `onStreamReceived` (and, in it, the stream's handlers),
/// then `run()`. Packages are handled in order per partition, one at a time; a package counts as
/// processed once its handlers have returned, and only processed packages are committed (never
/// past rows a consumer buffer still holds).
public final class TopicConsumer: Sendable {
    public typealias Handler<Value> = @Sendable (TopicConsumer, Value) async throws -> Void

    public let topic: String
    private let consumer: KafkaConsumer
    private let group: String?
    private let clientSettings: KafkaClientSettings
    private let startFrom: AutoOffsetReset
    private let options: CommitOptions
    private let logger: Logger
    private let stores: StateStores?
    private let idleStreamTimeout: Duration?
    private let decode: MessageDecoder
    private let handlers = Mutex(Handlers())
    private let progress = Mutex(Progress())
    /// One commit at a time: `commit()` may be called from another task while `run()` commits.
    private let commitOrder = AsyncSerialLock()
    private let lifecycle = Mutex(Lifecycle())

    /// How often `run()` gets control while no message arrives (buffer timeouts, interval
    /// commits, `close()`).
    static let tick: Duration = .milliseconds(50)

    @TaskLocal private static var running: ObjectIdentifier?

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
    }

    /// What `run()` has handled, shared with `commit()`.
    struct Progress: Sendable {
        var streams: [String: StreamConsumer] = [:]
        /// The next offset to commit, per partition: past every processed package.
        var processed: [TopicPartition: Int64] = [:]
        var committed: [TopicPartition: Int64] = [:]
        /// The offset of each stateful partition's latest state checkpoint.
        var stateCheckpoints: [TopicPartition: Int64] = [:]
        var uncommitted = 0
        var lastCommit = ContinuousClock.now
        /// After a failed commit, the next is not tried before this (a commit that fails during a
        /// rebalance must not be retried after every message, delaying the revocation).
        var retryAfter = ContinuousClock.now
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
    /// - Parameter groupInstanceID: static group membership (a pod name): a member that comes
    ///   back with the same id within the session timeout gets its partitions back without a
    ///   rebalance.
    /// - Parameter decoder: reads message values that are not in the Quix format (JSON rows,
    ///   raw bytes); the stream id is the message key either way.
    public init(
        client: KafkaStreamingClient, topic: String, group: String?, startFrom: AutoOffsetReset = .latest,
        commit: CommitOptions = CommitOptions(), state: StateOptions? = nil, closeIdleStreamsAfter: Duration? = nil,
        decoder: MessageDecoder? = nil, groupInstanceID: String? = nil
    ) throws {
        decode = decoder ?? { value, _ in try QuixCodec.decode(value) }
        guard !topic.isEmpty else { throw StreamError(.invalidStreamID, "the topic name is empty") }
        self.idleStreamTimeout = closeIdleStreamsAfter
        self.topic = topic
        self.group = group
        self.startFrom = startFrom
        clientSettings = client.settings
        options = group == nil ? .manual : commit
        logger = client.logger
        var settings = ConsumerSettings(client: client.settings, group: group)
        settings.startFrom = startFrom == .earliest ? .earliest : .latest
        settings.autoCommit = false
        settings.idleInterval = Self.tick
        settings.groupInstanceID = groupInstanceID
        let stores = try state.map {
            try StateStores(options: $0, name: group ?? "default", topic: topic, client: client.settings, logger: client.logger)
        }
        self.stores = stores
        var startOffsets: KafkaConsumer.StartOffsets?
        if let stores { startOffsets = { partitions in stores.open(partitions) } }
        consumer = try KafkaConsumer(settings: settings, logger: client.logger, startOffsets: startOffsets)
    }

    // MARK: Handlers

    /// Called once per new stream, before its first package is handled: attach its handlers here.
    public func onStreamReceived(_ handler: @escaping @Sendable (StreamConsumer) -> Void) {
        handlers.withLock { $0.streamReceived = handler }
    }

    /// Called when a handler throws or a package cannot be decoded; the consumer goes on.
    public func onError(_ handler: @escaping @Sendable (any Error, String) -> Void) {
        handlers.withLock { $0.error = handler }
    }

    /// Called for a package that could not be decoded or whose handler threw (after `onError`);
    /// it decides whether the consumer goes on or stops before the package. Without it, the
    /// consumer goes on.
    public func onPackageFailed(_ handler: @escaping @Sendable (PackageFailure) async -> PackageDisposition) {
        handlers.withLock { $0.packageFailed = handler }
    }

    /// Called once per batch of messages read, before they are handled, with the messages and
    /// value bytes per partition (for metrics).
    public func onConsumed(_ handler: @escaping @Sendable ([TopicPartition: (messages: Int, bytes: Int)]) -> Void) {
        handlers.withLock { $0.consumed = handler }
    }

    /// Per assigned partition, the messages after what is processed, as of the last fetch.
    public func lag() -> [TopicPartition: Int64] {
        let processed = progress.withLock { $0.processed }
        var result: [TopicPartition: Int64] = [:]
        for (partition, next) in processed {
            if let high = consumer.cachedHighWatermark(partition) { result[partition] = max(0, high - next) }
        }
        return result
    }

    /// Called before offsets are committed (flush outputs here); if it throws, the commit is
    /// skipped and tried again at the next occasion.
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

    // MARK: Running

    /// Reads until `close()` is called or the task is cancelled. Subscribes with the group, or
    /// reads every partition without one. Commits what is processed before it returns (unless
    /// commits are manual).
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
        do {
            try await createChangelogIfMissing()
            try await Self.$running.withValue(ObjectIdentifier(self)) { try await readUntilStopped() }
        } catch let stopped as ConsumerStoppedAtFailure {
            if options != .manual { try? await commitProcessed() }  // up to the package it stopped at
            await shutDown()
            throw stopped
        } catch {
            await shutDown()  // leave the group, so the partitions go to a member that can work
            throw error
        }
        if options != .manual { try? await commitProcessed() }
        await shutDown()
    }

    /// Closes the Kafka consumer (leaving the group), the changelog producer and the state
    /// environments (another process, or this one later, may open them).
    private func shutDown() async {
        await consumer.close()
        await stores?.changelog?.close()
        progress.withLock { $0.streams.removeAll() }
        if let stores { stores.close(stores.openPartitions.map(\.partition)) }
    }

    /// Checks the state's changelog topic before any partition is assigned: creates it when
    /// missing (compacted, one partition per input partition); throws at once, saying what to
    /// do, when it has fewer partitions than the input or cannot be created.
    private func createChangelogIfMissing() async throws {
        guard let changelog = stores?.changelog else { return }
        try await ChangelogTopic.ensure(changelog.topic, input: topic, settings: clientSettings, logger: logger)
    }

    private func readUntilStopped() async throws {
        // Stateful partitions whose first message is still to come: it shows whether the state's
        // checkpoint still exists (checked once per assignment, not per message).
        var awaitingFirstMessage: Set<Int32> = []
        // Partitions assigned back to this consumer while they were being revoked resume where
        // they were fetched from (their state's checkpoint at assignment); what they processed
        // since is in their state and committed, so those messages are passed over.
        var processedBelow: [TopicPartition: Int64] = [:]
        if group == nil {
            let admin = try KafkaAdmin(settings: AdminSettings(client: clientSettings))
            guard let metadata = try await admin.metadata(topic: topic).first else {
                throw StreamError(.invalidStreamID, "topic \"\(topic)\" does not exist")
            }
            let start = startFrom == .earliest ? KafkaOffset.beginning : KafkaOffset.end
            let partitions = metadata.partitions.map { TopicPartition(topic, $0.id) }
            let checkpoints = stores?.open(partitions) ?? [:]
            try checkStateOpened()
            if stores != nil { awaitingFirstMessage = Set(partitions.map(\.partition)) }
            try consumer.assign(partitions.map { TopicPartitionOffset($0, offset: checkpoints[$0] ?? start) })
            await notify(\.assigned, partitions, "the assigned handler")
        } else {
            try consumer.subscribe([topic])
        }
        var assembler = PackageAssembler()
        for await event in consumer.events {
            switch event {
            case .messages(let batch):
                if let consumed = handlers.withLock({ $0.consumed }) {
                    var counts: [TopicPartition: (messages: Int, bytes: Int)] = [:]
                    for message in batch { counts[message.topicPartition, default: (0, 0)].messages += 1; counts[message.topicPartition]!.bytes += message.value?.count ?? 0 }
                    consumed(counts)
                }
                for message in batch {
                    if !processedBelow.isEmpty, let floor = processedBelow[message.topicPartition] {
                        if message.offset < floor { continue }
                        processedBelow[message.topicPartition] = nil
                    }
                    if !awaitingFirstMessage.isEmpty, awaitingFirstMessage.remove(message.partition) != nil {
                        try stores?.checkResume(message.topicPartition, firstOffset: message.offset)
                    }
                    let ready = assembler.add(
                        partition: message.partition, key: message.key.map(Array.init), offset: message.offset,
                        timestampMilliseconds: message.timestampMilliseconds, value: message.value ?? [])
                    for error in assembler.takeDropped() { report(error, "topic \(topic)[\(message.partition)]") }
                    for package in ready {
                        if let failure = await handle(package),
                            await handlers.withLock({ $0.packageFailed })?(failure) == .stop
                        {
                            throw ConsumerStoppedAtFailure(failure: failure)
                        }
                        progress.withLock { progress in
                            progress.processed[TopicPartition(topic, package.partition)] = package.lastOffset + 1
                            progress.uncommitted += 1
                        }
                    }
                }
            case .revoked(let partitions), .lost(let partitions):
                let floors = await revoke(partitions, orderly: { if case .revoked = event { true } else { false } }())
                processedBelow.merge(floors) { _, new in new }
                for partition in partitions {
                    assembler.forget(partition: partition.partition)
                    awaitingFirstMessage.remove(partition.partition)
                }
            case .assigned(let partitions):
                try checkStateOpened()
                if stores != nil { awaitingFirstMessage.formUnion(partitions.map(\.partition)) }
                await notify(\.assigned, partitions, "the assigned handler")
            case .error(let error):
                logger.warning("topic consumer", metadata: ["error": "\(error)", "topic": "\(topic)"])
            case .partitionEnd, .idle:
                break
            }
            await expireBuffers()
            await closeIdleStreams()
            await commitIfDue()
            if lifecycle.withLock({ $0.stopRequested }) || Task.isCancelled { break }
        }
    }

    /// Commits when `CommitOptions` say it is time. A failed commit is reported and tried again
    /// at the next occasion.
    private func commitIfDue() async {
        let due = progress.withLock { progress in
            progress.uncommitted > 0 && ContinuousClock.now >= progress.retryAfter
                && (options.everyPackages.map { progress.uncommitted >= $0 } == true
                    || options.interval.map { ContinuousClock.now - progress.lastCommit >= $0 } == true)
        }
        guard due else { return }
        do {
            try await commitProcessed()
        } catch {
            progress.withLock { $0.retryAfter = .now + Self.commitRetryDelay }
            report(error, "the commit of topic \(topic)")
        }
    }

    static let commitRetryDelay: Duration = .milliseconds(500)

    /// Releases the rows of consumer buffers that waited longer than their timeout.
    private func expireBuffers() async {
        let now = ContinuousClock.now
        for stream in progress.withLock({ Array($0.streams.values) }) { await stream.expireBuffers(now: now, onError: report) }
    }

    /// Ends the streams that received nothing for `idleStreamTimeout`.
    private func closeIdleStreams() async {
        guard let timeout = idleStreamTimeout else { return }
        let now = ContinuousClock.now
        let idle = progress.withLock { progress in
            let idle = progress.streams.values.filter { now - $0.lastPackage >= timeout }
            for stream in idle { progress.streams[stream.streamID] = nil }
            return idle
        }
        for stream in idle {
            logger.debug("closing an idle stream", metadata: ["stream": "\(stream.streamID)"])
            await stream.deliverClosed(.terminated, onError: report)
            if stores?.options.clearOnStreamEnd == true { stream.clearState() }
        }
    }

    /// The partitions' streams end here: their buffers release what they hold, then (for an
    /// orderly revocation, unless commits are manual) what is processed is committed before the
    /// partitions move.
    /// Returns, for partitions that were assigned to this consumer again before their revocation
    /// got here, the offset their state and commits are at: messages below it were processed.
    private func revoke(_ partitions: [TopicPartition], orderly: Bool) async -> [TopicPartition: Int64] {
        await notify(\.revoking, partitions, "the revoking handler")
        // When a revocation outlasts the consumer's revocation timeout, the rebalance goes on and
        // may assign some of the partitions back before this runs: their state was opened again
        // (it is the same) and must stay open.
        let reassigned = stores?.takeReopened(partitions) ?? []
        let moved = Set(partitions.map(\.partition))
        let closing = progress.withLock { progress in
            let closing = progress.streams.values.filter { moved.contains($0.partition) }
            for stream in closing { progress.streams[stream.streamID] = nil }
            return closing
        }
        for stream in closing { await stream.deliverClosed(.terminated, onError: report) }
        if orderly && options != .manual {
            do { try await commitProcessed() } catch { report(error, "the commit before partitions \(partitions) moved") }
        }
        let floors = progress.withLock { progress in
            var floors: [TopicPartition: Int64] = [:]
            for partition in partitions {
                if orderly, reassigned.contains(partition), let processed = progress.processed[partition] { floors[partition] = processed }
                progress.processed[partition] = nil
                progress.committed[partition] = nil
                progress.stateCheckpoints[partition] = nil
            }
            return floors
        }
        stores?.close(partitions.filter { !reassigned.contains($0) })
        for partition in reassigned where floors[partition] == nil {
            // Lost, not revoked: nothing was checkpointed, so the state goes back to its checkpoint,
            // where the partition resumes.
            stores?.partition(partition)?.discardPending()
        }
        await notify(\.streamsRevoked, closing, "the streams revoked handler")
        return floors
    }

    // MARK: Committing

    /// Commits every package processed so far (except what consumer buffers still hold).
    public func commit() async throws {
        try await commitProcessed()
    }

    private func commitProcessed() async throws {
        try await commitOrder.withLock { try await commitInOrder() }
    }

    private func commitInOrder() async throws {
        var pending = progress.withLock { progress in
            // Also partitions whose offsets did not move but whose state changed (a stream closed
            // for being idle cleared its state).
            Self.committable(progress.processed, progress.streams).filter {
                progress.committed[$0.key] != $0.value || stores?.partition($0.key)?.hasPendingChanges == true
            }
        }
        guard !pending.isEmpty else { return }
        // A committing handler that fails (an output that could not be flushed) stops the commit.
        guard await notify(\.committing, (), "the committing handler (the commit waits for the next occasion)") else { return }
        if let stores { pending = await checkpointState(pending, stores) }
        guard !pending.isEmpty else { return }
        let offsets = pending.map { TopicPartitionOffset($0.key, offset: $0.value) }
        try consumer.storeOffsets(offsets)
        try await consumer.commit()
        progress.withLock { progress in
            progress.committed.merge(pending) { _, new in new }
            progress.uncommitted = 0
            progress.lastCommit = .now
        }
        await notify(\.committed, offsets, "the committed handler")
    }

    /// Checkpoints the state of stateful partitions before their offsets are committed (so a
    /// partition's state is never behind its committed offset); returns the offsets that may
    /// be committed. A partition whose buffers hold rows is not checkpointed (its state holds
    /// the effects of packages after them) and commits up to its last checkpoint; one whose
    /// checkpoint fails (a full disk) commits nothing, keeps its changes and says so.
    private func checkpointState(_ pending: [TopicPartition: Int64], _ stores: StateStores) async -> [TopicPartition: Int64] {
        var committable: [TopicPartition: Int64] = [:]
        var ready: [(partition: TopicPartition, state: PartitionState, offset: Int64)] = []
        for (partition, offset) in pending {
            guard let state = stores.partition(partition) else {
                committable[partition] = offset
                continue
            }
            let (processed, last) = progress.withLock { ($0.processed[partition], $0.stateCheckpoints[partition]) }
            if offset == processed {
                ready.append((partition, state, offset))
            } else if let last {
                committable[partition] = last
            }
        }
        // Every partition's changelog records go out together and are waited for once.
        var markers: [TopicPartition: ChangelogWriter.Marker] = [:]
        if let changelog = stores.changelog {
            for entry in ready {
                do {
                    markers[entry.partition] = try await changelog.enqueue(
                        entry.state.pendingEffects(), partition: entry.partition.partition, checkpoint: entry.offset)
                } catch {
                    report(error, "the changelog of \(entry.partition) (its offsets are not committed until it succeeds)")
                }
            }
            do { try await changelog.flush() } catch { report(error, "flushing the changelog") }
        }
        for entry in ready {
            do {
                var changelogOffset: Int64?
                if stores.changelog != nil {
                    guard let marker = markers[entry.partition] else { continue }
                    changelogOffset = try marker.offsetAfter()
                }
                try entry.state.checkpoint(offset: entry.offset, changelogOffset: changelogOffset)
                progress.withLock { $0.stateCheckpoints[entry.partition] = entry.offset }
                committable[entry.partition] = entry.offset
            } catch {
                report(error, "the state checkpoint of \(entry.partition) (its offsets are not committed until it succeeds)")
            }
        }
        return committable
    }

    /// Throws the first error of a partition whose state could not be opened: processing it
    /// without its state would compute wrong results.
    private func checkStateOpened() throws {
        guard let (partition, error) = stores?.takeFailures().first else { return }
        throw StreamStateError(.storage, "the state of \(partition) could not be opened: \(error)", underlying: error as? StateError)
    }

    /// Per partition, the next offset to commit: past every processed package, but not past the
    /// oldest package whose rows a stream's buffer still holds (a crash must redeliver them).
    static func committable(_ processed: [TopicPartition: Int64], _ streams: [String: StreamConsumer]) -> [TopicPartition: Int64] {
        var result = processed
        for stream in streams.values {
            guard let held = stream.oldestHeldOffset else { continue }
            let partition = result.keys.first { $0.partition == stream.partition }
            if let partition, held < result[partition]! { result[partition] = held }
        }
        return result
    }

    // MARK: Closing

    /// Stops `run()` after the package in hand, commits what is processed (unless commits are
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

    // MARK: Handling packages

    /// Hands a package to its stream; returns why it failed, if it did.
    private func handle(_ package: PackageAssembler.Assembled) async -> PackageFailure? {
        let id = QuixCodec.streamID(fromKey: package.key?[...])
        guard id != QuixCodec.keepAliveKey else { return nil }
        func failure(_ error: any Error, _ context: String) -> PackageFailure {
            PackageFailure(
                topic: topic, partition: package.partition, offset: package.offset, key: package.key, value: package.value,
                timestampMilliseconds: package.timestampMilliseconds, streamID: id, error: error, context: context)
        }
        let message: DecodedMessage
        do {
            message = try decode(package.value[...], package.timestampMilliseconds)
        } catch {
            report(error, "stream \(id), partition \(package.partition), offset \(package.offset)")
            return failure(error, "decoding")
        }
        let (stream, isNew) = progress.withLock { progress in
            if let known = progress.streams[id] { return (known, false) }
            let stream = StreamConsumer(id: id, partition: package.partition, state: stores?.partition(TopicPartition(topic, package.partition)))
            progress.streams[id] = stream
            return (stream, true)
        }
        if isNew { handlers.withLock { $0.streamReceived }?(stream) }
        // A package whose handler throws leaves no state change behind.
        let partitionState = stream.partitionState
        let savepoint = partitionState?.savepoint()
        var failed: PackageFailure?
        let ended = await stream.deliver(
            message, offset: package.offset, timestampMilliseconds: package.timestampMilliseconds,
            onError: { error, context in
                if failed == nil { failed = failure(error, context) }
                report(error, context)
            })
        if failed != nil, let savepoint { partitionState?.rollBack(to: savepoint) }
        if ended {
            if stores?.options.clearOnStreamEnd == true { stream.clearState() }
            progress.withLock { $0.streams[id] = nil }  // ended: a later package with this id starts a new stream
        }
        return failed
    }

    /// Calls a topic-level handler; returns false if it threw (the error is reported).
    @discardableResult
    private func notify<Value>(_ handler: KeyPath<Handlers, Handler<Value>?>, _ value: Value, _ name: String) async -> Bool {
        guard let handler = handlers.withLock({ $0[keyPath: handler] }) else { return true }
        do {
            try await handler(self, value)
            return true
        } catch {
            report(error, name)
            return false
        }
    }

    private func report(_ error: any Error, _ context: String) {
        logger.error("package not handled", metadata: ["error": "\(error)", "where": "\(context)"])
        handlers.withLock { $0.error }?(error, context)
    }
}
