import QuixStreams

/// A pipeline's stages, made from its file, in order: what `quixd run` runs per stream and
/// `quixd test` runs without a broker.
public struct StageChain: Sendable {
    public struct Step: Sendable {
        public let id: String
        public let stage: any Stage
        /// Whether the stage keeps state (in the store named by its id).
        public let isStateful: Bool

        /// The stage's `ttl` in nanoseconds, when it has one.
        var ttl: Int64? { (stage as? ExpiringStage)?.ttl }
    }

    public let pipeline: String
    public let steps: [Step]
    /// Whether a stage keeps state (the pipeline then needs a state directory).
    public let isStateful: Bool

    public init(_ pipeline: Pipeline, file: String, registry: StageRegistry) throws(ConfigErrors) {
        try self.init(name: pipeline.name, stages: pipeline.stages, file: file, registry: registry)
    }

    /// Stages declared in code (streaming data frames): `file` names them in errors.
    public init(name: String, stages: [Pipeline.Stage], file: String, registry: StageRegistry) throws(ConfigErrors) {
        pipeline = name
        var steps: [Step] = []
        for (index, declared) in stages.enumerated() {
            steps.append(
                Step(
                    id: declared.id, stage: try registry.make(declared, file: file, path: "spec.stages[\(index)]"),
                    isStateful: registry[declared.uses]?.isStateful == true))
        }
        self.steps = steps
        isStateful = steps.contains(where: \.isStateful)
    }

    /// The contexts of one stream's stages. `state` gives the stream's state in a store (nil
    /// where the pipeline keeps none); `tables` are the pipeline's tables by name.
    public func contexts(
        streamID: String, state: (@Sendable (String) throws -> StreamState)?, tables: [String: LookupTable] = [:]
    ) -> StreamContexts {
        contexts(streamID: streamID, state: state, tables: tables, partition: nil, joins: [:])
    }

    /// The contexts of one stream's stages in a running pipeline: `partition` gives the state of
    /// the stream's partition, `joins` are the readers of the join stages' topics by stage id.
    func contexts(
        streamID: String, state: (@Sendable (String) throws -> StreamState)?, tables: [String: LookupTable],
        partition: (@Sendable () throws -> PartitionStateAccess)?, joins: [String: JoinSource]
    ) -> StreamContexts {
        let emitted = EmittedEffects()
        return StreamContexts(
            contexts: steps.map {
                StageContext(
                    pipeline: pipeline, stage: $0.id, streamID: streamID, state: state, emitted: emitted, tables: tables, partition: partition,
                    join: joins[$0.id])
            },
            emitted: emitted)
    }

    /// Runs a frame through every stage; a frame left without rows stops early.
    public func process(_ frame: consuming TimeseriesFrame, _ contexts: StreamContexts) throws(PipelineError) -> TimeseriesFrame {
        var current = frame
        for (index, step) in steps.enumerated() {
            do {
                current = try step.stage.process(consume current, contexts.contexts[index])
            } catch {
                throw PipelineError.at(stage: step.id, error)
            }
            if current.rowCount == 0 { break }
        }
        return current
    }

    /// Runs an event through every stage; nil when a stage dropped it.
    public func process(_ event: EventData, _ contexts: StreamContexts) throws(PipelineError) -> EventData? {
        var current = event
        for (index, step) in steps.enumerated() {
            do {
                guard let next = try step.stage.process(current, contexts.contexts[index]) else { return nil }
                current = next
            } catch {
                throw PipelineError.at(stage: step.id, error)
            }
        }
        return current
    }

    /// The parameter definitions of the output, given those of the input.
    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions {
        steps.reduce(definitions) { $1.stage.definitions($0) }
    }
}

/// The stage contexts of one stream, and what its stages emitted besides frames.
public final class StreamContexts: Sendable {
    let contexts: [StageContext]
    public let emitted: EmittedEffects

    init(contexts: [StageContext], emitted: EmittedEffects) {
        self.contexts = contexts
        self.emitted = emitted
    }
}
