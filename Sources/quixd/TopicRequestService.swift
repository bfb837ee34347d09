import Logging
import QuixKafka
import ServiceLifecycle

/// Serves a development broker's topic requests (`MockCluster.topicRequestsTopic`): reads them
/// from the beginning (every one was meant for this cluster) and creates each topic asked for,
/// until the graceful shutdown. This is how a pipeline's changelog topic is created on the
/// librdkafka mock cluster, which refuses CreateTopics.
struct TopicRequestService: Service {
    let cluster: MockCluster
    let logger: Logger

    /// Makes `cluster` accept topic requests; `run()` serves them.
    init(cluster: MockCluster, logger: Logger) throws {
        try cluster.acceptTopicRequests()
        self.cluster = cluster
        self.logger = logger
    }

    func run() async throws {
        let consumer = try KafkaConsumer(
            settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil), logger: logger)
        try consumer.assign([TopicPartitionOffset(MockCluster.topicRequestsTopic, 0, offset: KafkaOffset.beginning)])
        let (cluster, logger) = (cluster, logger)
        await cancelWhenGracefulShutdown {
            for await event in consumer.events {
                guard case .messages(let batch) = event else { continue }
                for message in batch { Self.serve(message, cluster: cluster, logger: logger) }
            }
        }
        await consumer.close()
    }

    private static func serve(_ message: KafkaMessage, cluster: MockCluster, logger: Logger) {
        guard let request = MockCluster.TopicRequest(message) else {
            logger.warning(
                "ignored a topic request: expected the topic's name as key and its partition count as value",
                metadata: ["offset": "\(message.offset)"])
            return
        }
        do {
            if try cluster.create(request) {
                logger.info("topic created on request", metadata: ["topic": "\(request.topic)", "partitions": "\(request.partitions)"])
            }
        } catch {
            logger.error("a requested topic could not be created", metadata: ["topic": "\(request.topic)", "error": "\(error)"])
        }
    }
}
