import QuixProtocol
import Synchronization

/// One stream of a topic consumer. Attach handlers in `TopicConsumer.onStreamReceived`; they
/// are awaited one package at a time, in the stream's order. A handler that throws is reported
/// to `TopicConsumer.onError`, and the stream goes on.
public final class StreamConsumer: Sendable {
    public typealias Handler<Value> = @Sendable (StreamConsumer, Value) async throws -> Void

    public let streamID: String
    let partition: Int32
    private let state = Mutex(State())

    struct State: Sendable {
        var properties = StreamProperties()
        var parameterDefinitions = ParameterDefinitions()
        var eventDefinitions = EventDefinitions()
        var onProperties: Handler<StreamProperties>?
        var onParameterDefinitions: Handler<ParameterDefinitions>?
        var onEventDefinitions: Handler<EventDefinitions>?
        var onData: Handler<TimeseriesData>?
        var onFrame: Handler<TimeseriesFrame>?
        var onEvent: Handler<EventData>?
        var onClosed: Handler<StreamEndType>?
    }

    init(id: String, partition: Int32) {
        streamID = id
        self.partition = partition
    }

    /// The latest properties (each message replaces them all).
    public var properties: StreamProperties { state.withLock { $0.properties } }
    public var parameterDefinitions: ParameterDefinitions { state.withLock { $0.parameterDefinitions } }
    public var eventDefinitions: EventDefinitions { state.withLock { $0.eventDefinitions } }

    public func onPropertiesChanged(_ handler: @escaping Handler<StreamProperties>) { state.withLock { $0.onProperties = handler } }
    public func onParameterDefinitionsChanged(_ handler: @escaping Handler<ParameterDefinitions>) {
        state.withLock { $0.onParameterDefinitions = handler }
    }
    public func onEventDefinitionsChanged(_ handler: @escaping Handler<EventDefinitions>) { state.withLock { $0.onEventDefinitions = handler } }
    /// Each timeseries package as it arrived (epoch and relative timestamps as sent).
    public func onDataReceived(_ handler: @escaping Handler<TimeseriesData>) { state.withLock { $0.onData = handler } }
    /// Each timeseries package as a frame (absolute timestamps).
    public func onFrameReceived(_ handler: @escaping Handler<TimeseriesFrame>) { state.withLock { $0.onFrame = handler } }
    /// Each event; a package that is not Quix data arrives as an event whose id is the stream id
    /// and whose value is the package's text, as in the reference.
    public func onEventReceived(_ handler: @escaping Handler<EventData>) { state.withLock { $0.onEvent = handler } }
    public func onStreamClosed(_ handler: @escaping Handler<StreamEndType>) { state.withLock { $0.onClosed = handler } }

    /// Hands one package to the handlers; returns whether it ended the stream.
    func deliver(
        _ message: DecodedMessage, timestampMilliseconds: Int64?, onError: (any Error, String) -> Void
    ) async -> Bool {
        let handlers = state.withLock { $0 }
        do {
            switch message {
            case .model(.streamProperties(let properties)):
                state.withLock { $0.properties = properties }
                try await handlers.onProperties?(self, properties)
            case .model(.parameterDefinitions(let definitions)):
                state.withLock { $0.parameterDefinitions = definitions }
                try await handlers.onParameterDefinitions?(self, definitions)
            case .model(.eventDefinitions(let definitions)):
                state.withLock { $0.eventDefinitions = definitions }
                try await handlers.onEventDefinitions?(self, definitions)
            case .model(.timeseries(let data)):
                try await handlers.onData?(self, data)
                if let onFrame = handlers.onFrame { try await onFrame(self, TimeseriesFrame(data)) }
            case .model(.eventData(let events)):
                for event in events { try await handlers.onEvent?(self, event) }
            case .model(.streamEnd(let type)):
                try await handlers.onClosed?(self, type)
                return true
            case .unknown(_, _, let payload), .raw(let payload):
                let event = EventData(
                    id: streamID, timestamp: (timestampMilliseconds ?? 0) * 1_000_000, value: String(decoding: payload, as: UTF8.self))
                try await handlers.onEvent?(self, event)
            }
        } catch {
            onError(error, "a handler of stream \(streamID)")
        }
        return false
    }

    /// The stream ends without a StreamEnd (its partition was revoked).
    func deliverClosed(_ type: StreamEndType, onError: (any Error, String) -> Void) async {
        guard let handler = state.withLock({ $0.onClosed }) else { return }
        do { try await handler(self, type) } catch { onError(error, "the closed handler of stream \(streamID)") }
    }
}
