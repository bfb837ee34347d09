import CRdKafka
import Logging

/// A Kafka protocol request type, for fault injection in `MockCluster`.
public struct KafkaAPI: Hashable, Sendable {
    public var rawValue: Int16
    public init(rawValue: Int16) { self.rawValue = rawValue }

    public static let produce = KafkaAPI(rawValue: 0)
    public static let fetch = KafkaAPI(rawValue: 1)
    public static let listOffsets = KafkaAPI(rawValue: 2)
    public static let metadata = KafkaAPI(rawValue: 3)
    public static let offsetCommit = KafkaAPI(rawValue: 8)
    public static let offsetFetch = KafkaAPI(rawValue: 9)
    public static let findCoordinator = KafkaAPI(rawValue: 10)
    public static let joinGroup = KafkaAPI(rawValue: 11)
    public static let heartbeat = KafkaAPI(rawValue: 12)
    public static let syncGroup = KafkaAPI(rawValue: 14)
    public static let initProducerID = KafkaAPI(rawValue: 22)
    public static let endTransaction = KafkaAPI(rawValue: 26)
}

/// A Kafka error code as the protocol carries it (librdkafka's `rd_kafka_resp_err_t`).
public struct KafkaErrorCode: Hashable, Sendable {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    init(_ err: rd_kafka_resp_err_t) { rawValue = err.rawValue }

    public static let requestTimedOut = KafkaErrorCode(RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT)
    public static let notLeaderForPartition = KafkaErrorCode(RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION)
    public static let notEnoughReplicas = KafkaErrorCode(RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS)
    public static let messageTooLarge = KafkaErrorCode(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
    public static let topicAuthorizationFailed = KafkaErrorCode(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
    public static let outOfOrderSequenceNumber = KafkaErrorCode(RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER)
    public static let unknownTopicOrPartition = KafkaErrorCode(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
    public static let topicAlreadyExists = KafkaErrorCode(RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
    /// librdkafka's own: an assigned partition the cluster does not have.
    public static let unknownPartition = KafkaErrorCode(RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
    /// librdkafka's own: an assigned topic the cluster does not have.
    public static let unknownTopic = KafkaErrorCode(RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)

    /// librdkafka's name for the code, e.g. `NOT_ENOUGH_REPLICAS`.
    public var name: String { String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: rawValue))) }
}

/// librdkafka's in-process mock Kafka cluster: real brokers on loopback TCP ports, with consumer
/// groups, transactions and fault injection. A test and development tool with limits of its own:
/// each partition keeps only about 5 MB and 100,000 messages (older ones are dropped silently),
/// and admin CreateTopics does not work (no controller), so topics are made with `createTopic`,
/// asked for through topic requests (see `topicRequestsTopic`) where the owner of the cluster
/// serves them, or auto-created with `defaultPartitions` partitions on first use.
public final class MockCluster: @unchecked Sendable {  // the mock cluster's calls are thread-safe
    /// Partitions of a topic the mock creates on first use.
    public static let defaultPartitions = 4

    private let client: RawClient
    private let cluster: OpaquePointer
    public let brokerCount: Int

    /// Starts `brokers` brokers (ids 1...brokers) listening on free loopback ports.
    public init(brokers: Int = 3, logger: Logger = Logger(label: "quixd.kafka.mock")) throws(KafkaError) {
        guard (1...32).contains(brokers) else {
            throw KafkaError(code: .invalidArgument, detail: "brokers: expected 1...32, found \(brokers)")
        }
        let callbacks = ClientCallbacks(logger: logger) { error in
            logger.debug("mock cluster client error", metadata: ["error": "\(error)"])
        }
        client = try RawClient(RD_KAFKA_PRODUCER, properties: ["client.id": "quixd-mock", "log_level": "3"], callbacks: callbacks)
        guard let cluster = rd_kafka_mock_cluster_new(client.handle, Int32(brokers)) else {
            throw KafkaError(code: .broker, detail: "the mock cluster did not start")
        }
        self.cluster = cluster
        brokerCount = brokers
    }

    deinit { rd_kafka_mock_cluster_destroy(cluster) }

    /// `host:port,host:port,...` for `bootstrap.servers`.
    public var bootstrapServers: String { String(cString: rd_kafka_mock_cluster_bootstraps(cluster)) }

    public func createTopic(_ name: String, partitions: Int = defaultPartitions, replicationFactor: Int = 1) throws(KafkaError) {
        guard !name.isEmpty, partitions > 0, (1...brokerCount).contains(replicationFactor) else {
            throw KafkaError(
                code: .invalidArgument,
                detail: "topic \"\(name)\": expected a name, partitions > 0 and replication 1...\(brokerCount)")
        }
        try KafkaError.check(
            rd_kafka_mock_topic_create(cluster, name, Int32(partitions), Int32(replicationFactor)), "create topic \(name)")
    }

    /// Makes a broker unreachable: its connections close and it accepts no new ones.
    public func setBrokerDown(_ broker: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_broker_set_down(cluster, broker), "broker \(broker) down")
    }

    public func setBrokerUp(_ broker: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_broker_set_up(cluster, broker), "broker \(broker) up")
    }

    /// Delays every response of `broker` by `delay`.
    public func setLatency(broker: Int32, _ delay: Duration) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_broker_set_rtt(cluster, broker, delay.timeoutMilliseconds), "broker \(broker) latency")
    }

    /// Moves the leadership of a partition to `broker`.
    public func setLeader(topic: String, partition: Int32, broker: Int32) throws(KafkaError) {
        try KafkaError.check(rd_kafka_mock_partition_set_leader(cluster, topic, partition, broker), "leader of \(topic)[\(partition)]")
    }

    /// The next `errors.count` requests of type `api`, to any broker, fail with these codes in order.
    public func pushRequestErrors(_ api: KafkaAPI, _ errors: [KafkaErrorCode]) {
        let codes = errors.map { rd_kafka_resp_err_t(rawValue: $0.rawValue) }
        codes.withUnsafeBufferPointer {
            rd_kafka_mock_push_request_errors_array(cluster, api.rawValue, $0.count, $0.baseAddress)
        }
    }

    public func clearRequestErrors(_ api: KafkaAPI) {
        rd_kafka_mock_clear_request_errors(cluster, api.rawValue)
    }

    /// Every request about `topic` fails with `error` (pass `nil` to clear).
    public func setTopicError(_ topic: String, _ error: KafkaErrorCode?) {
        rd_kafka_mock_topic_set_error(cluster, topic, rd_kafka_resp_err_t(rawValue: error?.rawValue ?? 0))
    }
}

// MARK: Topic requests

/// How a client asks a development broker (`quixd broker`, or `quixd run` without brokers) to
/// create a topic, since the mock cluster cannot take CreateTopics: it produces a record to
/// `topicRequestsTopic` whose key is the topic's name and whose value its partition count in
/// decimal, and waits until the topic appears in the metadata. The process that owns the
/// cluster reads that topic and creates each topic asked for (one that exists stays as it is).
/// The topic exists only on a development broker, so its presence is what tells a client that
/// it may ask; against a real cluster nothing is ever produced to it.
extension MockCluster {
    /// The topic of topic requests: one partition, created by `acceptTopicRequests()`.
    public static let topicRequestsTopic = "__quixd_broker"

    /// A topic request, read from `topicRequestsTopic`.
    public struct TopicRequest: Sendable, Hashable {
        public var topic: String
        public var partitions: Int

        public init(topic: String, partitions: Int) {
            self.topic = topic
            self.partitions = partitions
        }

        /// The request a record holds; nil when it holds none.
        public init?(_ message: KafkaMessage) {
            guard let key = message.key, !key.isEmpty, let value = message.value,
                let partitions = Int(String(decoding: value, as: UTF8.self)), (1...100_000).contains(partitions)
            else { return nil }
            self.init(topic: String(decoding: key, as: UTF8.self), partitions: partitions)
        }

        /// The record to produce for this request.
        public var message: OutgoingMessage {
            OutgoingMessage(topic: MockCluster.topicRequestsTopic, key: Array(topic.utf8), value: Array(String(partitions).utf8))
        }
    }

    /// Creates `topicRequestsTopic`, so that clients ask this cluster for the topics they need;
    /// the caller then serves what arrives there with `create(_:)`.
    public func acceptTopicRequests() throws(KafkaError) {
        try createTopic(Self.topicRequestsTopic, partitions: 1)
    }

    /// Creates the topic `request` asks for; returns false when it existed (it stays as it is).
    @discardableResult
    public func create(_ request: TopicRequest) throws(KafkaError) -> Bool {
        do {
            try createTopic(request.topic, partitions: request.partitions, replicationFactor: min(3, brokerCount))
            return true
        } catch where error.librdkafkaCode == KafkaErrorCode.topicAlreadyExists.rawValue {
            return false
        }
    }
}
