import CRdKafka

/// Wakes librdkafka's fetchers after the consumer let its queue fill.
///
/// librdkafka before 2.2 stops fetching once the consumer's queue reaches
/// `queued.max.messages.kbytes` (or `queued.min.messages`) and decides again only when the
/// broker thread next wakes, up to a second later. (2.2 made that wait `fetch.queue.backoff.ms`.)
/// A consumer that holds back, as ours does while the application is behind, lets the queue
/// fill, so it waited that second every time. On the shared bench that was most of the time: W1
/// fetched for 0.2 s, then idled for 0.8 s.
///
/// librdkafka also stops on its own, while the consumer is still taking, once its queue holds
/// `queued.min.messages` (100,000 by default): small records reach that count long before the
/// byte budget. A state restore of 1,000,000 small records stalled that way for a second at a
/// time, 1.6x a plain read of the same changelog with a newer librdkafka.
///
/// So once the poll thread has taken half of what was queued when it stopped holding back, or
/// when a full batch came from a queue at `queued.min.messages`, it sends one ListOffsets
/// request to each leader of the assignment (`rd_kafka_offsets_for_times`, which only reads).
/// Sending a request is an operation on the broker threads, and once awake they decide to
/// fetch again.
struct FetchWaker {
    /// Whether this librdkafka needs it (before 2.2) and the consumer asked for a full queue
    /// (`ConsumerSettings.fetchQueueBackoff`).
    private let enabled: Bool
    private let client: OpaquePointer
    /// The consumer queue, whose length is read only around a hold or after a full batch.
    private let queue: OpaquePointer
    /// A batch this long may have come from a full queue.
    private let maxBatch: Int
    /// librdkafka's `queued.min.messages`: it stops fetching once its queue holds this many.
    private let queuedMessagesLimit: Int
    private var heldBack = false
    /// The queue's length when it was last found full: when taking resumed after holding
    /// back, or before a full batch from a queue at `queuedMessagesLimit`.
    private var filled: Int?

    /// Whether the librdkafka in use lacks `fetch.queue.backoff.ms` (before 2.2).
    static let neededByLibrdkafka = rd_kafka_version() < 0x0202_00FF

    init(settings: ConsumerSettings, client: OpaquePointer, queue: OpaquePointer) {
        enabled = settings.fetchQueueBackoff != nil && Self.neededByLibrdkafka
        self.client = client
        self.queue = queue
        maxBatch = settings.maxBatch
        queuedMessagesLimit = Self.queuedMessagesLimit(client)
    }

    /// The client's `queued.min.messages`, as librdkafka holds it (its default if unreadable).
    private static func queuedMessagesLimit(_ client: OpaquePointer) -> Int {
        var text = [CChar](repeating: 0, count: 32)
        var size = text.count
        let read = rd_kafka_conf_get(rd_kafka_conf(client), "queued.min.messages", &text, &size) == RD_KAFKA_CONF_OK
        return (read ? text.withUnsafeBufferPointer { Int(String(cString: $0.baseAddress!)) } : nil) ?? 100_000
    }

    /// The poll thread takes nothing this round: the queue may fill.
    mutating func holdingBack() {
        heldBack = enabled
    }

    /// The poll thread takes again.
    mutating func taking() {
        guard heldBack else { return }
        heldBack = false
        filled = Int(rd_kafka_queue_length(queue))
    }

    /// After a batch of `count` messages was taken: wakes the fetchers once half of what was
    /// queued when the queue was last found full is taken. Returns whether it did.
    mutating func tookBatch(_ count: Int) -> Bool {
        guard enabled, filled != nil || count == maxBatch else { return false }
        let left = Int(rd_kafka_queue_length(queue))
        if filled == nil, count == maxBatch, left + count >= queuedMessagesLimit { filled = left + count }
        guard let filled, left <= filled / 2 else { return false }
        self.filled = nil
        Self.wake(client)
        return true
    }

    /// Sends the ListOffsets requests for `client`'s assignment and waits for their answers
    /// (0.3 ms on the mock), which are not needed. It waits with no timeout of its own. With a
    /// 200 ms timeout, a consumer stalled after a rebalance in about half of the runs of
    /// `StateCrashTests.movingPartitions`; waiting, 5 of 5 passed. The likely cause:
    /// librdkafka 2.0's `rd_kafka_offsets_for_times` keeps its reply state on its stack, and an
    /// answer that comes after the call has returned is handled with that state gone. Each
    /// request still ends at librdkafka's own request timeout (`socket.timeout.ms`).
    private static func wake(_ client: OpaquePointer) {
        var assignment: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(client, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR, let assignment else { return }
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        guard assignment.pointee.cnt > 0 else { return }
        for index in 0..<Int(assignment.pointee.cnt) {
            assignment.pointee.elems[index].offset = -1  // as a timestamp: the end of the partition
        }
        _ = rd_kafka_offsets_for_times(client, assignment, -1)
    }
}
