import CRdKafka
import Logging

/// A topic to create.
public struct NewTopic: Sendable, Hashable {
    public var name: String
    public var partitions: Int32
    /// `-1` takes the broker's default.
    public var replicationFactor: Int32
    /// Topic configs, e.g. `["cleanup.policy": "compact"]`.
    public var configs: [String: String]

    public init(name: String, partitions: Int32, replicationFactor: Int32 = -1, configs: [String: String] = [:]) {
        self.name = name
        self.partitions = partitions
        self.replicationFactor = replicationFactor
        self.configs = configs
    }
}

/// What the cluster knows of a topic.
public struct TopicMetadata: Sendable, Hashable {
    public struct Partition: Sendable, Hashable {
        public var id: Int32
        /// The broker id of the leader; `-1` when there is none.
        public var leader: Int32
        public var replicas: [Int32]
        public var inSyncReplicas: [Int32]
    }

    public var name: String
    public var partitions: [Partition]
}

/// Cluster administration: topic creation and metadata.
public final class KafkaAdmin: Sendable {
    private let raw: RawClient
    private let settings: AdminSettings

    public init(settings: AdminSettings, logger: Logger = Logger(label: "quixd.kafka.admin")) throws(KafkaError) {
        try settings.client.validate()
        self.settings = settings
        let callbacks = ClientCallbacks(logger: logger) { error in
            logger.warning("admin client error", metadata: ["error": "\(error)"])
        }
        raw = try RawClient(RD_KAFKA_PRODUCER, properties: settings.properties(), callbacks: callbacks)
    }

    /// Creates `topics`. With `ignoreExisting`, a topic that already exists is not an error.
    /// (The librdkafka mock cluster has no controller and refuses this; see `MockCluster.createTopic`.)
    public func createTopics(_ topics: [NewTopic], ignoreExisting: Bool = true) async throws(KafkaError) {
        for topic in topics where topic.name.isEmpty || topic.partitions < 1 {
            throw KafkaError(
                code: .invalidArgument, detail: "topic \"\(topic.name)\": expected a name and at least 1 partition")
        }
        let raw = raw
        let timeout = settings.requestTimeout
        try await runBlocking("createTopics") { () throws(KafkaError) in
            var handles: [OpaquePointer?] = []
            defer { for handle in handles { rd_kafka_NewTopic_destroy(handle) } }
            var errorText = [CChar](repeating: 0, count: 512)
            for topic in topics {
                guard let handle = rd_kafka_NewTopic_new(
                    topic.name, topic.partitions, topic.replicationFactor, &errorText, errorText.count)
                else { throw KafkaError(code: .invalidArgument, detail: "topic \"\(topic.name)\": \(String(cText: errorText))") }
                handles.append(handle)
                for (key, value) in topic.configs.sorted(by: { $0.key < $1.key }) {
                    try KafkaError.check(rd_kafka_NewTopic_set_config(handle, key, value), "topic \"\(topic.name)\" config \(key)")
                }
            }
            let options = rd_kafka_AdminOptions_new(raw.handle, RD_KAFKA_ADMIN_OP_CREATETOPICS)
            defer { rd_kafka_AdminOptions_destroy(options) }
            rd_kafka_AdminOptions_set_operation_timeout(options, timeout.timeoutMilliseconds, &errorText, errorText.count)
            rd_kafka_AdminOptions_set_request_timeout(options, timeout.timeoutMilliseconds, &errorText, errorText.count)
            let queue = rd_kafka_queue_new(raw.handle)
            defer { rd_kafka_queue_destroy(queue) }
            handles.withUnsafeMutableBufferPointer { rd_kafka_CreateTopics(raw.handle, $0.baseAddress, $0.count, options, queue) }
            // The request carries its own timeout; wait a little longer for its answer.
            guard let event = rd_kafka_queue_poll(queue, timeout.timeoutMilliseconds + 5_000) else {
                throw KafkaError.from(RD_KAFKA_RESP_ERR__TIMED_OUT, detail: "createTopics got no answer")!
            }
            defer { rd_kafka_event_destroy(event) }
            try KafkaError.check(rd_kafka_event_error(event), "createTopics")
            var count = 0
            guard let result = rd_kafka_event_CreateTopics_result(event),
                let results = rd_kafka_CreateTopics_result_topics(result, &count)
            else { return }
            for index in 0..<count {
                let err = rd_kafka_topic_result_error(results[index])
                if err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS && ignoreExisting { continue }
                let name = String(cString: rd_kafka_topic_result_name(results[index]))
                let text = rd_kafka_topic_result_error_string(results[index]).map { String(cString: $0) }
                if let error = KafkaError.from(err, detail: "create topic \"\(name)\": \(text ?? "")") { throw error }
            }
        }
    }

    /// The id of the cluster's controller, the broker that creates topics; nil when the cluster
    /// names none of its brokers (librdkafka's mock cluster names broker 0, which does not exist),
    /// where a CreateTopics request could only wait out its timeout.
    public func controller() async throws(KafkaError) -> Int32? {
        let raw = raw
        let timeout = settings.requestTimeout
        return try await runBlocking("metadata") { () throws(KafkaError) -> Int32? in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            // Brokers only (no topic); the answer also updates the cached controller id.
            try KafkaError.check(rd_kafka_metadata(raw.handle, 0, nil, &metadata, timeout.timeoutMilliseconds), "metadata")
            defer { rd_kafka_metadata_destroy(metadata) }
            let brokers = UnsafeBufferPointer(start: metadata!.pointee.brokers, count: Int(metadata!.pointee.broker_cnt))
            let controller = rd_kafka_controllerid(raw.handle, 0)
            return brokers.contains { $0.id == controller } ? controller : nil
        }
    }

    /// Metadata of every topic, or of `topic` alone (empty when it does not exist; asking never creates it).
    public func metadata(topic: String? = nil) async throws(KafkaError) -> [TopicMetadata] {
        let raw = raw
        let timeout = settings.requestTimeout
        return try await runBlocking("metadata") { () throws(KafkaError) -> [TopicMetadata] in
            var metadata: UnsafePointer<rd_kafka_metadata>?
            try KafkaError.check(rd_kafka_metadata(raw.handle, 1, nil, &metadata, timeout.timeoutMilliseconds), "metadata")
            defer { rd_kafka_metadata_destroy(metadata) }
            let topics = UnsafeBufferPointer(start: metadata!.pointee.topics, count: Int(metadata!.pointee.topic_cnt))
            return topics.compactMap { entry -> TopicMetadata? in
                let name = String(cString: entry.topic)
                guard topic == nil || topic == name, entry.err == RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
                let partitions = UnsafeBufferPointer(start: entry.partitions, count: Int(entry.partition_cnt)).map {
                    TopicMetadata.Partition(
                        id: $0.id, leader: $0.leader,
                        replicas: Array(UnsafeBufferPointer(start: $0.replicas, count: Int($0.replica_cnt))),
                        inSyncReplicas: Array(UnsafeBufferPointer(start: $0.isrs, count: Int($0.isr_cnt))))
                }
                return TopicMetadata(name: name, partitions: partitions.sorted { $0.id < $1.id })
            }.sorted { $0.name < $1.name }
        }
    }
}
