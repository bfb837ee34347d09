import ArgumentParser
import Foundation
import Logging
import QuixKafka
import ServiceLifecycle
import UnixSignals

struct Broker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a development Kafka cluster (librdkafka's mock cluster) in the foreground.",
        discussion: """
            Prints the bootstrap servers as the first line of standard output, then serves until \
            SIGINT or SIGTERM. Topics named with --topic are created with --partitions partitions; \
            any other topic is created on first use with \(MockCluster.defaultPartitions) partitions. \
            The mock keeps only about 5 MB and 100,000 messages per partition and drops older data \
            silently, and it has no controller, so admin CreateTopics requests fail: name the topics \
            you need here. quixd and the QuixStreams library create the changelog topics of their \
            state anyway, with the right partitions: they ask through the topic \
            \(MockCluster.topicRequestsTopic) (a record keyed by the topic's name, valued with its \
            partition count), which this broker serves.
            """)

    @Option(help: "Number of brokers.")
    var brokers = 1

    @Option(help: "Partitions of each topic named with --topic.")
    var partitions = MockCluster.defaultPartitions

    @Option(name: .customLong("topic"), help: "A topic to create at start (repeatable).")
    var topics: [String] = []

    func validate() throws {
        guard partitions > 0 else { throw ValidationError("--partitions must be at least 1") }
        guard (1...32).contains(brokers) else { throw ValidationError("--brokers must be between 1 and 32") }
    }

    func run() async throws {
        let logger = Logger(label: "quixd.broker")
        let cluster = try MockCluster(brokers: brokers, logger: logger)
        for topic in topics {
            try cluster.createTopic(topic, partitions: partitions, replicationFactor: min(3, brokers))
        }
        let requests = try TopicRequestService(cluster: cluster, logger: logger)
        print(cluster.bootstrapServers)
        fflush(nil)  // the first line must reach a pipe now, not when the buffer fills
        logger.info(
            "development broker running; stop it with Ctrl-C",
            metadata: ["bootstrap": "\(cluster.bootstrapServers)", "topics": "\(topics)"])
        try await ServiceGroup(services: [requests], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        logger.info("stopped")
    }
}
