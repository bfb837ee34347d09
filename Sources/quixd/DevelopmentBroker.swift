import Foundation
import Logging
import QuixKafka
import QuixPipeline
import QuixStreams
import ServiceLifecycle

/// What `quixd run` does without brokers, as a Service of the daemon's group: an in-process
/// mock cluster with the pipelines' topics, which serves topic requests (their changelog topics
/// are created that way, as on `quixd broker`); sample rows fed into the pipelines' inputs; and
/// what the pipelines write printed on standard output. It runs until the graceful shutdown,
/// after the pipelines stopped: the cluster lives as long as this object.
final class DevelopmentBroker: Service {
    let cluster: MockCluster
    private let pipelines: [(file: String, pipeline: Pipeline)]
    private let sample: String?
    private let requests: TopicRequestService
    /// A client of the cluster alone: the daemon's Kafka settings (security) are for real brokers.
    private let client: KafkaStreamingClient
    private let logger: Logger

    /// Starts the cluster and creates the topics the pipelines read and write (inputs, outputs,
    /// dead-letter topics), each with `MockCluster.defaultPartitions` partitions.
    /// - Parameter sample: a CSV fed into every input, instead of `samples/TOPIC.csv` beside
    ///   each pipeline file.
    init(pipelines: [(file: String, pipeline: Pipeline)], sample: String?, logger: Logger) throws {
        cluster = try MockCluster(brokers: 1, logger: logger)
        self.pipelines = pipelines
        self.sample = sample
        self.logger = logger
        requests = try TopicRequestService(cluster: cluster, logger: logger)
        client = KafkaStreamingClient(brokers: cluster.bootstrapServers, logger: logger)
        logger.warning(
            """

            ************************************************************************
            * No brokers given: quixd runs an EMBEDDED DEVELOPMENT BROKER          *
            * (librdkafka's mock cluster) at \(cluster.bootstrapServers.padding(toLength: 38, withPad: " ", startingAt: 0))*
            * Its data lives in memory and is gone when quixd stops.               *
            * Give --brokers (or kafka.brokers in the config) for a real cluster.  *
            ************************************************************************
            """)
        var topics: Set<String> = []
        for (_, pipeline) in pipelines {
            topics.insert(pipeline.input.topic)
            topics.formUnion(pipeline.outputs.map(\.topic))
            topics.formUnion(pipeline.tables.map(\.topic))
            if let topic = pipeline.onError.topic { topics.insert(topic) }
        }
        for topic in topics.sorted() { try cluster.createTopic(topic, partitions: MockCluster.defaultPartitions) }
    }

    func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { [requests] in try await requests.run() }
            try await feedSamples()
            let readers = outputReaders()
            for reader in readers { group.addTask { try? await reader.run() } }
            try? await gracefulShutdown()
            for reader in readers { await reader.close() }
            try await group.waitForAll()
        }
    }

    /// Feeds each input topic's sample rows (the CSV given, or `samples/TOPIC.csv` beside the
    /// pipeline file) into it, once, in the reading pipeline's input format; and each table
    /// topic's rows from `samples/TOPIC.csv` beside the pipeline file, before any input.
    private func feedSamples() async throws {
        var fed: Set<String> = []
        func feed(_ path: String, _ topic: String, _ format: Pipeline.DataFormat) async throws {
            fed.insert(topic)
            let rows = try SampleData(csv: String(contentsOfFile: path, encoding: .utf8), file: path)
            let count = try await rows.produce(to: topic, format: format, client: client)
            logger.info("fed sample data", metadata: ["file": "\(path)", "topic": "\(topic)", "rows": "\(count)", "streams": "\(rows.streams.count)"])
        }
        func beside(_ file: String, _ topic: String) -> String? {
            let path = ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent("samples/\(topic).csv")
            return FileManager.default.fileExists(atPath: path) ? path : nil
        }
        for (file, pipeline) in pipelines {
            for table in pipeline.tables where !fed.contains(table.topic) {
                if let path = beside(file, table.topic) { try await feed(path, table.topic, table.format) }
            }
        }
        for (file, pipeline) in pipelines where !fed.contains(pipeline.input.topic) {
            guard let path = sample ?? beside(file, pipeline.input.topic) else { continue }
            try await feed(path, pipeline.input.topic, pipeline.input.format)
        }
    }

    /// Readers that print every output topic's rows and events, one line each.
    private func outputReaders() -> [TopicConsumer] {
        pipelines.flatMap { _, pipeline in pipeline.outputs.map { (pipeline, $0) } }.compactMap { pipeline, output in
            guard let consumer = try? TopicConsumer(
                client: client, topic: output.topic, group: nil, startFrom: .earliest, decoder: MessageFormats.decoder(for: output.format))
            else { return nil }
            let prefix = "[\(pipeline.name) → \(output.topic)]"
            consumer.onStreamReceived { stream in
                stream.onFrameReceived { stream, frame in
                    var lines = ""
                    for row in 0..<frame.rowCount { lines += "\(prefix) \(stream.streamID) \(Self.time(frame.timestamps[row])) \(Self.describe(frame, row: row))\n" }
                    FileHandle.standardOutput.write(Data(lines.utf8))
                }
                stream.onEventReceived { stream, event in
                    let value = event.value.count > 160 ? event.value.prefix(160) + "…" : Substring(event.value)
                    FileHandle.standardOutput.write(Data("\(prefix) \(stream.streamID) \(Self.time(event.timestamp)) event \(event.id): \(value)\n".utf8))
                }
            }
            return consumer
        }
    }

    private static func time(_ nanoseconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(nanoseconds) / 1e9))
    }

    private static func describe(_ frame: TimeseriesFrame, row: Int) -> String {
        var parts: [String] = []
        for (name, column) in frame.numeric { if let value = column[row] { parts.append("\(name)=\(String(format: "%.3f", value))") } }
        for (name, column) in frame.strings { if let value = column[row] { parts.append("\(name)=\(value)") } }
        for (name, column) in frame.binary { if let value = column[row] { parts.append("\(name)=<\(value.count) bytes>") } }
        for (name, column) in frame.tags { if let value = column[row] { parts.append("#\(name)=\(value)") } }
        return parts.joined(separator: " ")
    }
}
