import ArgumentParser
import QuixPipeline

extension FileSchema.File: ExpressibleByArgument {}

/// `quixd schema`: the JSON Schema of quixd's files, for editors.
struct Schema: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the JSON Schema (draft 2020-12) of pipeline, config or tests files.",
        discussion: """
            Made from the same declarations the loaders read files by (and, for stages' options, \
            the stages compiled into this quixd), so it cannot drift from them. For an editor with \
            the YAML language server, save it and start a file with \
            # yaml-language-server: $schema=./quixd-pipeline.schema.json \
            The loader checks more than a schema can say (expressions, cross-references, value \
            ranges of some options): quixd validate stays the judge.
            """)

    @Argument(help: "pipeline, config or tests.")
    var file: FileSchema.File = .pipeline

    func run() {
        print(FileSchema.text(file, registry: compiledStages))
    }
}
