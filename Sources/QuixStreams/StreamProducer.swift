import OrderedCollections
import QuixProtocol
import Synchronization

/// Writes one stream: its properties, parameter and event definitions, time-series data
/// (directly or through the stream's buffer) and events, and finally its end.
///
/// As the 0.5 producer does: the first data or definitions of a stream follow its properties (sent
/// again before data once 30 s have passed since they last went out); changed properties and
/// parameter definitions go out 20 ms after the last change, event definitions 200 ms after,
/// or sooner before the next data or on `flush`; data written through the buffer goes out when
/// the buffer releases it, and everything pending on `flush` and `close`. Write a stream from one task at a time: its messages go out in the
/// order of the calls. A buffer with a timeout is also released by the topic producer's clock;
/// a release and its messages stay together, so the order of rows holds.
public final class StreamProducer: Sendable {
    public let streamID: String
    /// The stream id's bytes, the key of every message of the stream.
    private let key: [UInt8]
    private let sender: Sender
    private let clock: BufferClock
    private let state: Mutex<State>
    /// Held while rows are released and sent, so that sends keep the order of releases.
    private let order = AsyncSerialLock()

    /// Longest stream id: the reference reserves 1,024 bytes for the key.
    public static let maximumStreamIDBytes = 1_024
    static let propertiesHeartbeat: Duration = .seconds(30)
    /// How long the reference waits after the last change before it sends properties and
    /// parameter definitions, and event definitions.
    static let propertiesDelay: Duration = .milliseconds(20)
    static let eventDefinitionsDelay: Duration = .milliseconds(200)

    struct State: Sendable {
        var properties = StreamProperties()
        /// When a pending change was last made (nil: nothing pending).
        var propertiesChanged: ContinuousClock.Instant?
        var propertiesSentAt: ContinuousClock.Instant?
        var parameters = DefinitionsTree<ParameterGroup>()
        var parametersChanged: ContinuousClock.Instant?
        var events = DefinitionsTree<EventGroup>()
        var eventsChanged: ContinuousClock.Instant?
        var buffer = TimeseriesBuffer(dropsRowsWithoutValues: true)
        var defaultTags: OrderedDictionary<String, String> = [:]
        var epoch: Int64 = 0
        var valueTypes: [String: ValueType] = [:]
        var closed = false
        /// The oldest origin of what this stream holds unsent (changes waiting for their delay,
        /// buffered rows): its partition commits no further until that is sent.
        var held: DeliveryOrigin?
    }

    enum ValueType: String, Sendable { case numeric, string, binary }

    init(id: String, sender: Sender, clock: BufferClock) throws(StreamError) {
        guard !id.isEmpty else { throw StreamError(.invalidStreamID, "a stream id cannot be empty") }
        guard id.utf8.count <= Self.maximumStreamIDBytes else {
            throw StreamError(.invalidStreamID, "a stream id of \(id.utf8.count) bytes is longer than \(Self.maximumStreamIDBytes)")
        }
        streamID = id
        key = Array(id.utf8)
        self.sender = sender
        self.clock = clock
        state = Mutex(State())
    }

    public var isClosed: Bool { state.withLock { $0.closed } }

    // MARK: Properties

    /// The stream's properties as they will be (or were) sent.
    public var properties: StreamProperties { state.withLock { $0.properties } }

    /// Changes the properties; they are sent with the next flush or before the next data.
    public func updateProperties(_ change: (inout StreamProperties) -> Void) throws(StreamError) {
        try state.withLock { (state) throws(StreamError) in
            try Self.checkOpen(state, streamID)
            let before = state.properties
            change(&state.properties)
            guard state.properties != before else { return }
            state.propertiesChanged = .now
            hold(DeliveryOrigin.current, &state)
        }
        clock.watch(self)
    }

    // MARK: Definitions

    /// Adds a parameter definition at `location` (`/` or a path such as `/chassis/engine`).
    public func addParameterDefinition(_ definition: ParameterDefinition, location: String = "/") throws(StreamError) {
        try state.withLock { (state) throws(StreamError) in
            try Self.checkOpen(state, streamID)
            try state.parameters.add(definition, at: location)
            state.parametersChanged = .now
            hold(DeliveryOrigin.current, &state)
        }
        clock.watch(self)
    }

    /// The parameter definitions as they will be (or were) sent.
    public var parameterDefinitions: ParameterDefinitions { state.withLock { $0.parameters.definitions } }

    /// Replaces every parameter definition (forwarding another stream's tree).
    public func setParameterDefinitions(_ definitions: ParameterDefinitions) throws(StreamError) {
        try state.withLock { (state) throws(StreamError) in
            try Self.checkOpen(state, streamID)
            guard state.parameters.definitions != definitions else { return }
            state.parameters.definitions = definitions
            state.parametersChanged = .now
            hold(DeliveryOrigin.current, &state)
        }
        clock.watch(self)
    }

    /// Replaces every event definition (forwarding another stream's tree).
    public func setEventDefinitions(_ definitions: EventDefinitions) throws(StreamError) {
        try state.withLock { (state) throws(StreamError) in
            try Self.checkOpen(state, streamID)
            guard state.events.definitions != definitions else { return }
            state.events.definitions = definitions
            state.eventsChanged = .now
            hold(DeliveryOrigin.current, &state)
        }
        clock.watch(self)
    }

    /// Adds an event definition at `location`.
    public func addEventDefinition(_ definition: EventDefinition, location: String = "/") throws(StreamError) {
        try state.withLock { (state) throws(StreamError) in
            try Self.checkOpen(state, streamID)
            try state.events.add(definition, at: location)
            state.eventsChanged = .now
            hold(DeliveryOrigin.current, &state)
        }
        clock.watch(self)
    }

    // MARK: Time-series data

    /// Added to relative timestamps of buffer rows and published frames (ns since the epoch).
    public var epoch: Int64 {
        get { state.withLock { $0.epoch } }
        set { state.withLock { $0.epoch = newValue } }
    }

    /// When the stream's buffer releases rows. By default it holds nothing: each write goes out.
    /// With a timeout, the topic producer's clock releases rows that waited that long.
    public func configureBuffer(_ configuration: TimeseriesBufferConfiguration, defaultTags: OrderedDictionary<String, String> = [:]) {
        state.withLock { state in
            state.buffer.configuration = configuration
            state.defaultTags = defaultTags
        }
    }

    /// Starts a buffer row at `timestamp` ns (plus `epoch`).
    public func addTimestamp(nanoseconds timestamp: Int64) -> RowBuilder {
        RowBuilder(stream: self, timestamp: timestamp)
    }

    /// Writes rows through the stream's buffer: they go out when it releases them.
    public func write(_ frame: TimeseriesFrame) async throws {
        try await order.withLock { try await writeInOrder(frame) }
    }

    private func writeInOrder(_ frame: TimeseriesFrame) async throws {
        let current = DeliveryOrigin.current
        let (released, waiting, origin): ([TimeseriesFrame], Bool, DeliveryOrigin?) = try state.withLock { (state) throws(StreamError) in
            try Self.checkOpen(state, streamID)
            try Self.checkTypes(frame, &state)
            var frame = Self.shifted(frame, by: state.epoch)
            for (tag, value) in state.defaultTags {
                let column = frame.tags[tag] ?? Array(repeating: nil, count: frame.rowCount)
                frame.setTags(tag, column.map { $0 ?? value })
            }
            // Rows whose timeout passed go first, should the clock not have come round yet.
            let now = ContinuousClock.now
            hold(current, &state)
            let expired = state.buffer.expire(now: now).map { [$0] } ?? []
            let released = expired + state.buffer.write(frame, origin: current?.offset, now: now)
            return (released, state.buffer.nextDeadline != nil, state.held)
        }
        if waiting { clock.watch(self) }  // rows wait for the buffer's timeout
        for frame in released { try await send(frame, origin: origin) }
        releaseSent()
    }

    /// Publishes rows at once, not through the buffer: duplicate rows (same timestamp and tags)
    /// merged, rows without values dropped.
    public func publish(_ frame: TimeseriesFrame) async throws {
        try await order.withLock { try await publishInOrder(frame) }
    }

    private func publishInOrder(_ frame: TimeseriesFrame) async throws {
        let current = DeliveryOrigin.current
        let (ready, origin): (TimeseriesFrame?, DeliveryOrigin?) = try state.withLock { (state) throws(StreamError) in
            try Self.checkOpen(state, streamID)
            try Self.checkTypes(frame, &state)
            let merged = Self.shifted(frame, by: state.epoch).mergingDuplicateRows()
            let origin = state.held ?? current
            if merged.rowsHaveValues { return (merged, origin) }  // every row stays: no copy
            let rows = (0..<merged.rowCount).filter { TimeseriesRow(frame: merged, index: $0).hasValues }
            return (rows.isEmpty ? nil : merged.rows(rows), origin)
        }
        guard let ready else { return }
        try await send(ready, origin: origin)
        releaseSent()
    }

    // MARK: Events

    /// Starts an event at `timestamp` ns (plus `epoch`).
    public func addEvent(atNanoseconds timestamp: Int64) -> EventBuilder {
        EventBuilder(stream: self, timestamp: timestamp)
    }

    /// Publishes events in one message.
    public func publish(_ events: [EventData]) async throws {
        try await order.withLock { try await publishInOrder(events) }
    }

    private func publishInOrder(_ events: [EventData]) async throws {
        let current = DeliveryOrigin.current
        let (epoch, origin) = try state.withLock { (state) throws(StreamError) -> (Int64, DeliveryOrigin?) in
            try Self.checkOpen(state, streamID)
            return (state.epoch, state.held ?? current)
        }
        guard !events.isEmpty else { return }
        try await send(.eventData(events.map { event in
            var event = event
            event.timestamp &+= epoch
            return event
        }), origin: origin)
        releaseSent()
    }

    // MARK: Flush and close

    /// Sends changed properties and definitions, and what the buffer holds.
    public func flush() async throws {
        try await order.withLock { try await flushInOrder() }
    }

    /// Flushes, sends the end of the stream, and refuses anything more.
    public func close(_ endType: StreamEndType = .closed) async throws {
        try await order.withLock {
            let current = DeliveryOrigin.current
            let origin = try state.withLock { (state) throws(StreamError) in
                try Self.checkOpen(state, streamID)
                return state.held ?? current
            }
            try await flushInOrder()
            try await sender.send(.streamEnd(endType), key: key, origin: origin)
            state.withLock { $0.closed = true }
            releaseSent()
        }
    }

    private func flushInOrder() async throws {
        let current = DeliveryOrigin.current
        let (released, origin) = state.withLock { ($0.buffer.flush(), $0.held ?? current) }
        try await sendPending(beforeData: released != nil, origin: origin)
        if let released { try await sender.send(released, key: key, origin: origin) }
        releaseSent()
    }

    /// When the clock has something to do for this stream: send changed properties or
    /// definitions, or release rows after the buffer's timeout. Nil when nothing waits.
    var nextDeadline: ContinuousClock.Instant? {
        state.withLock { state in
            guard !state.closed else { return nil }
            return [
                state.buffer.nextDeadline, state.propertiesChanged.map { $0 + Self.propertiesDelay },
                state.parametersChanged.map { $0 + Self.propertiesDelay }, state.eventsChanged.map { $0 + Self.eventDefinitionsDelay },
            ].compactMap { $0 }.min()
        }
    }

    /// Sends what is due at `now` (called by the clock): changed properties and definitions
    /// whose delay passed, and rows the buffer held longer than its timeout.
    func sendDue(now: ContinuousClock.Instant) async throws {
        try await order.withLock {
            let (dueChanges, released, origin) = state.withLock { state -> (Bool, TimeseriesFrame?, DeliveryOrigin?) in
                guard !state.closed else { return (false, nil, nil) }
                let due = state.propertiesChanged.map { $0 + Self.propertiesDelay <= now } == true
                    || state.parametersChanged.map { $0 + Self.propertiesDelay <= now } == true
                    || state.eventsChanged.map { $0 + Self.eventDefinitionsDelay <= now } == true
                return (due, state.buffer.expire(now: now), state.held)
            }
            if released != nil || dueChanges { try await sendPending(beforeData: released != nil, origin: origin) }
            if let released { try await sender.send(released, key: key, origin: origin) }
            releaseSent()
        }
    }

    // MARK: Sending

    /// Sends `model` after whatever must precede it: changed (or stale) properties, changed
    /// definitions.
    private func send(_ model: QuixModel, origin: DeliveryOrigin?) async throws {
        try await sendPending(beforeData: true, origin: origin)
        try await sender.send(model, key: key, origin: origin)
    }

    /// Sends the rows of `frame` after whatever must precede them.
    private func send(_ frame: TimeseriesFrame, origin: DeliveryOrigin?) async throws {
        try await sendPending(beforeData: true, origin: origin)
        try await sender.send(frame, key: key, origin: origin)
    }

    /// Takes a hold for `origin` if nothing is held: what is now pending belongs to it.
    private func hold(_ origin: DeliveryOrigin?, _ state: inout State) {
        guard state.held == nil, let origin else { return }
        state.held = origin
        origin.tracker.hold(self, origin: origin.offset)
    }

    /// After sends (whose deliveries are tracked from now on): the hold moves to the oldest row
    /// the buffer keeps, stays while changes wait for their delay, or ends.
    private func releaseSent() {
        state.withLock { state in
            guard let held = state.held else { return }
            if state.propertiesChanged != nil || state.parametersChanged != nil || state.eventsChanged != nil { return }
            if let oldest = state.buffer.oldestHeldOrigin {
                state.held = DeliveryOrigin(tracker: held.tracker, offset: oldest)
                held.tracker.hold(self, origin: oldest)
            } else {
                state.held = nil
                held.tracker.hold(self, origin: nil)
            }
        }
    }

    /// Sends changed properties and definitions. Before data or definitions, properties never
    /// sent or last sent longer ago than the heartbeat go first (a StreamEnd alone does not
    /// need them, as in the reference).
    private func sendPending(beforeData: Bool, origin: DeliveryOrigin?) async throws {
        let now = ContinuousClock.now
        let pending: [QuixModel] = state.withLock { state in
            var models: [QuixModel] = []
            let needsProperties = beforeData || state.parametersChanged != nil || state.eventsChanged != nil
            let stale = needsProperties && state.propertiesSentAt.map { now - $0 > Self.propertiesHeartbeat } ?? true
            if state.propertiesChanged != nil || stale {
                models.append(.streamProperties(state.properties))
                state.propertiesChanged = nil
                state.propertiesSentAt = now
            }
            if state.parametersChanged != nil {
                models.append(.parameterDefinitions(state.parameters.definitions))
                state.parametersChanged = nil
            }
            if state.eventsChanged != nil {
                models.append(.eventDefinitions(state.events.definitions))
                state.eventsChanged = nil
            }
            return models
        }
        for model in pending { try await sender.send(model, key: key, origin: origin) }
    }

    private static func checkOpen(_ state: State, _ id: String) throws(StreamError) {
        guard !state.closed else { throw StreamError(.closed, "stream \"\(id)\" is closed") }
    }

    /// A parameter keeps the value type it was first written with.
    private static func checkTypes(_ frame: TimeseriesFrame, _ state: inout State) throws(StreamError) {
        // One lookup per column and no arrays: this runs for every frame sent.
        func check(_ names: some Sequence<String>, _ type: ValueType) throws(StreamError) {
            for name in names {
                guard let known = state.valueTypes[name] else {
                    state.valueTypes[name] = type
                    continue
                }
                if known != type {
                    throw StreamError(.typeChanged, "parameter \"\(name)\" was written as \(known.rawValue), now as \(type.rawValue)")
                }
            }
        }
        try check(frame.numeric.keys, .numeric)
        try check(frame.strings.keys, .string)
        try check(frame.binary.keys, .binary)
    }

    private static func shifted(_ frame: TimeseriesFrame, by epoch: Int64) -> TimeseriesFrame {
        guard epoch != 0 else { return frame }
        var shifted = frame
        shifted.timestamps = frame.timestamps.map { $0 &+ epoch }
        return shifted
    }
}

/// One buffer row: `stream.addTimestamp(nanoseconds:).addValue(...).addTag(...).publish()`.
public struct RowBuilder: Sendable {
    let stream: StreamProducer
    private var frame: TimeseriesFrame

    init(stream: StreamProducer, timestamp: Int64) {
        self.stream = stream
        frame = TimeseriesFrame(timestamps: [timestamp])
    }

    public func addValue(_ name: String, _ value: Double) -> RowBuilder { with { $0[name] = [value] } }
    public func addValue(_ name: String, _ value: String) -> RowBuilder { with { $0.setStrings(name, [value]) } }
    public func addValue(_ name: String, _ value: [UInt8]) -> RowBuilder { with { $0.setBinary(name, [value]) } }
    public func addTag(_ name: String, _ value: String) -> RowBuilder { with { $0.setTags(name, [value]) } }

    /// Writes the row through the stream's buffer.
    public func publish() async throws { try await stream.write(frame) }

    private func with(_ change: (inout TimeseriesFrame) -> Void) -> RowBuilder {
        var copy = self
        change(&copy.frame)
        return copy
    }
}

/// Events at one timestamp: `stream.addEvent(atNanoseconds:).addValue(id, value).addTag(...).publish()`
/// sends one message with an event per value, all with the same timestamp and tags.
public struct EventBuilder: Sendable {
    let stream: StreamProducer
    let timestamp: Int64
    private var values: [(id: String, value: String)] = []
    private var tags: OrderedDictionary<String, String> = [:]

    init(stream: StreamProducer, timestamp: Int64) {
        self.stream = stream
        self.timestamp = timestamp
    }

    public func addValue(_ id: String, _ value: String) -> EventBuilder {
        var copy = self
        copy.values.append((id, value))
        return copy
    }

    public func addTag(_ name: String, _ value: String) -> EventBuilder {
        var copy = self
        copy.tags[name] = value
        return copy
    }

    public func publish() async throws {
        try await stream.publish(values.map { EventData(id: $0.id, timestamp: timestamp, value: $0.value, tags: tags) })
    }
}
