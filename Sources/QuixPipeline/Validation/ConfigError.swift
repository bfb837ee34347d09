/// One mistake in a configuration or pipeline file: where it is, which key, what was found and
/// what was expected.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    /// 1-based; 0 when the mistake has no position (a missing file).
    public var line: Int
    public var column: Int
    /// Dotted path of the key, with sequence indexes: `spec.stages[1].uses`.
    public var keyPath: String
    public var message: String

    public init(file: String, line: Int, column: Int, keyPath: String, message: String) {
        self.file = file
        self.line = line
        self.column = column
        self.keyPath = keyPath
        self.message = message
    }

    public var description: String {
        let position = line > 0 ? "\(file):\(line):\(column)" : file
        return keyPath.isEmpty ? "\(position): \(message)" : "\(position): \(keyPath): \(message)"
    }
}

/// Every mistake found in one or more files.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    public var errors: [ConfigError]

    public init(errors: [ConfigError]) { self.errors = errors }

    public var description: String { errors.map(\.description).joined(separator: "\n") }
}

/// The closest of `candidates` to `word`, if it is a near miss: an edit distance of at most 2
/// (or a third of the word), or one starting with the other (`rolling-mean` for `rolling`).
func nearest(_ word: String, in candidates: [String]) -> String? {
    let limit = max(2, word.count / 3)
    let lowered = word.lowercased()
    if let close = candidates.map({ ($0, editDistance(lowered, $0.lowercased())) }).filter({ $0.1 <= limit }).min(by: { $0.1 < $1.1 }) {
        return close.0
    }
    return candidates.filter { $0.count >= 3 && (lowered.hasPrefix($0.lowercased()) || $0.lowercased().hasPrefix(lowered)) }
        .max { $0.count < $1.count }
}

private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)  // distances from the first i characters of a
    for (i, character) in a.enumerated() {
        var current = [i + 1]
        for j in b.indices {
            current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (character == b[j] ? 0 : 1)))
        }
        previous = current
    }
    return previous[b.count]
}
