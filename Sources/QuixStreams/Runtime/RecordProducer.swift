import Logging
import QuixKafka
import Synchronization

/// Sends Kafka records (key, value, headers) for the library's stream producers, changelogs,
/// pipeline outputs and dead letters. A record sent for an input package (`origin`) is tracked
/// by that partition's `DeliveryTracker` through its delivery tag, with no wait per message:
/// the checkpointer waits only for the acknowledgements it needs. Failures of records sent
/// without an origin are kept, and the next `flush()` throws them.
///
/// A transactional client (`KafkaStreamingClient.transactional(id:)`) has one shared record
/// producer: every output, dead letter and changelog record of its consumer goes into that
/// consumer's current transaction, and only the consumer closes it.
public final class RecordProducer: Sendable {
    let producer: KafkaProducer
    /// Shared by a transactional client's outputs: `close()` leaves it open for its consumer.
    let isTransactional: Bool
    private let claimed = Atomic<Bool>(false)
    /// Records queued so far (an exactly-once consumer commits a transaction that holds any).
    private let queued = Atomic<Int>(0)
    /// Why the open transaction can no longer commit, once a send said so.
    private let broken = Mutex<KafkaError?>(nil)
    private let untracked = Failures()
    private let sentHandlers = Mutex<[SentHandler]>([])

    /// A closure in a class: a closure stored as a `Mutex`'s generic value is wrapped in a new
    /// reabstraction thunk at every `withLock`, a chain that grew with every record sent.
    private final class SentHandler: Sendable {
        let topic: String?
        let call: @Sendable (_ bytes: Int) -> Void
        init(topic: String?, _ call: @escaping @Sendable (_ bytes: Int) -> Void) {
            self.topic = topic
            self.call = call
        }
    }

    /// Failures of records sent without an origin, recorded by the delivery handler.
    private final class Failures: Sendable {
        let list = Mutex<[String]>([])
    }

    public convenience init(client: KafkaStreamingClient) throws {
        try self.init(settings: ProducerSettings(client: client.settings), logger: client.logger)
    }

    init(settings: ProducerSettings, logger: Logger) throws {
        let untracked = untracked
        isTransactional = settings.transactionalID != nil
        producer = try KafkaProducer(settings: settings, logger: logger) { report in
            guard !DeliveryTags.route(report), let error = report.error else { return }
            untracked.list.withLock { $0.append("\(report.topic)[\(report.partition)]: \(error)") }
        }
    }

    /// Transactional: the error that put the open transaction beyond commit (a record refused
    /// earlier makes every later send fail with librdkafka's `_STATE`), if a send met one.
    var transactionError: KafkaError? { broken.withLock { $0 } }

    private func noteBroken(_ error: KafkaError) {
        guard isTransactional, error.isFatal || error.transactionRequiresAbort || error.librdkafkaName == "_STATE" else { return }
        broken.withLock { $0 = $0 ?? error }
    }

    /// Records queued through `send` so far (counted for transactional producers only).
    var queuedCount: Int { queued.load(ordering: .relaxed) }

    /// Takes a transactional producer for a consumer; false when one already has it.
    func claim() -> Bool { !claimed.exchange(true, ordering: .relaxed) }

    /// Calls `handler` with the value's size of each record queued (for metrics of what is
    /// written): of every topic, or only of `topic` (a shared producer writes several).
    public func onSent(topic: String? = nil, _ handler: @escaping @Sendable (_ bytes: Int) -> Void) {
        sentHandlers.withLock { handlers in
            handlers.removeAll { $0.topic == topic }
            handlers.append(SentHandler(topic: topic, handler))
        }
    }

    /// Queues a record (waiting only while librdkafka's queue is full). With an origin, its
    /// partition's tracker follows it until the broker answers.
    nonisolated(nonsending)
    public func send(
        topic: String, key: [UInt8]?, value: [UInt8]?, headers: [KafkaHeader] = [], partition: Int32? = nil,
        timestampMilliseconds: Int64? = nil, origin: DeliveryOrigin?
    ) async throws {
        let message = OutgoingMessage(
            topic: topic, key: key, value: value, headers: headers, partition: partition, timestampMilliseconds: timestampMilliseconds)
        if let origin {
            let tag = origin.tracker.sent(origin: origin.offset)
            do {
                try await producer.send(message, tag: tag)
            } catch {
                origin.tracker.unsent(origin: origin.offset)
                noteBroken(error)
                throw error
            }
        } else {
            do {
                try await producer.send(message, tag: 0)
            } catch {
                noteBroken(error)
                throw error
            }
        }
        if isTransactional { queued.add(1, ordering: .relaxed) }
        let handlers = sentHandlers.withLock { $0 }
        for handler in handlers where handler.topic == nil || handler.topic == topic { handler.call(value?.count ?? 0) }
    }

    /// Waits until every queued record has its report; throws if a record sent without an origin
    /// failed since the last flush (those with one fail their partition's checkpoint instead).
    public func flush(timeout: Duration = .seconds(30)) async throws {
        try await producer.flush(timeout: timeout)
        let failed = untracked.list.withLock { failed in
            defer { failed.removeAll() }
            return failed
        }
        if let first = failed.first {
            throw StreamError(.deliveryFailed, "\(failed.count) messages were not delivered; the first: \(first)")
        }
    }

    /// Flushes (what is left after `timeout` is purged) and stops; a transactional producer
    /// stays open for its consumer, which ends its transactions and closes it.
    public func close(timeout: Duration = .seconds(30)) async {
        guard !isTransactional else { return }
        await producer.close(timeout: timeout)
    }
}
