import CRdKafka
import Foundation
import Logging
import Synchronization

/// A Kafka consumer over librdkafka's high-level (group) consumer.
///
/// Threading model: one thread of ours per consumer (`quix-consumer`) owns the consumer queue.
/// It takes up to `maxBatch` messages per `rd_kafka_consume_batch_queue` call, copies each
/// batch's keys and values into one buffer, destroys the librdkafka messages at once, and hands
/// the batch to `events`, a bounded buffer the application iterates with `for await`. The same
/// thread serves librdkafka's callbacks: rebalances (so `.assigned`, `.revoked` and `.lost`
/// take their place in `events` before any later batch), errors and partition ends. Nothing of
/// librdkafka blocks a thread of Swift concurrency's cooperative pool: blocking calls (commit,
/// committed, seek, watermarks) run on threads of their own, the rest return at once.
///
/// Backpressure: when the application falls `maxBufferedMessages` behind, the poll thread pauses
/// every assigned partition and keeps serving callbacks (so rebalances and the poll interval go
/// on); it resumes them when the application has drained half. librdkafka's prefetch
/// (`prefetchKilobytes`) is the only other buffer.
///
/// Offsets: nothing is stored automatically. Call `storeOffsets` with `message.nextOffset` once a
/// message's effects are durable; auto-commit (or `commit()`) sends what is stored. A revoked
/// partition's queued messages are dropped and never delivered, so work is not done twice by two
/// members.
public final class KafkaConsumer: Sendable {
    /// Everything the consumer has to say, in order. Iterate it from one task.
    public let events: ConsumerEvents
    private let core: ConsumerCore

    /// A start-offset source decides where newly assigned partitions begin.
    public typealias StartOffsets = @Sendable ([TopicPartition]) -> [TopicPartition: Int64]

    /// - Parameter startOffsets: called on the consumer's thread when partitions are assigned,
    ///   before they fetch: the offsets it returns replace the committed ones (an application
    ///   that checkpoints elsewhere, such as a state store, resumes from its own checkpoint).
    ///   Partitions it leaves out start from the committed offset.
    public init(
        settings: ConsumerSettings, logger: Logger = Logger(label: "quixd.kafka.consumer"), startOffsets: StartOffsets? = nil
    ) throws(KafkaError) {
        try settings.validate()
        core = try ConsumerCore(settings: settings, logger: logger, startOffsets: startOffsets)
        events = ConsumerEvents(buffer: core.buffer)
        let core = core
        let thread = Thread { core.pollUntilClosed() }
        thread.name = "quix-consumer"
        thread.start()
    }

    deinit { core.requestClose() }

    /// How often the poll thread woke librdkafka's fetchers after a hold (`FetchWaker`).
    var fetchWakes: Int { core.fetchWakes.load(ordering: .relaxed) }

    /// The next event, waiting up to `timeout` on the calling thread; nil when none came. For
    /// synchronous readers (restoring state from a changelog inside a rebalance); an
    /// application reads `events` instead, never both.
    @available(*, noasync)
    public func poll(timeout: Duration) -> ConsumerEvent? {
        core.buffer.next(timeout: timeout)
    }

    /// Joins the group and subscribes to `topics`; partitions arrive as `.assigned` events.
    public func subscribe(_ topics: [String]) throws(KafkaError) {
        guard core.settings.group != nil else {
            throw KafkaError(code: .invalidArgument, detail: "subscribe needs a consumer group; use assign without one")
        }
        guard core.settings.backpressure == .pause else {
            throw KafkaError(
                code: .invalidArgument,
                detail: "subscribe needs backpressure .pause: a group member must keep polling; .stopPolling is for assign")
        }
        guard !topics.isEmpty, !topics.contains(where: \.isEmpty) else {
            throw KafkaError(code: .invalidArgument, detail: "subscribe: topic names must be non-empty, found \(topics)")
        }
        let list = PartitionList(topics.map { TopicPartition($0, RD_KAFKA_PARTITION_UA) })
        try KafkaError.check(rd_kafka_subscribe(core.raw.handle, list.handle), "subscribe to \(topics)")
        core.control.withLock { $0.subscribed = true }
    }

    /// Reads exactly these partitions from these offsets (or `KafkaOffset.beginning`, `.end`,
    /// `.stored`), outside group management.
    public func assign(_ offsets: [TopicPartitionOffset]) throws(KafkaError) {
        guard !offsets.contains(where: { $0.topic.isEmpty }) else {
            throw KafkaError(code: .invalidArgument, detail: "assign: topic names must be non-empty")
        }
        let list = PartitionList(offsets)
        try KafkaError.check(rd_kafka_assign(core.raw.handle, list.handle), "assign \(offsets)")
    }

    /// The partitions assigned to this member now.
    public func assignment() throws(KafkaError) -> [TopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        try KafkaError.check(rd_kafka_assignment(core.raw.handle, &list), "assignment")
        defer { rd_kafka_topic_partition_list_destroy(list) }
        return PartitionList.partitions(of: list!)
    }

    /// Marks offsets (next offset to read: last processed + 1) as ready to commit.
    /// Fails with `_STATE` for a partition that is no longer assigned.
    public func storeOffsets(_ offsets: [TopicPartitionOffset]) throws(KafkaError) {
        let list = PartitionList(offsets)
        try KafkaError.check(rd_kafka_offsets_store(core.raw.handle, list.handle), "store offsets")
        if let error = list.firstError { throw error }
    }

    /// Whether the partitions are paused because the application fell behind (for tests).
    var isPausedByBackpressure: Bool { core.control.withLock { $0.backpressurePaused } }

    /// Commits `offsets`, or every stored offset when `nil`, and waits for the broker's answer.
    public func commit(_ offsets: [TopicPartitionOffset]? = nil) async throws(KafkaError) {
        let raw = core.raw
        try await runBlocking("commit") { () throws(KafkaError) in
            guard let offsets else {
                let err = rd_kafka_commit(raw.handle, nil, 0)
                guard err != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }  // nothing new was stored
                return try KafkaError.check(err, "commit")
            }
            let list = PartitionList(offsets)
            try KafkaError.check(rd_kafka_commit(raw.handle, list.handle, 0), "commit \(offsets)")
            if let error = list.firstError { throw error }
        }
    }

    /// Sends a commit of every stored offset without waiting for the answer.
    public func commitInBackground() throws(KafkaError) {
        let err = rd_kafka_commit(core.raw.handle, nil, 1)
        guard err != RD_KAFKA_RESP_ERR__NO_OFFSET else { return }
        try KafkaError.check(err, "commit")
    }

    /// The group's committed offsets for `partitions` (`KafkaOffset.invalid` where none).
    public func committed(_ partitions: [TopicPartition], timeout: Duration = .seconds(10)) async throws(KafkaError)
        -> [TopicPartitionOffset]
    {
        let raw = core.raw
        return try await runBlocking("committed") { () throws(KafkaError) in
            let list = PartitionList(partitions)
            try KafkaError.check(rd_kafka_committed(raw.handle, list.handle, timeout.timeoutMilliseconds), "committed")
            if let error = list.firstError { throw error }
            return list.offsets
        }
    }

    /// The offset of the next message the application will receive, per partition.
    public func position(_ partitions: [TopicPartition]) throws(KafkaError) -> [TopicPartitionOffset] {
        let list = PartitionList(partitions)
        try KafkaError.check(rd_kafka_position(core.raw.handle, list.handle), "position")
        return list.offsets
    }

    /// Moves assigned partitions to new offsets; their next messages come from there.
    /// With a zero `timeout` the seek is asynchronous (librdkafka's own mode): it returns at once,
    /// and a failure arrives as an `.error` event.
    public func seek(_ offsets: [TopicPartitionOffset], timeout: Duration = .seconds(10)) async throws(KafkaError) {
        if timeout == .zero {
            let list = PartitionList(offsets)
            try KafkaError.check(rd_kafka_seek_partitions(core.raw.handle, list.handle, 0), "seek")
            // Each partition is marked _IN_PROGRESS: the seek was accepted.
            if let error = list.firstError(ignoring: [RD_KAFKA_RESP_ERR__IN_PROGRESS]) { throw error }
            return
        }
        let raw = core.raw
        try await runBlocking("seek") { () throws(KafkaError) in
            let list = PartitionList(offsets)
            try KafkaError.check(rd_kafka_seek_partitions(raw.handle, list.handle, timeout.timeoutMilliseconds), "seek")
            if let error = list.firstError { throw error }
        }
    }

    /// Stops fetching `partitions` until `resume`; they stay assigned.
    public func pause(_ partitions: [TopicPartition]) throws(KafkaError) {
        core.control.withLock { $0.userPaused.formUnion(partitions) }
        let list = PartitionList(partitions)
        try KafkaError.check(rd_kafka_pause_partitions(core.raw.handle, list.handle), "pause")
        if let error = list.firstError { throw error }
    }

    public func resume(_ partitions: [TopicPartition]) throws(KafkaError) {
        let fetching = core.control.withLock { control in
            control.userPaused.subtract(partitions)
            return !control.backpressurePaused
        }
        guard fetching else { return }  // the poll thread resumes them when the application catches up
        let list = PartitionList(partitions)
        try KafkaError.check(rd_kafka_resume_partitions(core.raw.handle, list.handle), "resume")
        if let error = list.firstError { throw error }
    }

    /// The low and high watermark offsets of a partition, asked of its leader.
    public func watermarks(_ partition: TopicPartition, timeout: Duration = .seconds(10)) async throws(KafkaError)
        -> (low: Int64, high: Int64)
    {
        let raw = core.raw
        return try await runBlocking("watermarks") { () throws(KafkaError) -> (low: Int64, high: Int64) in
            var low: Int64 = 0
            var high: Int64 = 0
            try KafkaError.check(
                rd_kafka_query_watermark_offsets(
                    raw.handle, partition.topic, partition.partition, &low, &high, timeout.timeoutMilliseconds),
                "watermarks of \(partition)")
            return (low, high)
        }
    }

    /// The high watermark of a partition as the last fetch response gave it (no request; nil
    /// before the first fetch). For consumer lag.
    public func cachedHighWatermark(_ partition: TopicPartition) -> Int64? {
        var low: Int64 = -1
        var high: Int64 = -1
        let result = rd_kafka_get_watermark_offsets(core.raw.handle, partition.topic, partition.partition, &low, &high)
        return result == RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0 ? high : nil
    }

    /// Messages received from librdkafka and not yet taken from `events` (for metrics; bounded
    /// by `maxBufferedMessages` plus what was already prefetched when fetching paused).
    public var bufferedMessages: Int { core.buffer.messageCount() }

    /// The group's identity and generation, for `KafkaProducer.sendOffsetsToTransaction`.
    public func groupMetadata() throws(KafkaError) -> ConsumerGroupMetadata {
        guard let handle = rd_kafka_consumer_group_metadata(core.raw.handle) else {
            throw KafkaError(code: .invalidArgument, detail: "the consumer has no group metadata")
        }
        return ConsumerGroupMetadata(handle: handle)
    }

    /// Leaves the group cleanly: revokes the assignment (a final `.revoked` event), commits what
    /// auto-commit has stored, sends LeaveGroup, and ends `events`.
    public func close() async {
        await core.close()
    }
}

/// The consumer's events as an `AsyncSequence`, consumed by a single iterator.
public struct ConsumerEvents: AsyncSequence, Sendable {
    public typealias Element = ConsumerEvent
    let buffer: EventBuffer

    public func makeAsyncIterator() -> Iterator { Iterator(buffer: buffer) }

    public struct Iterator: AsyncIteratorProtocol {
        let buffer: EventBuffer
        public mutating func next() async -> ConsumerEvent? { await buffer.next() }

        /// Runs on the iterating task's executor: no hop per event.
        public mutating func next(isolation actor: isolated (any Actor)?) async -> ConsumerEvent? {
            await buffer.next()
        }
    }
}
