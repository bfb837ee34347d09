import ArgumentParser
import Foundation
import QuixPipeline

/// `quixd plan`: what a changed pipeline does to the state its stages kept.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Say, per stateful stage, whether a changed pipeline keeps its state, starts it new, drops it, or cannot read it.",
        discussion: """
            quixd plan OLD.yaml NEW.yaml compares two versions of a pipeline file; quixd plan \
            --state-dir DIR NEW.yaml compares NEW with the shapes recorded in the local state. \
            A stage's state is incompatible when the stage keeps its id but its type, or an \
            option that shapes its state (a window's type and size, an aggregate, a column, ttl), \
            changed: quixd run refuses such a pipeline unless --reset-state STAGE drops that \
            stage's state. Exit status 1 when a stage is incompatible, 2 for a file with mistakes.
            """)

    @Option(name: .customLong("state-dir"), help: "Compare with the shapes recorded in this state directory instead of an old file.")
    var stateDirectory: String?

    @Argument(help: "OLD.yaml NEW.yaml, or NEW.yaml with --state-dir.")
    var files: [String]

    func validate() throws {
        if stateDirectory == nil, files.count != 2 { throw ValidationError("give OLD.yaml and NEW.yaml, or --state-dir DIR and NEW.yaml") }
        if stateDirectory != nil, files.count != 1 { throw ValidationError("with --state-dir, give only NEW.yaml") }
    }

    func run() throws {
        var pipelines: [Pipeline] = []
        for file in files {
            do {
                pipelines.append(try PipelineFiles.load(file, overrides: []))
            } catch {
                for mistake in error.errors { report(mistake.description) }
                throw ExitCode(2)
            }
        }
        let new = pipelines.last!
        let recorded: [String: [StateShape]]
        if let stateDirectory {
            recorded = try StateCompatibility.recorded(stateDirectory: stateDirectory, pipeline: new.name)
        } else {
            recorded = StateShape.shapes(of: pipelines[0], registry: compiledStages).mapValues { [$0] }
        }
        let plan = StateCompatibility.plan(recorded: recorded, pipeline: StateShape.shapes(of: new, registry: compiledStages))
        guard !plan.isEmpty else {
            print("no stateful stages")
            return
        }
        let width = max(5, plan.map(\.stage.count).max()!)
        print("stage".padding(toLength: width, withPad: " ", startingAt: 0) + "  state")
        for (stage, verdict) in plan {
            let words: String =
                switch verdict {
                case .kept: "kept"
                case .new: "new"
                case .dropped: "dropped (no longer read; it stays on disk and in the changelog)"
                case .incompatible(let changes): "incompatible: " + changes.joined(separator: ", ")
                }
            print(stage.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + words)
        }
        if plan.contains(where: { if case .incompatible = $0.plan { true } else { false } }) { throw ExitCode(1) }
    }
}
