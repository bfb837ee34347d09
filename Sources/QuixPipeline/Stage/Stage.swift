import QuixStreams
import Synchronization

/// One step of a pipeline: it takes a stream's time-series frames and events, in the stream's
/// order, and passes on what the next step (or the output) gets. A stage is made once per
/// pipeline from its options and shared by every stream; what it remembers per stream lives in
/// the stream's state (`StageContext.state()`), which is checkpointed with the input offsets.
///
/// Throwing stops the message: the pipeline's `onError` policy decides what happens to it, and
/// state changes made for it are rolled back.
public protocol Stage: Sendable {
    /// The frame to pass on for `frame`: the same rows with columns added or removed, fewer rows,
    /// or other rows altogether (a window's aggregates). A frame without rows stops there.
    /// The frame is the stage's own (`consuming`): a stage that adds a column to it changes it
    /// in place, without copying its columns.
    func process(_ frame: consuming TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame

    /// The event to pass on for `event`, or nil to drop it. The default passes it on.
    func process(_ event: EventData, _ context: StageContext) throws -> EventData?

    /// The parameter definitions of what this stage passes on, given those of what it receives:
    /// a stage that renames or removes columns says so here. The default keeps them; columns a
    /// stage adds are defined by the pipeline when they first appear.
    func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions
}

extension Stage {
    public func process(_ event: EventData, _ context: StageContext) throws -> EventData? { event }
    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions { definitions }
}

/// What a stage sees of the stream it works on: the stream's id, its state in the stage's own
/// store, and a way to send events and properties downstream besides the frames it returns.
public final class StageContext: Sendable {
    public let pipeline: String
    /// The stage's id in the pipeline (also the name of its state store).
    public let stage: String
    public let streamID: String
    private let stateProvider: (@Sendable (String) throws -> StreamState)?
    private let emitted: EmittedEffects
    private let tables: [String: LookupTable]
    private let partitionProvider: (@Sendable () throws -> PartitionStateAccess)?
    private let join: JoinSource?

    /// - Parameters:
    ///   - state: gives the stream's state in a store; nil where the pipeline keeps none.
    ///   - tables: the pipeline's tables by name.
    ///   - partition: gives the state of the stream's partition (for what a stage keeps per
    ///     partition); nil where the pipeline keeps none.
    init(
        pipeline: String, stage: String, streamID: String, state: (@Sendable (String) throws -> StreamState)?, emitted: EmittedEffects,
        tables: [String: LookupTable] = [:], partition: (@Sendable () throws -> PartitionStateAccess)? = nil, join: JoinSource? = nil
    ) {
        self.pipeline = pipeline
        self.stage = stage
        self.streamID = streamID
        stateProvider = state
        self.emitted = emitted
        self.tables = tables
        partitionProvider = partition
        self.join = join
    }

    public convenience init(
        pipeline: String, stage: String, streamID: String, state: (@Sendable (String) throws -> StreamState)?, emitted: EmittedEffects,
        tables: [String: LookupTable] = [:]
    ) {
        self.init(pipeline: pipeline, stage: stage, streamID: streamID, state: state, emitted: emitted, tables: tables, partition: nil, join: nil)
    }

    /// The state of the stream's partition, for what a stage keeps per partition.
    public func partitionState() throws -> PartitionStateAccess {
        guard let partitionProvider else {
            throw PipelineError(.configuration, "stage \"\(stage)\" keeps state, but pipeline \"\(pipeline)\" has no state directory")
        }
        return try partitionProvider()
    }

    /// The reader of this join stage's other topic.
    func joinSource() throws -> JoinSource {
        guard let join else {
            throw PipelineError(.configuration, "join \"\(stage)\" reads its topic only in a running pipeline (quixd run) or in quixd test")
        }
        return join
    }

    /// The pipeline's table `name` (`spec.tables`).
    public func table(_ name: String) throws -> LookupTable {
        guard let table = tables[name] else { throw PipelineError(.configuration, "pipeline \"\(pipeline)\" has no table \"\(name)\"") }
        return table
    }

    /// The stream's state in this stage's store.
    public func state() throws -> StreamState {
        guard let stateProvider else {
            throw PipelineError(.configuration, "stage \"\(stage)\" keeps state, but pipeline \"\(pipeline)\" has no state directory")
        }
        return try stateProvider(stage)
    }

    /// Sends an event on the stream, after the frame being processed.
    public func emit(_ event: EventData) { emitted.append(event: event) }

    /// Sets a metadata entry of the stream's properties downstream.
    public func setMetadata(_ key: String, _ value: String) { emitted.setMetadata(key, value) }
}

/// Events and property changes stages sent while a message was processed, in order.
public final class EmittedEffects: Sendable {
    private let effects = Mutex<(events: [EventData], metadata: [(String, String)])>(([], []))

    public init() {}

    func append(event: EventData) { effects.withLock { $0.events.append(event) } }
    func setMetadata(_ key: String, _ value: String) { effects.withLock { $0.metadata.append((key, value)) } }

    /// What was sent since the last call, emptied.
    public func take() -> (events: [EventData], metadata: [(key: String, value: String)]) {
        effects.withLock { effects in
            defer { effects = ([], []) }
            return (effects.events, effects.metadata.map { (key: $0.0, value: $0.1) })
        }
    }
}
