import Yams

/// One `--set path.to.key=value`: the value (YAML: a scalar, or `[...]` and `{...}`) replaces
/// or adds the key; missing mappings on the way are created. `spec.stages[1].with.limitKmh=120`
/// reaches into a list by index.
struct Override {
    enum Step: Equatable {
        case key(String)
        case index(Int)
    }

    let text: String
    let steps: [Step]
    let value: Node

    init(_ text: String) throws(ConfigError) {
        self.text = text
        guard let equals = text.firstIndex(of: "=") else { throw Self.error(text, "expected path.to.key=value") }
        let path = text[..<equals]
        var steps: [Step] = []
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            var name = Substring(part)
            var indexes: [Int] = []
            while name.hasSuffix("]"), let open = name.lastIndex(of: "[") {
                guard let index = Int(name[name.index(after: open)..<name.index(before: name.endIndex)]), index >= 0 else {
                    throw Self.error(text, "\"\(part)\" has an index that is not a whole number")
                }
                indexes.insert(index, at: 0)
                name = name[..<open]
            }
            guard !name.isEmpty else { throw Self.error(text, "the path has an empty key") }
            steps.append(.key(String(name)))
            steps += indexes.map(Step.index)
        }
        let valueText = String(text[text.index(after: equals)...])
        do {
            // Positions in the value's own one-line document would point into the file.
            value = Self.withoutMarks(try Yams.compose(yaml: valueText) ?? Node(""))
        } catch {
            throw Self.error(text, "the value is not YAML: \(error)")
        }
        self.steps = steps
    }

    func apply(to root: inout Node) throws(ConfigError) {
        try Self.set(value, at: steps[...], in: &root, text)
    }

    private static func set(_ value: Node, at steps: ArraySlice<Step>, in node: inout Node, _ text: String) throws(ConfigError) {
        guard let step = steps.first else {
            node = value
            return
        }
        switch step {
        case .key(let key):
            guard var mapping = node.mapping else { throw error(text, "\"\(key)\" goes into a value that is not a mapping") }
            var child = mapping[key] ?? Node.mapping(Node.Mapping([]))  // a missing key starts as an empty mapping
            try set(value, at: steps.dropFirst(), in: &child, text)
            mapping[key] = child
            node = .mapping(mapping)
        case .index(let index):
            guard var sequence = node.sequence else { throw error(text, "[\(index)] goes into a value that is not a list") }
            guard index < sequence.count else { throw error(text, "[\(index)] is past the end of a list of \(sequence.count)") }
            var child = sequence[index]
            try set(value, at: steps.dropFirst(), in: &child, text)
            sequence[index] = child
            node = .sequence(sequence)
        }
    }

    private static func withoutMarks(_ node: Node) -> Node {
        switch node {
        case .scalar(var scalar):
            scalar.mark = nil
            return .scalar(scalar)
        case .mapping(var mapping):
            mapping.mark = nil
            for index in mapping.indices {
                let (key, value) = mapping[index]
                mapping[index] = (withoutMarks(key), withoutMarks(value))
            }
            return .mapping(mapping)
        case .sequence(var sequence):
            sequence.mark = nil
            for index in sequence.indices { sequence[index] = withoutMarks(sequence[index]) }
            return .sequence(sequence)
        case .alias:
            return node
        }
    }

    private static func error(_ text: String, _ message: String) -> ConfigError {
        ConfigError(file: "--set", line: 0, column: 0, keyPath: "", message: "\(text): \(message)")
    }
}
