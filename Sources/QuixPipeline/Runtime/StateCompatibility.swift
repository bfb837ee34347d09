import Foundation
import QuixStreams

/// Keeps a changed pipeline from misreading the state an earlier version kept: each stateful
/// stage's `StateShape` is recorded in every partition's state, checked against the local
/// state directory before a pipeline starts (or a reload replaces it), and checked again on
/// each partition before its first message, for state restored from the changelog.
public enum StateCompatibility {
    /// The shapes recorded in the local state of pipeline `pipeline`, by stage id. Where
    /// partitions recorded different shapes for a stage, each is listed.
    public static func recorded(stateDirectory: String, pipeline: String) throws -> [String: [StateShape]] {
        let directory = "\(stateDirectory)/\(pipeline)"
        guard FileManager.default.fileExists(atPath: directory) else { return [:] }
        var shapes: [String: [StateShape]] = [:]
        for path in try StateInspector.partitions(under: directory) where !path.hasPrefix(directory + "/tables/") {
            let partition = try StateInspector.partition(at: path)
            guard partition.stores.contains(StateShape.store) else { continue }
            for entry in try StateInspector.entries(at: path, stream: StateShape.entry, store: StateShape.store) {
                guard case .string(let text) = entry.value, let shape = StateShape(recorded: text) else { continue }
                if shapes[entry.key]?.contains(shape) != true { shapes[entry.key, default: []].append(shape) }
            }
        }
        return shapes
    }

    /// What becomes of each stateful stage's recorded state with `pipeline` (`quixd plan`).
    public static func plan(recorded: [String: [StateShape]], pipeline: [String: StateShape]) -> [(stage: String, plan: StatePlan)] {
        // A stage recorded with several shapes is planned against one that differs, if any.
        var old: [String: StateShape] = [:]
        for (stage, shapes) in recorded { old[stage] = shapes.first { $0 != pipeline[stage] } ?? shapes.first }
        return StatePlan.plan(old: old, new: pipeline)
    }

    /// Refuses a pipeline whose local state has a stage of another shape, unless `reset` names
    /// it; the error names each such stage and what changed. When the pipeline replaces one
    /// that runs in this process (a reload), the state has the running one's shapes (its
    /// environments are open here, and LMDB lets a process open an environment once).
    public static func check(
        _ pipeline: Pipeline, replacing running: Pipeline? = nil, stateDirectory: String?, registry: StageRegistry, reset: Set<String>
    ) throws {
        guard let stateDirectory else { return }
        let shapes = StateShape.shapes(of: pipeline, registry: registry)
        guard !shapes.isEmpty else { return }
        let recorded =
            if let running, running.name == pipeline.name { StateShape.shapes(of: running, registry: registry).mapValues { [$0] } }
            else { try recorded(stateDirectory: stateDirectory, pipeline: pipeline.name) }
        var refused: [String] = []
        for (stage, plan) in plan(recorded: recorded, pipeline: shapes) {
            guard case .incompatible(let changes) = plan, !reset.contains(stage) else { continue }
            refused.append("\(stage) (\(changes.joined(separator: ", ")))")
        }
        guard !refused.isEmpty else { return }
        throw PipelineError(
            .state,
            "pipeline \(pipeline.name): the state kept in \(stateDirectory) has another shape for stage \(refused.joined(separator: "; ")); "
                + "quixd plan --state-dir \(stateDirectory) FILE shows it; start with --reset-state STAGE to drop that stage's state")
    }

    /// On a partition before its first message: a stage recorded with another shape has its
    /// state dropped when `reset` names it (changelogged as tombstones, like any change), and
    /// otherwise stops the pipeline; then every stage's shape is recorded.
    static func apply(_ shapes: [String: StateShape], reset: Set<String>, pipeline: String, to partition: PartitionStateAccess) throws {
        let records = partition.state(stream: StateShape.entry, store: StateShape.store)
        for (stage, shape) in shapes.sorted(by: { $0.key < $1.key }) {
            let stored = try records.get(stage, as: String.self).flatMap(StateShape.init(recorded:))
            if let stored, stored != shape {
                guard reset.contains(stage) else {
                    throw PipelineError(
                        .state,
                        "pipeline \(pipeline): partition \(partition.partition.partition) keeps state of stage \(stage) in another shape (\(shape.changes(from: stored).joined(separator: ", "))); start with --reset-state \(stage) to drop it")
                }
                try clear(store: stage, in: partition)
            }
            if stored != shape { records.set(stage, shape.recorded) }
        }
    }

    /// Removes every stream's keys in `store`, a batch of streams at a time.
    private static func clear(store: String, in partition: PartitionStateAccess) throws {
        var after: String?
        while true {
            let (ids, read) = try partition.streams(in: store, after: after, limit: 1_000)
            partition.clear(streams: ids, in: store)
            guard read == 1_000, let last = ids.last else { return }
            after = last
        }
    }
}
