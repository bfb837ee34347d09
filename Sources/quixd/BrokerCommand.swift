import ArgumentParser
import Foundation
import Logging
import QuixKafka

struct Broker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a development Kafka cluster (librdkafka's mock cluster) in the foreground.",
        discussion: """
            Prints the bootstrap servers as the first line of standard output, then serves until \
            SIGINT or SIGTERM. Topics named with --topic are created with --partitions partitions; \
            any other topic is created on first use with \(MockCluster.defaultPartitions) partitions. \
            The mock keeps only about 5 MB and 100,000 messages per partition and drops older data \
            silently, and it has no controller, so admin CreateTopics requests fail: name the topics \
            you need here.
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
        print(cluster.bootstrapServers)
        fflush(nil)  // the first line must reach a pipe now, not when the buffer fills
        logger.info(
            "development broker running; stop it with Ctrl-C",
            metadata: ["bootstrap": "\(cluster.bootstrapServers)", "topics": "\(topics)"])
        let signal = await waitForTermination()
        logger.info("stopping", metadata: ["signal": "\(signal)"])
        withExtendedLifetime(cluster) {}
    }
}

/// Suspends until SIGINT or SIGTERM arrives; returns the signal's number.
func waitForTermination() async -> Int32 {
    await withCheckedContinuation { continuation in
        let once = SignalOnce(continuation)
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { once.fire(number) }
            source.resume()
            once.keep(source)
        }
    }
}

/// Resumes a continuation for the first signal only.
private final class SignalOnce: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Int32, Never>?
    private var sources: [any DispatchSourceSignal] = []

    init(_ continuation: CheckedContinuation<Int32, Never>) { self.continuation = continuation }

    func keep(_ source: any DispatchSourceSignal) { lock.withLock { sources.append(source) } }

    func fire(_ number: Int32) {
        let pending = lock.withLock {
            defer { continuation = nil }
            return continuation
        }
        pending?.resume(returning: number)
    }
}
