import CRdKafka
import Foundation
import Logging
import Synchronization

/// A Kafka producer over librdkafka.
///
/// `send` puts a message into librdkafka's local queue and returns; the broker's answer arrives
/// later as a `DeliveryReport`. When the local queue is full (`queueMaxMessages` or
/// `queueMaxKilobytes`), `send` suspends until delivery reports have freed room: nothing is
/// dropped and no thread of the cooperative pool blocks.
///
/// Delivery reports come in two ways. The fast one: a handler for the whole producer
/// (`onDelivery` in `init`) and a 63-bit `tag` per message (`send(_:tag:)`), which travels in
/// librdkafka's message opaque without any allocation, as a checkpoint tracker wants. The
/// convenient one: a closure per message (`send(_:onDelivery:)`), or `deliver` to await it.
///
/// Threading: one thread of ours (`quix-producer`) serves librdkafka's main queue
/// (`rd_kafka_poll`) while nobody is sending; while sends keep coming, the sending task serves
/// it every 256 sends, and a `flush` serves it too. So delivery handlers run on any of those
/// threads: they must be quick, must not block and must not send.
public final class KafkaProducer: Sendable {
    private let core: ProducerCore

    /// - Parameter onDelivery: receives the report of every message sent with `send(_:tag:)`.
    public init(
        settings: ProducerSettings, logger: Logger = Logger(label: "quixd.kafka.producer"),
        onDelivery: (@Sendable (DeliveryReport) -> Void)? = nil
    ) throws(KafkaError) {
        try settings.client.validate()
        core = try ProducerCore(settings: settings, logger: logger, onDelivery: onDelivery)
        let core = core
        let thread = Thread { core.serveDeliveryReports() }
        thread.name = "quix-producer"
        thread.start()
    }

    deinit { core.stop() }

    /// Queues `message` for delivery; the producer's `onDelivery` handler gets its report with `tag`.
    /// Throws only for what cannot be retried here (unknown topic name, message too large, a
    /// fatal producer error, a closed producer); a full queue makes it wait instead.
    ///
    /// `nonisolated(nonsending)`: it runs on the caller's executor, so a caller on an actor
    /// does not hop to the global executor and back for every message.
    /// - Parameter tag: any value below 2^63, e.g. an index into the caller's in-flight table.
    nonisolated(nonsending)
    public func send(_ message: OutgoingMessage, tag: UInt64 = 0) async throws(KafkaError) {
        precondition(tag < 1 << 63, "delivery tags are 63 bits")
        try await enqueue(message, opaque: UnsafeMutableRawPointer(bitPattern: UInt(tag << 1 | 1)))
    }

    /// Queues `message` for delivery; `onDelivery`, if given, is called once with its report.
    nonisolated(nonsending)
    public func send(
        _ message: OutgoingMessage, onDelivery: (@Sendable (DeliveryReport) -> Void)?
    ) async throws(KafkaError) {
        let context = onDelivery.map { Unmanaged.passRetained(DeliveryContext(topic: message.topic, handler: $0)) }
        do {
            try await enqueue(message, opaque: context?.toOpaque())
        } catch {
            context?.release()  // librdkafka refused the message and never calls back for it
            throw error
        }
    }

    nonisolated(nonsending)
    private func enqueue(_ message: OutgoingMessage, opaque: UnsafeMutableRawPointer?) async throws(KafkaError) {
        core.noteSend()
        while true {
            let generation = core.generation
            switch try core.enqueue(message, opaque: opaque) {
            case .queued: return
            case .queueFull: await core.waitForRoom(after: generation)
            }
        }
    }

    /// Sends `message` and waits for the broker's answer.
    /// - Returns: the report of a stored message.
    /// - Throws: the delivery error when the broker did not store it.
    @discardableResult
    nonisolated(nonsending)
    public func deliver(_ message: OutgoingMessage) async throws(KafkaError) -> DeliveryReport {
        let delivered = DeliverySlot()
        try await send(message) { delivered.fill($0) }
        let report = await delivered.value
        if let error = report.error { throw error }
        return report
    }

    /// Waits until every queued message has a delivery report, or throws `_TIMED_OUT`.
    public func flush(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        let core = core
        try await runBlocking("flush") { () throws(KafkaError) in
            try KafkaError.check(rd_kafka_flush(core.raw.handle, timeout.timeoutMilliseconds), "flush")
        }
    }

    /// Messages queued or in flight that have no delivery report yet.
    public var outstandingMessages: Int { Int(rd_kafka_outq_len(core.raw.handle)) }

    /// How many times `send` has waited for room in a full local queue (a backpressure metric).
    public var queueFullWaits: Int { core.queueFullWaits }

    /// The fatal error this producer raised, if any; a fatal producer accepts no more messages.
    public var fatalError: KafkaError? { core.raw.fatalError() }

    /// Flushes, then stops serving delivery reports. Messages still queued after `timeout` fail
    /// with `_PURGE_QUEUE` in their reports.
    public func close(timeout: Duration = .seconds(30)) async {
        do {
            try await flush(timeout: timeout)
        } catch {
            core.logger.warning("flush before close failed; purging what is left", metadata: ["error": "\(error)"])
            rd_kafka_purge(core.raw.handle, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
            _ = try? await flush(timeout: .seconds(5))
        }
        core.stop()
    }

    // MARK: Transactions (require `ProducerSettings.transactionalID`)

    /// Registers the transactional id with the broker and fences older producers that used it.
    public func initTransactions(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await transactionCall("initTransactions") { rd_kafka_init_transactions($0, timeout.timeoutMilliseconds) }
    }

    public func beginTransaction() throws(KafkaError) {
        try KafkaError.check(rd_kafka_begin_transaction(core.raw.handle), "beginTransaction")
    }

    /// Adds consumed offsets to the current transaction, so they commit only if it commits.
    public func sendOffsetsToTransaction(
        _ offsets: [TopicPartitionOffset], group: ConsumerGroupMetadata, timeout: Duration = .seconds(30)
    ) async throws(KafkaError) {
        try await transactionCall("sendOffsetsToTransaction") { handle in
            let list = PartitionList(offsets)
            return rd_kafka_send_offsets_to_transaction(handle, list.handle, group.handle, timeout.timeoutMilliseconds)
        }
    }

    public func commitTransaction(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await transactionCall("commitTransaction") { rd_kafka_commit_transaction($0, timeout.timeoutMilliseconds) }
    }

    public func abortTransaction(timeout: Duration = .seconds(30)) async throws(KafkaError) {
        try await transactionCall("abortTransaction") { rd_kafka_abort_transaction($0, timeout.timeoutMilliseconds) }
    }

    private func transactionCall(
        _ name: String, _ call: @escaping @Sendable (OpaquePointer) -> OpaquePointer?
    ) async throws(KafkaError) {
        let raw = core.raw
        try await runBlocking(name) { () throws(KafkaError) in
            try KafkaError.check(call(raw.handle), name)
        }
    }
}

/// A one-shot value filled from a delivery handler and awaited by `deliver`.
private final class DeliverySlot: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<DeliveryReport, Never>)
        case filled(DeliveryReport)
    }

    private let state = Mutex(State.empty)

    func fill(_ report: DeliveryReport) {
        let waiter: CheckedContinuation<DeliveryReport, Never>? = state.withLock { state in
            if case .waiting(let continuation) = state {
                state = .filled(report)
                return continuation
            }
            state = .filled(report)
            return nil
        }
        waiter?.resume(returning: report)
    }

    var value: DeliveryReport {
        get async {
            await withCheckedContinuation { continuation in
                let ready: DeliveryReport? = state.withLock { state in
                    if case .filled(let report) = state { return report }
                    state = .waiting(continuation)
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        }
    }
}

/// The per-message context that crosses librdkafka as the message opaque (an even address;
/// odd opaque values are tags).
private final class DeliveryContext {
    let topic: String
    let handler: @Sendable (DeliveryReport) -> Void

    init(topic: String, handler: @escaping @Sendable (DeliveryReport) -> Void) {
        self.topic = topic
        self.handler = handler
    }
}

/// The producer's shared state: the librdkafka handle, topic handles and the waiters for room in
/// the local queue. Owned by the public `KafkaProducer` and by the delivery-report thread.
final class ProducerCore: Sendable {
    enum EnqueueResult { case queued, queueFull }

    /// Waiters for room in the local queue, woken when delivery reports are served.
    private struct State {
        var roomWaiters: [CheckedContinuation<Void, Never>] = []
        var queueFullWaits = 0
    }

    let raw: RawClient
    let logger: Logger
    private let state = Mutex(State())
    /// Bumped (under `state`'s lock) each time delivery reports are served: room may have been freed.
    /// Read without the lock on every send.
    private let servedGeneration = Atomic<UInt64>(0)
    private let stopped = Atomic(false)
    /// While sends keep coming, the sender serves delivery reports itself (every
    /// `inlineServeInterval` sends, without waiting, as kcat does after each produce) and the
    /// report thread only looks in every 2 ms: waking that thread for every batch of reports
    /// cost about a fifth of the producer's throughput on two cores.
    private static let inlineServeInterval = 256
    private static let activeSenderWindowNanos: Int64 = 5_000_000
    private let sendsSinceServe = Atomic(0)
    private let lastSendNanos = Atomic<Int64>(0)
    /// Topic handles by name; `rd_kafka_topic_t` is refcounted and thread-safe.
    private let topics = Mutex([String: OpaquePointer]())

    init(settings: ProducerSettings, logger: Logger, onDelivery: (@Sendable (DeliveryReport) -> Void)?) throws(KafkaError) {
        self.logger = logger
        let callbacks = ClientCallbacks(
            logger: logger,
            onError: { error in
                if error.isFatal {
                    logger.error("producer raised a fatal error", metadata: ["error": "\(error)"])
                } else {
                    logger.warning("producer error", metadata: ["error": "\(error)"])
                }
            },
            delivery: TaggedDelivery(handler: onDelivery))
        raw = try RawClient(RD_KAFKA_PRODUCER, properties: settings.properties(), callbacks: callbacks) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, deliveryReportCallback)
        }
    }

    deinit {
        for handle in topics.withLock({ Array($0.values) }) { rd_kafka_topic_destroy(handle) }
    }

    var generation: UInt64 { servedGeneration.load(ordering: .acquiring) }
    var queueFullWaits: Int { state.withLock { $0.queueFullWaits } }

    /// Hands one message to librdkafka. On any outcome but `.queued`, `opaque` is still the caller's.
    func enqueue(_ message: OutgoingMessage, opaque: UnsafeMutableRawPointer?) throws(KafkaError) -> EnqueueResult {
        if stopped.load(ordering: .relaxed) {
            throw KafkaError(code: .closed, detail: "the producer is closed")
        }
        let topic = try topicHandle(message.topic)
        let headers = Self.makeHeaders(message.headers)
        let error = message.key.withOptionalBytes { key in
            message.value.withOptionalBytes { value in
                quix_produce(
                    raw.handle, topic, message.partition ?? RD_KAFKA_PARTITION_UA,
                    key?.baseAddress, key?.count ?? 0, value?.baseAddress, value?.count ?? 0,
                    headers, message.timestampMilliseconds ?? 0, opaque)
            }
        }
        guard let error else { return .queued }
        // Refused: librdkafka took neither the opaque nor the headers.
        if let headers { rd_kafka_headers_destroy(headers) }
        if rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__QUEUE_FULL {
            rd_kafka_error_destroy(error)
            return .queueFull
        }
        var failure = KafkaError.consuming(error)!
        if failure.librdkafkaCode == RD_KAFKA_RESP_ERR__FATAL.rawValue, let fatal = raw.fatalError() {
            failure = fatal
        }
        failure.detail = "send to \(message.topic): \(failure.detail)"
        throw failure
    }

    /// Suspends until delivery reports have been served since `generation` was read.
    nonisolated(nonsending)
    func waitForRoom(after generation: UInt64) async {
        await withCheckedContinuation { continuation in
            let mustWait = state.withLock { state in
                state.queueFullWaits += 1
                guard servedGeneration.load(ordering: .relaxed) == generation, !stopped.load(ordering: .relaxed) else {
                    return false
                }
                state.roomWaiters.append(continuation)
                return true
            }
            if !mustWait { continuation.resume() }
        }
    }

    /// Called on every send; every `inlineServeInterval`-th one serves ready delivery reports.
    func noteSend() {
        lastSendNanos.store(Self.monotonicNanos(), ordering: .relaxed)
        guard sendsSinceServe.add(1, ordering: .relaxed).newValue >= Self.inlineServeInterval else { return }
        sendsSinceServe.store(0, ordering: .relaxed)
        if rd_kafka_poll(raw.handle, 0) > 0 { wakeRoomWaiters() }
    }

    /// The body of the delivery-report thread: serve librdkafka's main queue until stopped.
    func serveDeliveryReports() {
        while !stopped.load(ordering: .relaxed) {
            let senderActive = Self.monotonicNanos() - lastSendNanos.load(ordering: .relaxed) < Self.activeSenderWindowNanos
            if senderActive { usleep(2_000) }
            if rd_kafka_poll(raw.handle, senderActive ? 0 : 100) > 0 { wakeRoomWaiters() }
        }
        wakeRoomWaiters()  // waiters see `stopped` and give up
    }

    private func wakeRoomWaiters() {
        let waiters = state.withLock { state in
            servedGeneration.add(1, ordering: .releasing)
            defer { state.roomWaiters.removeAll() }
            return state.roomWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// A cheap monotonic clock (`CLOCK_MONOTONIC_COARSE`, a few ms resolution), read per send.
    private static func monotonicNanos() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    func stop() {
        state.withLock { _ in stopped.store(true, ordering: .relaxed) }
    }

    private func topicHandle(_ name: String) throws(KafkaError) -> OpaquePointer {
        if let handle = topics.withLock({ $0[name] }) { return handle }
        guard !name.isEmpty else { throw KafkaError(code: .invalidArgument, detail: "topic name is empty") }
        return try topics.withLock { (topics) throws(KafkaError) -> OpaquePointer in
            if let handle = topics[name] { return handle }
            guard let handle = rd_kafka_topic_new(raw.handle, name, nil) else {
                throw KafkaError.from(rd_kafka_last_error(), detail: "topic \"\(name)\" refused")
                    ?? KafkaError(code: .invalidArgument, detail: "topic \"\(name)\" refused")
            }
            topics[name] = handle
            return handle
        }
    }

    private static func makeHeaders(_ headers: [KafkaHeader]) -> OpaquePointer? {
        guard !headers.isEmpty else { return nil }
        let list = rd_kafka_headers_new(headers.count)!
        for header in headers {
            header.value.withOptionalBytes { value in
                _ = rd_kafka_header_add(list, header.name, -1, value?.baseAddress, value.map { $0.count } ?? 0)
            }
        }
        return list
    }
}

/// The producer-wide handler of tagged messages, and the topic names it reports, by handle.
final class TaggedDelivery: Sendable {
    let handler: (@Sendable (DeliveryReport) -> Void)?
    private let topicNames = Mutex([UInt: String]())  // by topic handle address

    init(handler: (@Sendable (DeliveryReport) -> Void)?) { self.handler = handler }

    func topicName(_ rkt: OpaquePointer?) -> String {
        guard let rkt else { return "" }
        let address = UInt(bitPattern: rkt)
        if let name = topicNames.withLock({ $0[address] }) { return name }
        let name = String(cString: rd_kafka_topic_name(rkt))
        topicNames.withLock { $0[address] = name }
        return name
    }
}

private func deliveryReportCallback(
    _ rk: OpaquePointer?, _ message: UnsafePointer<rd_kafka_message_t>?, _ opaque: UnsafeMutableRawPointer?
) {
    guard let message, let opaque = message.pointee._private else { return }
    let record = message.pointee
    let bits = UInt(bitPattern: opaque)
    if bits & 1 == 1 {
        guard let delivery = ClientCallbacks.of(rk)?.delivery, let handler = delivery.handler else { return }
        handler(
            DeliveryReport(
                topic: delivery.topicName(record.rkt), partition: record.partition, offset: record.offset,
                error: KafkaError.from(record.err), tag: UInt64(bits >> 1)))
    } else {
        let context = Unmanaged<DeliveryContext>.fromOpaque(opaque).takeRetainedValue()
        context.handler(
            DeliveryReport(
                topic: context.topic, partition: record.partition, offset: record.offset,
                error: KafkaError.from(record.err)))
    }
}

extension Optional where Wrapped == [UInt8] {
    /// Lends the bytes, or `nil`, for the duration of `body`. An empty array still lends a
    /// non-null address: librdkafka reads a null pointer as "no value" (a tombstone), not "empty".
    func withOptionalBytes<R>(_ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        switch self {
        case .none:
            return body(nil)
        case .some(let bytes) where bytes.isEmpty:
            var placeholder: UInt8 = 0
            return withUnsafePointer(to: &placeholder) { body(UnsafeBufferPointer(start: $0, count: 0)) }
        case .some(let bytes):
            return bytes.withUnsafeBufferPointer { body($0) }
        }
    }
}
