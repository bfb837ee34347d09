import Foundation
import Yams

/// What pipeline files and the daemon config share: reading the file, composing the YAML into
/// nodes that keep their positions, applying `--set` overrides, and reading the result with a
/// `NodeReader` that collects every mistake.
enum ConfigDocument {
    /// The text of the file at `path`.
    static func text(of path: String) throws(ConfigErrors) -> String {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigErrors(errors: [ConfigError(file: path, line: 0, column: 0, keyPath: "", message: "no such file")])
        }
        do {
            return try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigErrors(errors: [ConfigError(file: path, line: 0, column: 0, keyPath: "", message: "cannot read the file: \(error.localizedDescription)")])
        }
    }

    /// Composes `text` and applies `overrides` in order, then reads it with `read`; throws every
    /// mistake found, in file order.
    static func read<Value>(
        _ text: String, file: String, environment: [String: String], overrides: [String],
        _ read: (Node, inout NodeReader) -> Value?
    ) throws(ConfigErrors) -> Value {
        var root = try compose(text, file: file)
        var overrideErrors: [ConfigError] = []
        for override in overrides {
            do throws(ConfigError) {
                try Override(override).apply(to: &root)
            } catch {
                overrideErrors.append(error)
            }
        }
        guard overrideErrors.isEmpty else { throw ConfigErrors(errors: overrideErrors) }
        var reader = NodeReader(file: file, environment: environment)
        let value = read(root, &reader)
        guard reader.errors.isEmpty, let value else {
            throw ConfigErrors(errors: reader.errors.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
        }
        return value
    }

    private static func compose(_ text: String, file: String) throws(ConfigErrors) -> Node {
        do {
            guard let composed = try Yams.compose(yaml: text) else {
                throw ConfigErrors(errors: [ConfigError(file: file, line: 0, column: 0, keyPath: "", message: "the file is empty")])
            }
            return composed
        } catch let errors as ConfigErrors {
            throw errors
        } catch let error as YamlError {
            throw ConfigErrors(errors: [syntaxError(error, file)])
        } catch {
            throw ConfigErrors(errors: [ConfigError(file: file, line: 0, column: 0, keyPath: "", message: "not YAML: \(error)")])
        }
    }

    private static func syntaxError(_ error: YamlError, _ file: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            ConfigError(file: file, line: mark.line, column: mark.column, keyPath: "", message: "YAML syntax: \(problem)")
        default:
            ConfigError(file: file, line: 0, column: 0, keyPath: "", message: "YAML syntax: \(error)")
        }
    }
}
