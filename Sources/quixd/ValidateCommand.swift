import ArgumentParser
import QuixPipeline

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check pipeline files without a broker.",
        discussion: """
            Every mistake is reported on standard error as FILE:LINE:COLUMN: KEY PATH: what was \
            found and what was expected. Exits 0 when every file is valid, 2 otherwise. \
            ${VAR} and ${VAR:default} are filled in from the environment, and --set overrides \
            applied, as quixd run does.
            """)

    @Argument(help: "Pipeline files.") var files: [String]
    @Option(name: .customLong("set"), help: "Override a key: path.to.key=value (repeatable), as quixd run takes it.")
    var overrides: [String] = []

    func validate() throws {
        if files.isEmpty { throw ValidationError("name at least one pipeline file") }
    }

    func run() throws {
        var failed = false
        for file in files {
            do {
                let pipeline = try PipelineLoader.load(file: file, overrides: overrides, stages: compiledStages)
                print("\(file): ok (pipeline \(pipeline.name): \(pipeline.input.topic) → \(pipeline.stages.count) stages → \(pipeline.outputs.map(\.topic).joined(separator: ", ")))")
            } catch {
                failed = true
                for mistake in error.errors { report(mistake.description) }
            }
        }
        if failed { throw ExitCode(2) }
    }
}
