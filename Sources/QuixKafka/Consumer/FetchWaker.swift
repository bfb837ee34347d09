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
/// So once the poll thread has taken half of what was queued when it stopped holding back, it
/// sends one ListOffsets request to each leader of the assignment (`rd_kafka_offsets_for_times`,
/// which only reads). Sending a request is an operation on the broker threads, and once
/// awake they decide to fetch again.
struct FetchWaker {
    /// Whether this librdkafka needs it (before 2.2) and the consumer asked for a full queue
    /// (`ConsumerSettings.fetchQueueBackoff`).
    private let enabled: Bool
    private let client: OpaquePointer
    /// The consumer queue, whose length is read only around a hold.
    private let queue: OpaquePointer
    private var heldBack = false
    /// The queue's length when taking resumed after holding back.
    private var filled: Int?

    /// Whether the librdkafka in use lacks `fetch.queue.backoff.ms` (before 2.2).
    static let neededByLibrdkafka = rd_kafka_version() < 0x0202_00FF

    init(settings: ConsumerSettings, client: OpaquePointer, queue: OpaquePointer) {
        enabled = settings.fetchQueueBackoff != nil && Self.neededByLibrdkafka
        self.client = client
        self.queue = queue
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

    /// After a batch was taken: wakes the fetchers once half of what was queued when the hold
    /// ended is taken. Returns whether it did.
    mutating func tookBatch() -> Bool {
        guard let filled, Int(rd_kafka_queue_length(queue)) <= filled / 2 else { return false }
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
