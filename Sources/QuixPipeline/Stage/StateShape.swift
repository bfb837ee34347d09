import Foundation
import QuixStreams

/// What a stateful stage's stored state means: the stage's type and the options that shape it
/// (`StageDescriptor.stateShapedBy`: a window's type and size, an aggregate, a column, `ttl`),
/// defaults filled in. A pipeline records each stage's shape in its state; a changed pipeline
/// whose stage keeps its id but not its shape would misread that state, so it is refused
/// (`quixd plan` says so beforehand; `--reset-state` drops that stage's state instead).
public struct StateShape: Sendable, Hashable, Codable, CustomStringConvertible {
    public let uses: String
    /// Option name to its value as text, for the options that shape the state.
    public let options: [String: String]

    /// Where shapes are recorded: a store of the partition's state, under a stream id no Quix
    /// stream has, one key per stage id.
    public static let store = "quixd.stages"
    public static let entry = ""

    public init(uses: String, options: [String: String]) {
        self.uses = uses
        self.options = options
    }

    /// The shape of a declared stage; nil for a stage that keeps no state (or is unknown).
    public init?(_ stage: Pipeline.Stage, registry: StageRegistry) {
        guard let descriptor = registry[stage.uses], descriptor.isStateful else { return nil }
        var options: [String: String] = [:]
        for name in descriptor.stateShapedBy {
            if let value = stage.options[name] {
                options[name] = Self.text(value)
            } else if let fallback = descriptor.options.first(where: { $0.name == name })?.defaultValue {
                options[name] = fallback
            }
        }
        self.init(uses: stage.uses, options: options)
    }

    /// The shapes of a pipeline's stateful stages, by stage id.
    public static func shapes(of pipeline: Pipeline, registry: StageRegistry) -> [String: StateShape] {
        var shapes: [String: StateShape] = [:]
        for stage in pipeline.stages { shapes[stage.id] = StateShape(stage, registry: registry) }
        return shapes
    }

    /// `window aggregates=[mean] column=speed size=10s type=tumbling`
    public var description: String {
        ([uses] + options.keys.sorted().map { "\($0)=\(options[$0]!)" }).joined(separator: " ")
    }

    /// The shape as it is recorded in the state: JSON with sorted keys.
    public var recorded: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// Reads a recorded shape back.
    public init?(recorded text: String) {
        guard let shape = try? JSONDecoder().decode(StateShape.self, from: Data(text.utf8)) else { return nil }
        self = shape
    }

    /// What differs from `old`, in words (`size 10s → 20s`); empty when the shapes are the same.
    public func changes(from old: StateShape) -> [String] {
        if uses != old.uses { return ["uses \(old.uses) → \(uses)"] }
        return Set(options.keys).union(old.options.keys).sorted().compactMap { name in
            let (before, after) = (old.options[name], options[name])
            guard before != after else { return nil }
            return "\(name) \(before ?? "none") → \(after ?? "none")"
        }
    }

    private static func text(_ value: ConfigValue) -> String {
        switch value.kind {
        case .scalar(let text): text
        case .list(let items): "[" + items.map(text).joined(separator: ",") + "]"
        case .map(let entries): "{" + entries.keys.sorted().map { "\($0):\(text(entries[$0]!))" }.joined(separator: ",") + "}"
        }
    }
}

/// What becomes of each stateful stage's state when a pipeline changes (`quixd plan`).
public enum StatePlan: Sendable, Hashable {
    /// The stage keeps its id and its shape: its state is used as it is.
    case kept
    /// A stage with no state yet.
    case new
    /// The stage is gone (or keeps no state now): its state is no longer read.
    case dropped
    /// The stage keeps its id with another shape: its state would be misread.
    case incompatible([String])

    /// Each stage of `old` and `new`, by id, in id order.
    public static func plan(old: [String: StateShape], new: [String: StateShape]) -> [(stage: String, plan: StatePlan)] {
        Set(old.keys).union(new.keys).sorted().map { stage -> (stage: String, plan: StatePlan) in
            guard let before = old[stage] else { return (stage, .new) }
            guard let after = new[stage] else { return (stage, .dropped) }
            let changes = after.changes(from: before)
            return (stage, changes.isEmpty ? .kept : .incompatible(changes))
        }
    }
}
