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
    /// The input stream stops here without an end (its partition moves, the pipeline stops):
    /// what the output holds for it goes out.
    func release(_ stream: String) async throws
    /// Sends everything held and waits for the broker's acknowledgements.
    func flush() async throws
    func close() async
    /// Calls `handler` with the size of each Kafka message queued for the output topic.
    func onSent(_ handler: @escaping @Sendable (_ bytes: Int) -> Void)
}

/// The Quix 0.5 format: one output stream per input stream, with its properties and the
/// definitions the stages derive from the input's (`StageChain.definitions`: what stages add or
/// rename is defined, nothing else is invented), and the output buffer configured.
final class QuixOutput: PipelineOutput {
    private let producer: TopicProducer
    private let buffer: TimeseriesBufferConfiguration?
    /// Streams whose buffer is configured.
    private let configured = Mutex(Set<String>())

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
        if let buffer, configured.withLock({ $0.insert(id).inserted }) { stream.configureBuffer(buffer) }
        return stream
    }

    func write(_ frame: TimeseriesFrame, stream id: String) async throws {
        // Without buffer options each frame goes out as it is, without a pass through the buffer.
        if buffer == nil { try await stream(id).publish(frame) } else { try await stream(id).write(frame) }
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
        try stream(id).setParameterDefinitions(definitions)
    }

    func forward(_ definitions: EventDefinitions, stream id: String) async throws {
        try stream(id).setEventDefinitions(definitions)
    }

    func end(_ id: String, _ type: StreamEndType) async throws {
        try await stream(id).close(type)
        configured.withLock { _ = $0.remove(id) }
    }

    func release(_ id: String) async throws {
        guard buffer != nil, configured.withLock({ $0.contains(id) }) else { return }
        try await stream(id).flush()
    }

    func flush() async throws { try await producer.flush() }

    func close() async { try? await producer.close() }

    func onSent(_ handler: @escaping @Sendable (_ bytes: Int) -> Void) { producer.onSent(handler) }
}

/// The `json` and `raw` formats: one Kafka message per row (and per event), keyed by stream id;
/// properties and definitions have no place in them and are not written. Each message carries the
/// origin of the input package it came from, so checkpoints wait for exactly what they need.
final class RecordOutput: PipelineOutput {
    private let topic: String
    private let format: Pipeline.DataFormat
    private let producer: RecordProducer

    init(client: KafkaStreamingClient, output: Pipeline.Output) throws {
        topic = output.topic
        format = output.format
        producer = try client.recordProducer()
    }

    func write(_ frame: TimeseriesFrame, stream: String) async throws {
        let values = format == .json ? MessageFormats.encodeJSON(frame).map(Optional.some) : MessageFormats.encodeRaw(frame)
        let key = Array(stream.utf8)
        let origin = DeliveryOrigin.current
        for (row, value) in values.enumerated() {
            try await producer.send(
                topic: topic, key: key, value: value, timestampMilliseconds: frame.timestamps[row] / 1_000_000, origin: origin)
        }
    }

    func write(_ events: [EventData], stream: String) async throws {
        let origin = DeliveryOrigin.current
        for event in events {
            let value = format == .json ? MessageFormats.encodeJSON(event) : Array(event.value.utf8)
            try await producer.send(
                topic: topic, key: Array(stream.utf8), value: value, timestampMilliseconds: event.timestamp / 1_000_000, origin: origin)
        }
    }

    func forward(_ properties: StreamProperties, metadata: [(key: String, value: String)], stream: String) async throws {}
    func forward(_ definitions: ParameterDefinitions, stream: String) async throws {}
    func forward(_ definitions: EventDefinitions, stream: String) async throws {}
    func end(_ stream: String, _ type: StreamEndType) async throws {}
    func release(_ stream: String) async throws {}

    func flush() async throws { try await producer.flush() }

    func close() async {
        try? await flush()
        await producer.close()
    }

    func onSent(_ handler: @escaping @Sendable (_ bytes: Int) -> Void) { producer.onSent(topic: topic, handler) }
}
