import Foundation
import Logging
import QuixKafka
import QuixPipeline
import QuixStreams
import Synchronization

/// What `quixd run` does without brokers: an in-process mock cluster, sample rows fed into the
/// pipelines' inputs, and what the pipelines write printed on standard output.
final class DevelopmentBroker: Sendable {
    let cluster: MockCluster
    private let logger: Logger
    private let readers = Mutex<[TopicConsumer]>([])

    init(logger: Logger) throws {
        cluster = try MockCluster(brokers: 1, logger: logger)
        self.logger = logger
        logger.warning(
            """

            ************************************************************************
            * No brokers given: quixd runs an EMBEDDED DEVELOPMENT BROKER          *
            * (librdkafka's mock cluster) at \(cluster.bootstrapServers.padding(toLength: 38, withPad: " ", startingAt: 0))*
            * Its data lives in memory and is gone when quixd stops.               *
            * Give --brokers (or kafka.brokers in the config) for a real cluster.  *
            ************************************************************************
            """)
    }

    /// Creates the topics the pipelines use (the mock cluster cannot create them on request):
    /// inputs, outputs, dead-letter topics and state changelogs, with the same partitions.
    func createTopics(for pipelines: [Pipeline]) throws {
        var topics: Set<String> = []
        for pipeline in pipelines {
            topics.formUnion([pipeline.input.topic, pipeline.output.topic, "\(pipeline.name)-\(pipeline.input.topic)-changelog"])
            if let topic = pipeline.onError.topic { topics.insert(topic) }
        }
        for topic in topics.sorted() { try cluster.createTopic(topic, partitions: MockCluster.defaultPartitions) }
    }

    /// Feeds each input topic's sample rows (the CSV given, or `samples/TOPIC.csv` beside the
    /// pipeline file) into it, once, in the reading pipeline's input format.
    func feedSamples(_ pipelines: [(file: String, pipeline: Pipeline)], explicit: String?, client: KafkaStreamingClient) async throws {
        var fed: Set<String> = []
        for (file, pipeline) in pipelines where !fed.contains(pipeline.input.topic) {
            let beside = ((file as NSString).deletingLastPathComponent as NSString).appendingPathComponent("samples/\(pipeline.input.topic).csv")
            guard let path = explicit ?? (FileManager.default.fileExists(atPath: beside) ? beside : nil) else { continue }
            fed.insert(pipeline.input.topic)
            let sample = try SampleData(csv: String(contentsOfFile: path, encoding: .utf8), file: path)
            let count = try await sample.produce(to: pipeline.input.topic, format: pipeline.input.format, client: client)
            logger.info("fed sample data", metadata: ["file": "\(path)", "topic": "\(pipeline.input.topic)", "rows": "\(count)", "streams": "\(sample.streams.count)"])
        }
    }

    /// Prints every output topic's rows and events, one line each.
    func showOutputs(_ pipelines: [(file: String, pipeline: Pipeline)], client: KafkaStreamingClient) {
        for (_, pipeline) in pipelines {
            let output = pipeline.output
            guard let consumer = try? TopicConsumer(
                client: client, topic: output.topic, group: nil, startFrom: .earliest, decoder: MessageFormats.decoder(for: output.format))
            else { continue }
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
            readers.withLock { $0.append(consumer) }
            Task { try? await consumer.run() }
        }
    }

    func stop() async {
        for reader in readers.withLock({ $0 }) { await reader.close() }
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

/// Rows of a sample CSV: a `stream` column (the stream id), a `timestamp` column (ns or
/// ISO-8601), numeric columns, and binary columns named `NAME:base64`; other texts are string
/// columns.
struct SampleData {
    var streams: [String: TimeseriesFrame] = [:]
    var order: [String] = []
    var rows = 0

    init(csv: String, file: String) throws {
        var lines = csv.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw FormatError("\(file): empty") }
        let header = lines.removeFirst().split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let streamIndex = header.firstIndex(of: "stream"), let timeIndex = header.firstIndex(of: "timestamp") else {
            throw FormatError("\(file):1: needs stream and timestamp columns")
        }
        var cells: [String: [[String]]] = [:]
        for (index, line) in lines.enumerated() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == header.count else { throw FormatError("\(file):\(index + 2): \(fields.count) fields, the header has \(header.count)") }
            if cells[fields[streamIndex]] == nil { order.append(fields[streamIndex]) }
            cells[fields[streamIndex], default: []].append(fields)
        }
        for (stream, rows) in cells {
            var frame = TimeseriesFrame(timestamps: try rows.map { fields in
                guard let time = MessageFormats.timestamp(fields[timeIndex]) else { throw FormatError("\(file): bad timestamp \"\(fields[timeIndex])\"") }
                return time
            })
            for (column, name) in header.enumerated() where column != streamIndex && column != timeIndex {
                let values = rows.map { $0[column] }
                if name.hasSuffix(":base64") {
                    frame.setBinary(String(name.dropLast(7)), values.map { $0.isEmpty ? nil : Data(base64Encoded: $0).map(Array.init) })
                } else if values.allSatisfy({ $0.isEmpty || Double($0) != nil }) {
                    frame[name] = NumericColumn(values.map { Double($0) })
                } else {
                    frame.setStrings(name, values.map { $0.isEmpty ? nil : $0 })
                }
            }
            streams[stream] = frame
            self.rows += rows.count
        }
    }

    /// Writes the rows, ten per message in the Quix format (one per message otherwise).
    func produce(to topic: String, format: Pipeline.DataFormat, client: KafkaStreamingClient) async throws -> Int {
        if format == .quix {
            let producer = try client.topicProducer(topic)
            for id in order {
                let stream = try producer.getOrCreateStream(id)
                try stream.updateProperties { $0.name = "vehicle \(id)" }
                let frame = streams[id]!
                for name in frame.numeric.keys { try stream.addParameterDefinition(ParameterDefinition(id: name, name: name)) }
                for start in stride(from: 0, to: frame.rowCount, by: 10) {
                    try await stream.publish(frame.rows(Array(start..<min(start + 10, frame.rowCount))))
                }
            }
            try await producer.close()
        } else {
            let producer = try KafkaProducer(settings: ProducerSettings(client: client.settings))
            for id in order {
                let frame = streams[id]!
                let values = format == .json ? MessageFormats.encodeJSON(frame).map(Optional.some) : MessageFormats.encodeRaw(frame)
                for value in values { try await producer.send(OutgoingMessage(topic: topic, key: Array(id.utf8), value: value)) }
            }
            try await producer.flush()
            await producer.close()
        }
        return rows
    }
}
