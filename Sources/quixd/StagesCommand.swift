import ArgumentParser
import QuixPipeline

struct Stages: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the stages compiled into quixd and their options.")

    func run() {
        var text = ""
        for descriptor in compiledStages.descriptors {
            text += "\(descriptor.name)\(descriptor.isStateful ? " (stateful)" : ""): \(descriptor.summary)\n"
            for option in descriptor.options {
                let flags = option.required ? "required" : option.defaultValue.map { "default \($0)" } ?? "optional"
                text += "  \(option.name): \(option.type), \(flags): \(option.summary)\n"
            }
        }
        print(text, terminator: "")
    }
}
