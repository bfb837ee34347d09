import Foundation
import Logging
import QuixKafka
import QuixProtocol
import Synchronization

/// The entry point, as in Quix Streams 0.5: a connection to Kafka from which topic producers
/// (and consumers) are made.
public final class KafkaStreamingClient: Sendable {
    public let settings: KafkaClientSettings
    let logger: Logger
    /// Set by `transactional(id:)`: the one producer of every output made from this client.
    let transactionalProducer: RecordProducer?

    /// - Parameters:
    ///   - brokers: `host:port[,host:port...]`.
    ///   - configure: security, client id, or any librdkafka property.
    public init(brokers: String, logger: Logger = Logger(label: "quixd.streams"), configure: (inout KafkaClientSettings) -> Void = { _ in }) {
        var settings = KafkaClientSettings(bootstrapServers: brokers.split(separator: ",").map(String.init))
        configure(&settings)
        self.settings = settings
        self.logger = logger
        transactionalProducer = nil
    }

    private init(settings: KafkaClientSettings, logger: Logger, transactionalProducer: RecordProducer?) {
        self.settings = settings
        self.logger = logger
        self.transactionalProducer = transactionalProducer
    }

    /// The same connection settings, logging to `logger` (its consumers, producers and state log
    /// there, with that logger's metadata, such as a pipeline's name).
    public func logging(to logger: Logger) -> KafkaStreamingClient {
        KafkaStreamingClient(settings: settings, logger: logger, transactionalProducer: transactionalProducer)
    }

    /// Exactly-once: a client whose topic producers (and the consumer made from it, with its
    /// changelog and dead letters) all write through one transactional producer with
    /// `transactional.id` `id`. The consumer made from it commits each checkpoint as one Kafka
    /// transaction: the outputs, the changelog records and the consumed offsets together
    /// (docs/exactly-once.md). Give each consumer its own client, and keep `id` stable across
    /// restarts of the same member (the pipeline and the pod name, say): a restart fences the
    /// instance before it and aborts the transaction it left open.
    public func transactional(id: String, timeout: Duration = .seconds(60)) throws -> KafkaStreamingClient {
        guard !id.isEmpty else { throw StreamError(.invalidStreamID, "the transactional id is empty") }
        var producerSettings = ProducerSettings(client: settings)
        producerSettings.transactionalID = id
        producerSettings.transactionTimeout = timeout
        return KafkaStreamingClient(
            settings: settings, logger: logger, transactionalProducer: try RecordProducer(settings: producerSettings, logger: logger))
    }

    /// A producer of Kafka records: the transactional client's shared one, or a new one.
    public func recordProducer() throws -> RecordProducer {
        try transactionalProducer ?? RecordProducer(client: self)
    }

    /// A producer of streams on `topic`. `codec` chooses how timeseries data is written (the
    /// reference's global codec setting, here per topic producer).
    public func topicProducer(_ topic: String, codec: TimeseriesCodec = .json) throws -> TopicProducer {
        try TopicProducer(client: self, topic: topic, codec: codec)
    }

    /// Creates `topic` if it does not exist, with `partitions` partitions and topic `configs`
    /// (such as `["cleanup.policy": "compact"]`); returns whether it created it. Call it before
    /// making a producer or consumer of a topic that may be missing. Where CreateTopics is not
    /// available (the mock cluster has no controller) it throws the broker's error.
    @discardableResult
    public func createTopicIfMissing(
        _ topic: String, partitions: Int32, replicationFactor: Int32 = -1, configs: [String: String] = [:],
        timeout: Duration = .seconds(30)
    ) async throws -> Bool {
        try await Self.createTopicIfMissing(
            NewTopic(name: topic, partitions: partitions, replicationFactor: replicationFactor, configs: configs), settings: settings,
            timeout: timeout, logger: logger)
    }

    @discardableResult
    static func createTopicIfMissing(_ topic: NewTopic, settings: KafkaClientSettings, timeout: Duration, logger: Logger) async throws -> Bool {
        var adminSettings = AdminSettings(client: settings)
        adminSettings.requestTimeout = timeout
        let admin = try KafkaAdmin(settings: adminSettings, logger: logger)
        if let existing = try? await admin.metadata(topic: topic.name).first, !existing.partitions.isEmpty { return false }
        try await admin.createTopics([topic])
        logger.info("topic created", metadata: ["topic": "\(topic.name)", "partitions": "\(topic.partitions)"])
        return true
    }
}

/// Writes the streams of one topic.
public final class TopicProducer: Sendable {
    public let topic: String
    let sender: Sender
    private let clock: BufferClock
    private let streams = Mutex([String: StreamProducer]())

    init(client: KafkaStreamingClient, topic: String, codec: TimeseriesCodec) throws {
        guard !topic.isEmpty else { throw StreamError(.invalidStreamID, "the topic name is empty") }
        self.topic = topic
        sender = try Sender(client: client, topic: topic, codec: codec)
        clock = BufferClock(logger: client.logger)
    }

    deinit { clock.stop() }

    /// A new stream with `id`, or a random GUID (as the reference makes them).
    public func createStream(_ id: String? = nil) throws(StreamError) -> StreamProducer {
        let id = id ?? UUID.random.lowercasedString
        let stream = try StreamProducer(id: id, sender: sender, clock: clock)
        streams.withLock { $0[id] = stream }
        return stream
    }

    /// The open stream with `id`, created when there is none.
    public func getOrCreateStream(_ id: String) throws(StreamError) -> StreamProducer {
        if let stream = streams.withLock({ $0[id] }), !stream.isClosed { return stream }
        return try createStream(id)
    }

    /// Calls `handler` with the size of each Kafka message queued for this topic (a split
    /// package's parts one by one), for metrics of what is written.
    public func onSent(_ handler: @escaping @Sendable (_ bytes: Int) -> Void) {
        sender.producer.onSent(topic: topic, handler)
    }

    /// Sends everything pending on every stream and waits for the broker's acknowledgements.
    public func flush() async throws {
        for stream in streams.withLock({ Array($0.values) }) where !stream.isClosed { try await stream.flush() }
        try await sender.flush()
    }

    /// Flushes every open stream (without a StreamEnd, as the reference's dispose does) and
    /// closes the Kafka producer.
    public func close() async throws {
        clock.stop()
        try await flush()
        await sender.producer.close()
    }
}

/// How models reach Kafka: encoded with the topic's codec (time-series frames straight from
/// their columns), split when too large (with the producer's message counter, as the reference
/// numbers every package), keyed by stream id, tracked by the origin they carry.
final class Sender: Sendable {
    let topic: String
    let codec: TimeseriesCodec
    let producer: RecordProducer
    private let nextMessageID = Atomic<UInt32>(1)

    init(client: KafkaStreamingClient, topic: String, codec: TimeseriesCodec) throws {
        self.topic = topic
        self.codec = codec
        producer = try client.recordProducer()
    }

    /// Sends `model` keyed by `key`, the stream id's bytes.
    func send(_ model: QuixModel, key: [UInt8], origin: DeliveryOrigin?) async throws {
        try await send(envelope: QuixCodec.encode(model, timeseriesCodec: codec), key: key, origin: origin)
    }

    /// Sends the rows of `frame` keyed by `key`, the stream id's bytes.
    func send(_ frame: TimeseriesFrame, key: [UInt8], origin: DeliveryOrigin?) async throws {
        try await send(envelope: QuixCodec.encode(frame, timeseriesCodec: codec), key: key, origin: origin)
    }

    private func send(envelope: [UInt8], key: [UInt8], origin: DeliveryOrigin?) async throws {
        let id = nextMessageID.add(1, ordering: .relaxed).oldValue
        guard envelope.count > MessageSplit.maximumMessageSize else {
            try await producer.send(topic: topic, key: key, value: envelope, origin: origin)
            return
        }
        for part in try MessageSplit.split(envelope, messageID: id) {
            try await producer.send(topic: topic, key: key, value: part, origin: origin)
        }
    }

    /// Waits for every message's report; throws if a message sent without an origin failed
    /// since the last flush.
    func flush() async throws {
        try await producer.flush()
    }
}

extension UUID {
    static var random: UUID { UUID() }
    var lowercasedString: String { uuidString.lowercased() }
}
