import Foundation
import Yams

/// Reads a composed YAML document into typed values and collects every mistake with its file,
/// line, column and key path, instead of stopping at the first. Scalars go through `${VAR}` and
/// `${VAR:default}` interpolation from the environment first.
struct NodeReader {
    let file: String
    let environment: [String: String]
    private(set) var errors: [ConfigError] = []

    init(file: String, environment: [String: String]) {
        self.file = file
        self.environment = environment
    }

    mutating func fail(_ node: Node?, _ path: String, _ message: String) {
        let mark = node?.mark
        errors.append(ConfigError(file: file, line: mark?.line ?? 0, column: mark?.column ?? 0, keyPath: path, message: message))
    }

    mutating func record(_ more: [ConfigError]) { errors += more }

    /// The keys of a mapping, each checked against `allowed` (an unknown key is an error, with a
    /// near miss suggested) and `required`.
    mutating func mapping(_ node: Node, _ path: String, allowed: [String], required: [String] = []) -> [String: Node]? {
        guard let mapping = node.mapping else {
            fail(node, path, "expected a mapping (key: value lines), found \(describe(node))")
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                fail(keyNode, path, "expected a plain key, found \(describe(keyNode))")
                continue
            }
            let keyPath = path.isEmpty ? key : "\(path).\(key)"
            guard allowed.contains(key) else {
                let hint = nearest(key, in: allowed).map { "; did you mean \"\($0)\"?" } ?? "; expected one of \(allowed.joined(separator: ", "))"
                fail(keyNode, keyPath, "unknown key\(hint)")
                continue
            }
            result[key] = value
        }
        for key in required where result[key] == nil {
            fail(node, path.isEmpty ? key : "\(path).\(key)", "missing; it is required")
        }
        return result
    }

    mutating func sequence(_ node: Node, _ path: String) -> [Node]? {
        guard let sequence = node.sequence else {
            fail(node, path, "expected a list (lines starting with -), found \(describe(node))")
            return nil
        }
        return Array(sequence)
    }

    /// A scalar's text, interpolated.
    mutating func string(_ node: Node, _ path: String) -> String? {
        guard let scalar = node.scalar else {
            fail(node, path, "expected a value, found \(describe(node))")
            return nil
        }
        return interpolate(scalar.string, node, path)
    }

    mutating func nonEmptyString(_ node: Node, _ path: String) -> String? {
        guard let text = string(node, path) else { return nil }
        guard !text.isEmpty else {
            fail(node, path, "expected a non-empty value, found an empty one")
            return nil
        }
        return text
    }

    mutating func int(_ node: Node, _ path: String, in range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, path) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            fail(node, path, "expected a whole number in \(range.lowerBound)...\(range.upperBound), found \"\(text)\"")
            return nil
        }
        return value
    }

    mutating func bool(_ node: Node, _ path: String) -> Bool? {
        guard let text = string(node, path) else { return nil }
        switch text {
        case "true": return true
        case "false": return false
        default:
            fail(node, path, "expected true or false, found \"\(text)\"")
            return nil
        }
    }

    /// A duration such as `250ms`, `10s`, `5m`, `1h` (or `500us`); a positive one.
    mutating func duration(_ node: Node, _ path: String) -> Duration? {
        guard let text = string(node, path) else { return nil }
        guard let duration = parseDuration(text), duration > .zero else {
            fail(node, path, "expected a positive duration such as 250ms, 10s, 5m or 1h, found \"\(text)\"")
            return nil
        }
        return duration
    }

    mutating func choice<Choice: RawRepresentable & CaseIterable>(_ node: Node, _ path: String, _: Choice.Type) -> Choice?
    where Choice.RawValue == String {
        guard let text = string(node, path) else { return nil }
        if let choice = Choice(rawValue: text) { return choice }
        let names = Choice.allCases.map(\.rawValue)
        let hint = nearest(text, in: names).map { "; did you mean \"\($0)\"?" } ?? ""
        fail(node, path, "expected one of \(names.joined(separator: " | ")), found \"\(text)\"\(hint)")
        return nil
    }

    /// A free-form value (stage options): kept with its position for the stage to check.
    mutating func value(_ node: Node, _ path: String) -> ConfigValue? {
        let (line, column) = (node.mark?.line ?? 0, node.mark?.column ?? 0)
        switch node {
        case .scalar:
            guard let text = string(node, path) else { return nil }
            return ConfigValue(.scalar(text), line: line, column: column)
        case .sequence(let sequence):
            let items = sequence.enumerated().compactMap { value($1, "\(path)[\($0)]") }
            return ConfigValue(.list(items), line: line, column: column)
        case .mapping(let mapping):
            var entries: [String: ConfigValue] = [:]
            for (keyNode, item) in mapping {
                guard let key = keyNode.scalar?.string else {
                    fail(keyNode, path, "expected a plain key, found \(describe(keyNode))")
                    continue
                }
                if let item = value(item, "\(path).\(key)") { entries[key] = item }
            }
            return ConfigValue(.map(entries), line: line, column: column)
        case .alias:
            fail(node, path, "YAML aliases are not supported here; write the value out")
            return nil
        }
    }

    private mutating func interpolate(_ text: String, _ node: Node, _ path: String) -> String? {
        guard text.contains("${") else { return text }
        var result = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            result += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                fail(node, path, "\"${\" without a closing \"}\" in \"\(text)\"")
                return nil
            }
            let reference = rest[start.upperBound..<end]
            let (name, fallback) = reference.firstIndex(of: ":").map { (String(reference[..<$0]), String(reference[reference.index(after: $0)...])) }
                ?? (String(reference), nil)
            guard name.first.map({ $0.isLetter || $0 == "_" }) == true, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                fail(node, path, "\"${\(reference)}\" is not a variable reference; expected ${NAME} or ${NAME:default}")
                return nil
            }
            if let value = environment[name] {
                result += value
            } else if let fallback {
                result += fallback
            } else {
                fail(node, path, "environment variable \(name) is not set and has no default; set it or write ${\(name):default}")
                return nil
            }
            rest = rest[rest.index(after: end)...]
        }
        return result + rest
    }

    private func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let scalar): "\"\(scalar.string)\""
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }
}

/// `250ms`, `10s`, `5m`, `1h`, `500us`; nil if it is not one.
func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Duration)] = [("us", .microseconds(1)), ("ms", .milliseconds(1)), ("s", .seconds(1)), ("m", .seconds(60)), ("h", .seconds(3_600))]
    for (suffix, unit) in units where text.hasSuffix(suffix) {
        let number = text.dropLast(suffix.count)
        if let whole = Int(number) { return unit * whole }
        if let fraction = Double(number), fraction.isFinite { return unit * fraction }
    }
    return nil
}
