import QuixProtocol
import Synchronization

/// One stream of a topic consumer. Attach handlers in `TopicConsumer.onStreamReceived`; they
/// are awaited one package at a time, in the stream's order. A handler that throws is reported
/// to `TopicConsumer.onError`, and the stream goes on.
public final class StreamConsumer: Sendable {
    /// A handler owns the value it is given (`consuming`): a frame handed on to stages and
    /// outputs is changed in place, not copied.
    public typealias Handler<Value> = @Sendable (StreamConsumer, consuming Value) async throws -> Void

    public let streamID: String
    /// The partition the stream is read from.
    public let partition: Int32
    /// The state of the stream's partition, when the topic consumer keeps state.
    let partitionState: PartitionState?
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
        var buffers: [ConsumerBuffer] = []
        var lastPackage = ContinuousClock.now
        var receivedStreamEnd = false
    }

    init(id: String, partition: Int32, state: PartitionState? = nil) {
        streamID = id
        self.partition = partition
        partitionState = state
    }

    /// This stream's state in `store` (see `StreamState`). Needs a topic consumer made with
    /// `StateOptions`.
    public func state(_ store: String = "default") throws(StreamStateError) -> StreamState {
        guard let partitionState else {
            throw StreamStateError(.notConfigured, "the topic consumer of stream \"\(streamID)\" has no state directory (StateOptions)")
        }
        return StreamState(partition: partitionState, store: store, streamID: streamID)
    }

    /// The state of this stream's partition, for what is kept per partition rather than per
    /// stream. Needs a topic consumer made with `StateOptions`.
    public func partitionStateAccess() throws(StreamStateError) -> PartitionStateAccess {
        guard let partitionState else {
            throw StreamStateError(.notConfigured, "the topic consumer of stream \"\(streamID)\" has no state directory (StateOptions)")
        }
        return PartitionStateAccess(partition: partitionState.partition, state: partitionState)
    }

    /// Deletes this stream's keys in every store of its partition.
    func clearState() {
        guard let partitionState else { return }
        for store in partitionState.stores { StreamState(partition: partitionState, store: store, streamID: streamID).clear() }
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

    /// A buffer of this stream's time-series data, releasing frames as `configuration` says
    /// (`parameters` keeps only those columns; tags are always kept). Rows it holds are not
    /// committed until it releases them.
    public func createBuffer(_ configuration: TimeseriesBufferConfiguration, parameters: [String]? = nil) -> ConsumerBuffer {
        let buffer = ConsumerBuffer(configuration: configuration, parameters: parameters)
        state.withLock { $0.buffers.append(buffer) }
        return buffer
    }

    /// Whether the stream ended with a StreamEnd from its producer (not because its partition
    /// moved or it was idle).
    public var receivedStreamEnd: Bool { state.withLock { $0.receivedStreamEnd } }

    /// When the stream's last package arrived.
    var lastPackage: ContinuousClock.Instant { state.withLock { $0.lastPackage } }

    /// The oldest package offset whose rows a buffer of this stream still holds.
    var oldestHeldOffset: Int64? { state.withLock { $0.buffers }.compactMap(\.oldestHeldOrigin).min() }

    /// Releases what every buffer holds (the stream ends or its partition moves).
    func flushBuffers(onError: (any Error, String) -> Void) async {
        for buffer in state.withLock({ $0.buffers }) { await buffer.flush(self, onError: onError) }
    }

    /// Releases the rows that waited longer than their buffer's timeout.
    func expireBuffers(now: ContinuousClock.Instant, onError: (any Error, String) -> Void) async {
        let buffers = state.withLock { $0.buffers }
        for buffer in buffers { await buffer.expire(now: now, self, onError: onError) }
    }

    /// Hands one package (`value`, decoded as `message`) to the handlers; returns whether it
    /// ended the stream.
    func deliver(
        _ message: consuming DecodedMessage, value: ArraySlice<UInt8>, offset: Int64, timestampMilliseconds: Int64?,
        onError: (any Error, String) -> Void
    ) async -> Bool {
        do {
            switch consume message {
            case .model(.streamProperties(let properties)):
                let handler = received { $0.properties = properties; return $0.onProperties }
                try await handler?(self, properties)
            case .model(.parameterDefinitions(let definitions)):
                let handler = received { $0.parameterDefinitions = definitions; return $0.onParameterDefinitions }
                try await handler?(self, definitions)
            case .model(.eventDefinitions(let definitions)):
                let handler = received { $0.eventDefinitions = definitions; return $0.onEventDefinitions }
                try await handler?(self, definitions)
            case .model(.timeseries(let data)):
                let handlers = receivedData()
                let (onData, onFrame, buffers) = (handlers.onData, handlers.onFrame, handlers.buffers)
                try await onData?(self, data)
                let frame = TimeseriesFrame(data)
                if let onFrame { try await onFrame(self, frame) }
                for buffer in buffers { await buffer.write(frame, origin: offset, stream: self, onError: onError) }
            case .frame(let frame):
                let handlers = receivedData()
                let (onData, onFrame, buffers) = (handlers.onData, handlers.onFrame, handlers.buffers)
                if let onData {
                    // Data as sent (epoch and relative timestamps), which the frame folded.
                    if case .model(.timeseries(let data)) = try QuixCodec.decode(value) {
                        try await onData(self, data)
                    } else {
                        try await onData(self, frame.timeseriesData)
                    }
                }
                if buffers.isEmpty {
                    // The handler gets the only reference: a stage that adds a column copies nothing.
                    if let onFrame { try await onFrame(self, consume frame) }
                } else {
                    if let onFrame { try await onFrame(self, frame) }
                    for buffer in buffers { await buffer.write(frame, origin: offset, stream: self, onError: onError) }
                }
            case .model(.eventData(let events)):
                let handler = received { $0.onEvent }
                for event in events { try await handler?(self, event) }
            case .model(.streamEnd(let type)):
                let handler = received { $0.receivedStreamEnd = true; return $0.onClosed }
                await flushBuffers(onError: onError)
                try await handler?(self, type)
                return true
            case .unknown(_, _, let payload), .raw(let payload):
                let event = EventData(
                    id: streamID, timestamp: (timestampMilliseconds ?? 0) * 1_000_000, value: String(decoding: payload, as: UTF8.self))
                try await received { $0.onEvent }?(self, event)
            }
        } catch {
            onError(error, "a handler of stream \(streamID)")
        }
        return false
    }

    /// Marks a package received, and returns the handlers `take` picks (with the state's lock
    /// held: it may record what the package changes). Only those are copied out, not the whole
    /// state, once per package.
    private func received<T>(_ take: (inout State) -> T) -> T {
        state.withLock { state in
            state.lastPackage = .now
            return take(&state)
        }
    }

    /// The handlers of time-series data, in a struct: a tuple of closures through `received`'s
    /// generic result would be boxed in reabstraction thunks, two allocations per package.
    private struct DataHandlers {
        let onData: Handler<TimeseriesData>?
        let onFrame: Handler<TimeseriesFrame>?
        let buffers: [ConsumerBuffer]
    }

    private func receivedData() -> DataHandlers {
        received { DataHandlers(onData: $0.onData, onFrame: $0.onFrame, buffers: $0.buffers) }
    }

    /// The stream ends without a StreamEnd (its partition was revoked).
    func deliverClosed(_ type: StreamEndType, onError: (any Error, String) -> Void) async {
        await flushBuffers(onError: onError)
        guard let handler = state.withLock({ $0.onClosed }) else { return }
        do { try await handler(self, type) } catch { onError(error, "the closed handler of stream \(streamID)") }
    }
}

/// A consumer-side time-series buffer of one stream (`StreamConsumer.createBuffer`).
public final class ConsumerBuffer: Sendable {
    private let state: Mutex<State>

    struct State: Sendable {
        var buffer: TimeseriesBuffer
        var parameters: Set<String>?
        var onReleased: StreamConsumer.Handler<TimeseriesFrame>?
    }

    init(configuration: TimeseriesBufferConfiguration, parameters: [String]?) {
        state = Mutex(State(buffer: TimeseriesBuffer(configuration, dropsRowsWithoutValues: false), parameters: parameters.map(Set.init)))
    }

    /// Called with each frame the buffer releases.
    public func onReleased(_ handler: @escaping StreamConsumer.Handler<TimeseriesFrame>) {
        state.withLock { $0.onReleased = handler }
    }

    var oldestHeldOrigin: Int64? { state.withLock { $0.buffer.oldestHeldOrigin } }

    func write(_ frame: TimeseriesFrame, origin: Int64, stream: StreamConsumer, onError: (any Error, String) -> Void) async {
        let (released, handler) = state.withLock { state in
            let filtered = state.parameters.map { frame.select($0) } ?? frame
            return (state.buffer.write(filtered, origin: origin), state.onReleased)
        }
        await deliver(released, handler, stream, onError)
    }

    func expire(now: ContinuousClock.Instant, _ stream: StreamConsumer, onError: (any Error, String) -> Void) async {
        let (released, handler) = state.withLock { ($0.buffer.expire(now: now).map { [$0] } ?? [], $0.onReleased) }
        await deliver(released, handler, stream, onError)
    }

    func flush(_ stream: StreamConsumer, onError: (any Error, String) -> Void) async {
        let (released, handler) = state.withLock { ($0.buffer.flush().map { [$0] } ?? [], $0.onReleased) }
        await deliver(released, handler, stream, onError)
    }

    private func deliver(
        _ frames: [TimeseriesFrame], _ handler: StreamConsumer.Handler<TimeseriesFrame>?, _ stream: StreamConsumer,
        _ onError: (any Error, String) -> Void
    ) async {
        guard let handler else { return }
        for frame in frames {
            do { try await handler(stream, frame) } catch { onError(error, "a buffer handler of stream \(stream.streamID)") }
        }
    }
}
