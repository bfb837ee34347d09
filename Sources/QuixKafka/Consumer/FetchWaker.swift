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
    let enabled: Bool
    private var heldBack = false
    /// The queue's length when taking resumed after holding back.
    private var filled: Int?

    /// Whether the librdkafka in use lacks `fetch.queue.backoff.ms` (before 2.2).
    static let neededByLibrdkafka = rd_kafka_version() < 0x0202_00FF

    init(settings: ConsumerSettings) {
        enabled = settings.fetchQueueBackoff != nil && Self.neededByLibrdkafka
    }

    /// The poll thread takes nothing this round: the queue may fill.
    mutating func holdingBack() {
        heldBack = enabled
    }

    /// The poll thread takes again; `queueLength` is what librdkafka holds now.
    mutating func taking(queueLength: Int) {
        guard heldBack else { return }
        heldBack = false
        filled = queueLength
    }

    /// After a batch was taken: whether to wake the fetchers now.
    mutating func shouldWake(queueLength: Int) -> Bool {
        guard let filled, queueLength <= filled / 2 else { return false }
        self.filled = nil
        return true
    }

    /// Sends the ListOffsets requests for `client`'s assignment, waiting at most `timeout`
    /// milliseconds for the answers, which are not needed.
    static func wake(_ client: OpaquePointer, timeout: Int32 = 200) {
        var assignment: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(client, &assignment) == RD_KAFKA_RESP_ERR_NO_ERROR, let assignment else { return }
        defer { rd_kafka_topic_partition_list_destroy(assignment) }
        guard assignment.pointee.cnt > 0 else { return }
        for index in 0..<Int(assignment.pointee.cnt) {
            assignment.pointee.elems[index].offset = -1  // as a timestamp: the end of the partition
        }
        _ = rd_kafka_offsets_for_times(client, assignment, timeout)
    }
}
