import Logging
import QuixKafka
import Synchronization

/// Sends Kafka records (key, value, headers) for the library's stream producers, changelogs,
/// pipeline outputs and dead letters. A record sent for an input package (`origin`) is tracked
/// by that partition's `DeliveryTracker` through its delivery tag, with no wait per message:
/// the checkpointer waits only for the acknowledgements it needs. Failures of records sent
/// without an origin are kept, and the next `flush()` throws them.
public final class RecordProducer: Sendable {
    let producer: KafkaProducer
    private let untracked = Failures()
    private let sentHandler = Mutex<SentHandler?>(nil)

    /// A closure in a class: a closure stored as a `Mutex`'s generic value is wrapped in a new
    /// reabstraction thunk at every `withLock`, a chain that grew with every record sent.
    private final class SentHandler: Sendable {
        let call: @Sendable (_ bytes: Int) -> Void
        init(_ call: @escaping @Sendable (_ bytes: Int) -> Void) { self.call = call }
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
        producer = try KafkaProducer(settings: settings, logger: logger) { report in
            guard !DeliveryTags.route(report), let error = report.error else { return }
            untracked.list.withLock { $0.append("\(report.topic)[\(report.partition)]: \(error)") }
        }
    }

    /// Calls `handler` with the value's size of each record queued (for metrics of what is written).
    public func onSent(_ handler: @escaping @Sendable (_ bytes: Int) -> Void) {
        sentHandler.withLock { $0 = SentHandler(handler) }
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
                throw error
            }
        } else {
            try await producer.send(message, tag: 0)
        }
        sentHandler.withLock { $0 }?.call(value?.count ?? 0)
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

    /// Flushes (what is left after `timeout` is purged) and stops.
    public func close(timeout: Duration = .seconds(30)) async {
        await producer.close(timeout: timeout)
    }
}
