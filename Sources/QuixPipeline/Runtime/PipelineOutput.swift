import Logging
import QuixStreams
import Synchronization

/// Where a pipeline writes what its stages pass on, per stream, keyed by stream id.
protocol PipelineOutput: Sendable {
    func write(_ frame: TimeseriesFrame, stream: String) async throws
    func write(_ events: [EventData], stream: String) async throws
    func forward(_ properties: StreamProperties, metadata: [(key: String, value: String)], stream: String) async throws
    func forward(_ definitions: ParameterDefinitions, stream: String) async throws
    func forward(_ definitions: EventDefinitions, stream: String) async throws
    /// The input stream ended with a StreamEnd.
    func end(_ stream: String, _ type: StreamEndType) async throws
    /// Sends everything held and waits for the broker's acknowledgements.
    func flush() async throws
    func close() async
}

/// The Quix 0.5 format: one output stream per input stream, with its properties and
/// definitions forwarded, columns that stages add defined, and the output buffer configured.
final class QuixOutput: PipelineOutput {
    private let producer: TopicProducer
    private let buffer: TimeseriesBufferConfiguration?
    /// Per stream, the parameter ids the output defines.
    private let defined = Mutex([String: Set<String>]())

    init(client: KafkaStreamingClient, output: Pipeline.Output) throws {
        producer = try client.topicProducer(output.topic)
        let options = output.buffer
        if options.packetSize != nil || options.timeSpan != nil || options.timeout != nil {
            var configuration = TimeseriesBufferConfiguration()
            configuration.packetSize = options.packetSize
            configuration.timeSpan = options.timeSpan
            configuration.timeout = options.timeout
            buffer = configuration
        } else {
            buffer = nil
        }
    }

    /// The output stream `id`, its buffer configured when it is new.
    private func stream(_ id: String) throws -> StreamProducer {
        let stream = try producer.getOrCreateStream(id)
        let isNew = defined.withLock { defined in
            guard defined[id] == nil else { return false }
            defined[id] = []
            return true
        }
        if isNew, let buffer { stream.configureBuffer(buffer) }
        return stream
    }

    func write(_ frame: TimeseriesFrame, stream id: String) async throws {
        let stream = try stream(id)
        let missing = defined.withLock { defined -> [String] in
            guard let known = defined[id], !known.isEmpty else { return [] }
            var missing: [String] = []
            func collect(_ names: some Sequence<String>) { for name in names where !known.contains(name) { missing.append(name) } }
            collect(frame.numeric.keys)
            collect(frame.strings.keys)
            collect(frame.binary.keys)
            if !missing.isEmpty { defined[id]?.formUnion(missing) }
            return missing
        }
        for column in missing { try stream.addParameterDefinition(ParameterDefinition(id: column)) }
        // Without buffer options each frame goes out as it is, without a pass through the buffer.
        if buffer == nil { try await stream.publish(frame) } else { try await stream.write(frame) }
    }

    func write(_ events: [EventData], stream id: String) async throws {
        try await stream(id).publish(events)
    }

    func forward(_ properties: StreamProperties, metadata: [(key: String, value: String)], stream id: String) async throws {
        try stream(id).updateProperties { current in
            current = properties
            for (key, value) in metadata { current.metadata[key] = value }
        }
    }

    func forward(_ definitions: ParameterDefinitions, stream id: String) async throws {
        let stream = try stream(id)
        try stream.setParameterDefinitions(definitions)
        defined.withLock { $0[id] = Self.ids(definitions) }
    }

    func forward(_ definitions: EventDefinitions, stream id: String) async throws {
        try stream(id).setEventDefinitions(definitions)
    }

    func end(_ id: String, _ type: StreamEndType) async throws {
        try await stream(id).close(type)
        defined.withLock { $0[id] = nil }
    }

    func flush() async throws { try await producer.flush() }

    func close() async { try? await producer.close() }

    private static func ids(_ definitions: ParameterDefinitions) -> Set<String> {
        func walk(_ groups: [ParameterGroup]) -> [String] { groups.flatMap { $0.parameters.map(\.id) + walk($0.childGroups) } }
        return Set(definitions.parameters.map(\.id) + walk(definitions.parameterGroups))
    }
}

/// The `json` and `raw` formats: one Kafka message per row (and per event), keyed by stream id;
/// properties and definitions have no place in them and are not written.
final class RecordOutput: PipelineOutput {
    private let topic: String
    private let format: Pipeline.DataFormat
    private let producer: KafkaProducer
    private let failures = DeliveryFailures()

    /// Delivery failures since the last flush, recorded by the producer's report handler.
    private final class DeliveryFailures: Sendable {
        let list = Mutex<[String]>([])
    }

    init(client: KafkaStreamingClient, output: Pipeline.Output, logger: Logger) throws {
        topic = output.topic
        format = output.format
        let failures = failures
        producer = try KafkaProducer(settings: ProducerSettings(client: client.settings), logger: logger) { report in
            if let error = report.error { failures.list.withLock { $0.append("\(report.topic)[\(report.partition)]: \(error)") } }
        }
    }

    func write(_ frame: TimeseriesFrame, stream: String) async throws {
        let values = format == .json ? MessageFormats.encodeJSON(frame).map(Optional.some) : MessageFormats.encodeRaw(frame)
        for (row, value) in values.enumerated() {
            try await producer.send(
                OutgoingMessage(topic: topic, key: Array(stream.utf8), value: value, timestampMilliseconds: frame.timestamps[row] / 1_000_000))
        }
    }

    func write(_ events: [EventData], stream: String) async throws {
        for event in events {
            let value = format == .json ? MessageFormats.encodeJSON(event) : Array(event.value.utf8)
            try await producer.send(OutgoingMessage(topic: topic, key: Array(stream.utf8), value: value, timestampMilliseconds: event.timestamp / 1_000_000))
        }
    }

    func forward(_ properties: StreamProperties, metadata: [(key: String, value: String)], stream: String) async throws {}
    func forward(_ definitions: ParameterDefinitions, stream: String) async throws {}
    func forward(_ definitions: EventDefinitions, stream: String) async throws {}
    func end(_ stream: String, _ type: StreamEndType) async throws {}

    func flush() async throws {
        try await producer.flush()
        let failed = failures.list.withLock { failures in
            defer { failures.removeAll() }
            return failures
        }
        if let first = failed.first { throw StageError("\(failed.count) output messages were not delivered; the first: \(first)") }
    }

    func close() async {
        try? await flush()
        await producer.close()
    }
}
