/// A stage's `with:` options, read by the stage when it is made. Each reader records a mistake
/// with the file, line, column and key path of the value, so that all of them are reported.
public struct StageOptions: Sendable {
    public let values: [String: ConfigValue]
    let file: String
    let path: String
    /// Where the stage is declared (for options that are missing).
    let line: Int
    let column: Int
    public private(set) var errors: [ConfigError] = []

    public init(_ values: [String: ConfigValue], file: String, path: String, line: Int = 0, column: Int = 0) {
        self.values = values
        self.file = file
        self.path = path
        self.line = line
        self.column = column
    }

    /// Records a mistake in option `name` (at its value, or at the stage when it is missing).
    public mutating func fail(_ name: String, _ message: String) {
        errors.append(error(name, message))
    }

    func error(_ name: String, _ message: String) -> ConfigError {
        let value = values[name]
        return ConfigError(
            file: file, line: value?.line ?? line, column: value?.column ?? column, keyPath: name.isEmpty ? path : "\(path).\(name)",
            message: message)
    }

    /// Unknown options (with a near miss suggested) and missing required ones.
    mutating func check(against schema: [StageOption], stage: String) {
        let known = schema.map(\.name)
        for name in values.keys.sorted() where !known.contains(name) {
            let hint = nearest(name, in: known).map { "; did you mean \"\($0)\"?" }
                ?? (known.isEmpty ? "; stage \(stage) takes no options" : "; stage \(stage) takes \(known.joined(separator: ", "))")
            fail(name, "unknown option\(hint)")
        }
        for option in schema where option.required && values[option.name] == nil {
            fail(option.name, "missing; stage \(stage) needs it (\(option.summary))")
        }
    }

    // MARK: Readers (nil when absent or wrong; a wrong value is recorded)

    public mutating func string(_ name: String) -> String? {
        guard let value = values[name] else { return nil }
        guard case .scalar(let text) = value.kind, !text.isEmpty else {
            fail(name, "expected a non-empty value, found \(describe(value))")
            return nil
        }
        return text
    }

    public mutating func number(_ name: String) -> Double? {
        guard let text = string(name) else { return nil }
        guard let number = Double(text), number.isFinite else {
            fail(name, "expected a number, found \"\(text)\"")
            return nil
        }
        return number
    }

    public mutating func int(_ name: String, in range: ClosedRange<Int>) -> Int? {
        guard let text = string(name) else { return nil }
        guard let number = Int(text), range.contains(number) else {
            fail(name, "expected a whole number from \(range.lowerBound) to \(range.upperBound), found \"\(text)\"")
            return nil
        }
        return number
    }

    public mutating func duration(_ name: String) -> Duration? {
        guard let text = string(name) else { return nil }
        guard let duration = parseDuration(text), duration > .zero else {
            fail(name, "expected a positive duration such as 250ms, 10s, 5m or 1h, found \"\(text)\"")
            return nil
        }
        return duration
    }

    public mutating func choice<Choice: RawRepresentable & CaseIterable>(_ name: String, _: Choice.Type) -> Choice?
    where Choice.RawValue == String {
        guard let text = string(name) else { return nil }
        if let choice = Choice(rawValue: text) { return choice }
        let names = Choice.allCases.map(\.rawValue)
        let hint = nearest(text, in: names).map { "; did you mean \"\($0)\"?" } ?? ""
        fail(name, "expected one of \(names.joined(separator: " | ")), found \"\(text)\"\(hint)")
        return nil
    }

    /// An expression, parsed, whose result must be of `type`.
    public mutating func expression(_ name: String, type: Expression.ResultType) -> Expression? {
        guard let text = string(name) else { return nil }
        do {
            let expression = try Expression(text)
            guard expression.resultType == type else {
                fail(name, "expected a \(type) expression, found a \(expression.resultType) one: \"\(text)\"")
                return nil
            }
            return expression
        } catch {
            fail(name, "\(error)")
            return nil
        }
    }

    /// A list of non-empty names (a single name is a list of one).
    public mutating func names(_ name: String) -> [String]? {
        guard let value = values[name] else { return nil }
        switch value.kind {
        case .scalar(let text) where !text.isEmpty:
            return [text]
        case .list(let items):
            var names: [String] = []
            for item in items {
                guard case .scalar(let text) = item.kind, !text.isEmpty else {
                    errors.append(ConfigError(file: file, line: item.line, column: item.column, keyPath: "\(path).\(name)", message: "expected a name, found \(describe(item))"))
                    return nil
                }
                names.append(text)
            }
            if names.isEmpty { fail(name, "expected at least one name") }
            return names.isEmpty ? nil : names
        default:
            fail(name, "expected a name or a list of names, found \(describe(value))")
            return nil
        }
    }

    /// A mapping of names to names (`rename`'s columns), in the file's key order is not kept by
    /// YAML mappings, so sorted by key.
    public mutating func nameMap(_ name: String) -> [(key: String, value: String)]? {
        guard let value = values[name] else { return nil }
        guard case .map(let entries) = value.kind, !entries.isEmpty else {
            fail(name, "expected a mapping of old: new names, found \(describe(value))")
            return nil
        }
        var result: [(key: String, value: String)] = []
        for (key, item) in entries.sorted(by: { $0.key < $1.key }) {
            guard case .scalar(let text) = item.kind, !text.isEmpty else {
                errors.append(ConfigError(file: file, line: item.line, column: item.column, keyPath: "\(path).\(name).\(key)", message: "expected a name, found \(describe(item))"))
                return nil
            }
            result.append((key, text))
        }
        return result
    }

    private func describe(_ value: ConfigValue) -> String {
        switch value.kind {
        case .scalar(let text): "\"\(text)\""
        case .list: "a list"
        case .map: "a mapping"
        }
    }
}
