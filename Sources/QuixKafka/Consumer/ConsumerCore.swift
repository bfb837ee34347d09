import CRdKafka
import Foundation
import Logging
import Synchronization

/// State shared by the public consumer, its poll thread and the rebalance callback.
final class ConsumerControl: Sendable {
    struct State {
        var closeRequested = false
        var closing = false
        var closed = false
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
        var backpressurePaused = false
        var userPaused: Set<TopicPartition> = []
        /// Joined a group (`subscribe`), and got an assignment from it at least once.
        var subscribed = false
        var everAssigned = false
    }

    private let state = Mutex(State())

    func withLock<T>(_ body: (inout State) -> T) -> T {
        state.withLock { body(&$0) }
    }
}

final class ConsumerCore: Sendable {
    let settings: ConsumerSettings
    let raw: RawClient
    let buffer: EventBuffer
    let control: ConsumerControl
    /// The consumer queue (`rd_kafka_queue_get_consumer`); destroyed before the client.
    private nonisolated(unsafe) let queue: OpaquePointer
    private let logger: Logger
    /// How often the poll thread woke librdkafka's fetchers (`FetchWaker`).
    let fetchWakes = Atomic<Int>(0)

    init(settings: ConsumerSettings, logger: Logger, startOffsets: KafkaConsumer.StartOffsets?) throws(KafkaError) {
        self.settings = settings
        self.logger = logger
        let buffer = EventBuffer()
        let control = ConsumerControl()
        self.buffer = buffer
        self.control = control
        let callbacks = ClientCallbacks(
            logger: logger,
            onError: { error in
                logger.warning("consumer error", metadata: ["error": "\(error)"])
                buffer.push(.error(error))
            },
            onRebalance: { rk, err, list in
                Self.rebalance(
                    rk, err, list, buffer: buffer, control: control, settings: settings, startOffsets: startOffsets, logger: logger)
            })
        raw = try RawClient(RD_KAFKA_CONSUMER, properties: settings.properties(), callbacks: callbacks) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, rebalanceCallback)
        }
        // Route every event of the client (errors, rebalances, logs stay on their own) to the consumer queue.
        rd_kafka_poll_set_consumer(raw.handle)
        queue = rd_kafka_queue_get_consumer(raw.handle)
    }

    deinit { rd_kafka_queue_destroy(queue) }

    func requestClose() {
        control.withLock { $0.closeRequested = true }
    }

    func close() async {
        await withCheckedContinuation { continuation in
            let done = control.withLock { control in
                control.closeRequested = true
                if control.closed { return true }
                control.closeWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// The body of the poll thread.
    func pollUntilClosed() {
        var slots = [UnsafeMutablePointer<rd_kafka_message_t>?](repeating: nil, count: settings.maxBatch)
        var batcher = BatchBuilder(readsHeaders: settings.readsHeaders)
        let wait = Int32(min(100, settings.idleInterval?.milliseconds ?? 100))
        var lastPush = buffer.pushedCount()
        var quietSince = ContinuousClock.now
        var holdingSince: ContinuousClock.Instant?
        var waker = FetchWaker(settings: settings, client: raw.handle, queue: queue)
        while !control.withLock({ $0.closeRequested }) {
            if buffer.messageCount() >= settings.maxBufferedMessages {
                let since = holdingSince ?? .now
                holdingSince = since
                if settings.backpressure == .stopPolling || ContinuousClock.now - since < settings.holdBeforePausing {
                    // Hold: librdkafka's queue fills and its fetching stops, with nothing dropped.
                    waker.holdingBack()
                    _ = buffer.waitUntilAtMost(settings.maxBufferedMessages / 2, timeout: .milliseconds(100))
                    continue
                }
                // Held too long (the application is stuck, not busy): pause, and poll for callbacks.
            } else {
                holdingSince = nil
                waker.taking()
            }
            let paused = settings.backpressure == .pause && applyBackpressure()
            let count = slots.withUnsafeMutableBufferPointer { slots in
                takeBatch(into: slots, waitMilliseconds: paused ? 10 : wait)
            }
            if count < 0 {
                // rd_kafka_last_error is thread-local: read it here, in the call's own thread.
                if let error = KafkaError.from(rd_kafka_last_error()) { buffer.push(.error(error)) }
            } else if count > 0 {
                for event in batcher.events(from: slots[0..<count]) { buffer.push(event) }
                if waker.tookBatch(count) { fetchWakes.add(1, ordering: .relaxed) }
            }
            if let idle = settings.idleInterval {
                // Callbacks push too (rebalances, errors): any push restarts the quiet time.
                let pushed = buffer.pushedCount()
                if pushed != lastPush {
                    lastPush = pushed
                    quietSince = .now
                } else if ContinuousClock.now - quietSince >= idle {
                    lastPush = buffer.push(.idle) + 1
                    quietSince = .now
                }
            }
        }
        control.withLock { $0.closing = true }
        let err = rd_kafka_consumer_close(raw.handle)  // revokes (serving the rebalance callback here), commits, leaves
        if let error = KafkaError.from(err) {
            logger.warning("consumer close reported an error", metadata: ["error": "\(error)"])
        }
        if control.withLock({ $0.subscribed && !$0.everAssigned }) {
            raw.abandon()  // destroying it would abort the process (see RawClient.abandon)
            logger.debug("a consumer closed before its first assignment is left undestroyed (librdkafka #4312)")
        }
        buffer.finish()
        let waiters = control.withLock { control in
            control.closed = true
            defer { control.closeWaiters.removeAll() }
            return control.closeWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Takes up to `slots.count` messages: whatever is ready at once, or, when nothing is, waits up
    /// to `waitMilliseconds` for the first and then takes what followed it. (librdkafka 2.0's
    /// `rd_kafka_consume_batch_queue` waits until the batch is full or the timeout passes, which
    /// would add up to the whole timeout of latency to every partly filled batch.)
    private func takeBatch(
        into slots: UnsafeMutableBufferPointer<UnsafeMutablePointer<rd_kafka_message_t>?>, waitMilliseconds: Int32
    ) -> Int {
        let ready = rd_kafka_consume_batch_queue(queue, 0, slots.baseAddress, slots.count)
        guard ready == 0 else { return ready }
        let first = rd_kafka_consume_batch_queue(queue, waitMilliseconds, slots.baseAddress, 1)
        guard first == 1, slots.count > 1 else { return first }
        let rest = rd_kafka_consume_batch_queue(queue, 0, slots.baseAddress! + 1, slots.count - 1)
        return rest < 0 ? 1 : 1 + rest
    }

    /// Pauses all assigned partitions while the application is `maxBufferedMessages` behind and
    /// resumes them once it has drained half. Returns whether fetching is paused.
    private func applyBackpressure() -> Bool {
        let buffered = buffer.messageCount()
        let paused = control.withLock { $0.backpressurePaused }
        if !paused && buffered >= settings.maxBufferedMessages {
            control.withLock { $0.backpressurePaused = true }
            setFetching(false, except: [])
            logger.debug("application behind; pausing fetch", metadata: ["buffered": "\(buffered)"])
            return true
        }
        if paused && buffered <= settings.maxBufferedMessages / 2 {
            let userPaused = control.withLock { control in
                control.backpressurePaused = false
                return control.userPaused
            }
            setFetching(true, except: userPaused)
            return false
        }
        return paused
    }

    private func setFetching(_ fetching: Bool, except excluded: Set<TopicPartition>) {
        var current: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        guard rd_kafka_assignment(raw.handle, &current) == RD_KAFKA_RESP_ERR_NO_ERROR, let current else { return }
        defer { rd_kafka_topic_partition_list_destroy(current) }
        let partitions = PartitionList.partitions(of: current).filter { !excluded.contains($0) }
        guard !partitions.isEmpty else { return }
        let list = PartitionList(partitions)
        _ = fetching ? rd_kafka_resume_partitions(raw.handle, list.handle) : rd_kafka_pause_partitions(raw.handle, list.handle)
    }

    /// Runs on the poll thread, inside `rd_kafka_consume_batch_queue` or `rd_kafka_consumer_close`.
    private static func rebalance(
        _ rk: OpaquePointer, _ err: rd_kafka_resp_err_t, _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>,
        buffer: EventBuffer, control: ConsumerControl, settings: ConsumerSettings, startOffsets: KafkaConsumer.StartOffsets?,
        logger: Logger
    ) {
        let partitions = PartitionList.partitions(of: list)
        let cooperative = String(cString: rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE"
        switch err {
        case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
            control.withLock { $0.everAssigned = true }
            for (partition, offset) in startOffsets?(partitions) ?? [:] {
                _ = rd_kafka_topic_partition_list_set_offset(list, partition.topic, partition.partition, offset)
            }
            let error =
                cooperative
                ? KafkaError.consuming(rd_kafka_incremental_assign(rk, list))
                : KafkaError.from(rd_kafka_assign(rk, list))
            if let error {
                logger.error("assigning partitions failed", metadata: ["error": "\(error)"])
                buffer.push(.error(error))
            }
            if control.withLock({ $0.backpressurePaused }) { rd_kafka_pause_partitions(rk, list) }
            logger.debug("partitions assigned", metadata: ["partitions": "\(partitions)"])
            buffer.push(.assigned(partitions))
        case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
            let lost = rd_kafka_assignment_lost(rk) != 0
            buffer.discardMessages(of: Set(partitions))
            let sequence = buffer.push(lost ? .lost(partitions) : .revoked(partitions))
            let closing = control.withLock { $0.closing }
            if !lost && !closing && !buffer.waitUntilHandled(sequence, timeout: settings.revocationTimeout) {
                logger.warning(
                    "the application did not move past a revocation in time; handing the partitions over",
                    metadata: ["partitions": "\(partitions)"])
            }
            control.withLock { $0.userPaused.subtract(partitions) }
            logger.debug("partitions revoked", metadata: ["partitions": "\(partitions)", "lost": "\(lost)"])
            if cooperative {
                if let error = KafkaError.consuming(rd_kafka_incremental_unassign(rk, list)) {
                    logger.error("unassigning partitions failed", metadata: ["error": "\(error)"])
                }
            } else {
                rd_kafka_assign(rk, nil)
            }
        default:
            let error = KafkaError.from(err) ?? KafkaError(code: .broker, detail: "rebalance failed")
            logger.error("rebalance failed", metadata: ["error": "\(error)"])
            buffer.push(.error(error))
            rd_kafka_assign(rk, nil)
        }
    }
}

private func rebalanceCallback(
    _ rk: OpaquePointer?, _ err: rd_kafka_resp_err_t,
    _ list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let rk, let list, let callbacks = ClientCallbacks.of(rk), let onRebalance = callbacks.onRebalance else { return }
    onRebalance(rk, err, list)
}
