import Foundation
import QuixStreams
import Yams

/// Where a value of a tests file is, for mistakes found only once the pipeline is known (an
/// output id or a table name it does not have).
struct SourcePlace: Sendable {
    var line: Int
    var column: Int
    var keyPath: String

    init(_ node: Node, _ keyPath: String) {
        line = node.mark?.line ?? 0
        column = node.mark?.column ?? 0
        self.keyPath = keyPath
    }

    func error(_ file: String, _ message: String) -> ConfigError {
        ConfigError(file: file, line: line, column: column, keyPath: keyPath, message: message)
    }
}

/// Reads a tests file with the `NodeReader` of pipeline files, so every mistake is reported at
/// once with its file:line:col and key path.
enum PipelineTestReader {
    typealias Suite = PipelineTestSuite
    typealias Cell = PipelineTestSuite.Cell

    static func read(file: String) throws(ConfigErrors) -> [Suite.TestCase] {
        let text = try ConfigDocument.text(of: file)
        return try ConfigDocument.read(text, file: file, environment: ProcessInfo.processInfo.environment, overrides: []) { root, reader in
            guard let top = reader.mapping(root, "", FileSchemas.tests), let list = top["tests"].flatMap({ reader.sequence($0, "tests") })
            else { return nil }
            guard !list.isEmpty else {
                reader.fail(top["tests"], "tests", "expected at least one test")
                return nil
            }
            return list.enumerated().compactMap { index, node in testCase(node, "tests[\(index)]", &reader) }
        }
    }

    private static func testCase(_ node: Node, _ path: String, _ reader: inout NodeReader) -> Suite.TestCase? {
        guard let keys = reader.mapping(node, path, FileSchemas.testCase) else { return nil }
        let name = keys["name"].flatMap { reader.nonEmptyString($0, "\(path).name") }
        let inputs = list(keys["input"], "\(path).input", &reader) { item, path, reader -> Suite.Input? in
            guard let keys = reader.mapping(item, path, FileSchemas.testInput) else { return nil }
            let stream = keys["stream"].flatMap { reader.nonEmptyString($0, "\(path).stream") }
            let topic = keys["topic"].flatMap { node in reader.nonEmptyString(node, "\(path).topic").map { ($0, SourcePlace(node, "\(path).topic")) } }
            let rows = list(keys["rows"], "\(path).rows", &reader) { row, path, reader -> Suite.InputRow? in
                guard let cells = cells(row, path, &reader) else { return nil }
                guard case .number(let time) = cells["timestamp"] else {
                    reader.fail(row, path, "an input row needs a timestamp")
                    return nil
                }
                return Suite.InputRow(timestamp: Int64(time), cells: cells.filter { $0.key != "timestamp" })
            }
            let events = list(keys["events"], "\(path).events", &reader) { event, path, reader -> EventData? in
                guard let keys = reader.mapping(event, path, FileSchemas.inputEvent),
                    let id = keys["id"].flatMap({ reader.nonEmptyString($0, "\(path).id") }),
                    let time = keys["timestamp"].flatMap({ timestamp($0, "\(path).timestamp", &reader) })
                else { return nil }
                return EventData(id: id, timestamp: time, value: keys["value"].flatMap { reader.string($0, "\(path).value") } ?? "")
            }
            guard let stream, let rows, let events else { return nil }
            return Suite.Input(stream: stream, topic: topic?.0, topicPlace: topic?.1, rows: rows, events: events)
        }
        let expectations = list(keys["expect"], "\(path).expect", &reader) { item, path, reader -> Suite.Expectation? in
            guard let keys = reader.mapping(item, path, FileSchemas.expectation) else { return nil }
            let stream = keys["stream"].flatMap { reader.nonEmptyString($0, "\(path).stream") }
            let output = keys["output"].flatMap { node in reader.nonEmptyString(node, "\(path).output").map { ($0, SourcePlace(node, "\(path).output")) } }
            let rows = keys["rows"] == nil ? nil : list(keys["rows"], "\(path).rows", &reader) { row, path, reader in cells(row, path, &reader) }
            let events = keys["events"] == nil ? nil : list(keys["events"], "\(path).events", &reader) { event, path, reader -> Suite.ExpectedEvent? in
                guard let keys = reader.mapping(event, path, FileSchemas.expectedEvent) else { return nil }
                return Suite.ExpectedEvent(
                    id: keys["id"].flatMap { reader.string($0, "\(path).id") },
                    timestamp: keys["timestamp"].flatMap { timestamp($0, "\(path).timestamp", &reader) },
                    value: keys["value"].flatMap { reader.string($0, "\(path).value") },
                    valueContains: keys["valueContains"].flatMap { reader.string($0, "\(path).valueContains") })
            }
            guard let stream else { return nil }
            return Suite.Expectation(stream: stream, output: output?.0, outputPlace: output?.1, rows: rows, events: events)
        }
        let state = list(keys["state"], "\(path).state", &reader) { item, path, reader -> Suite.StateExpectation? in
            guard let keys = reader.mapping(item, path, FileSchemas.stateExpectation),
                let stream = keys["stream"].flatMap({ reader.nonEmptyString($0, "\(path).stream") }),
                let stage = keys["stage"].flatMap({ reader.nonEmptyString($0, "\(path).stage") }),
                let key = keys["key"].flatMap({ reader.nonEmptyString($0, "\(path).key") })
            else { return nil }
            return Suite.StateExpectation(stream: stream, stage: stage, key: key, value: keys["value"].flatMap { cell($0, "\(path).value", &reader) })
        }
        var tables: [String: Suite.TableRows] = [:]
        if let node = keys["tables"] {
            if let mapping = node.mapping {
                for (keyNode, value) in mapping {
                    guard let table = reader.nonEmptyString(keyNode, "\(path).tables") else { continue }
                    let tablePath = "\(path).tables.\(table)"
                    if let rows = list(value, tablePath, &reader, { row, path, reader in cells(row, path, &reader) }) {
                        tables[table] = Suite.TableRows(place: SourcePlace(keyNode, tablePath), rows: rows)
                    }
                }
            } else {
                reader.fail(node, "\(path).tables", "expected a mapping of table name: list of rows")
            }
        }
        guard let name, let inputs, let expectations, let state else { return nil }
        return Suite.TestCase(name: name, tables: tables, input: inputs, expect: expectations, state: state)
    }

    /// The items of an optional list (absent: empty), each read by `item`; nil if any failed.
    private static func list<Item>(
        _ node: Node?, _ path: String, _ reader: inout NodeReader, _ item: (Node, String, inout NodeReader) -> Item?
    ) -> [Item]? {
        guard let node else { return [] }
        guard let nodes = reader.sequence(node, path) else { return nil }
        let items = nodes.enumerated().compactMap { index, node in item(node, "\(path)[\(index)]", &reader) }
        return items.count == nodes.count ? items : nil
    }

    /// A row: column names to cells; `timestamp` read as a timestamp.
    private static func cells(_ node: Node, _ path: String, _ reader: inout NodeReader) -> [String: Cell]? {
        guard let mapping = node.mapping else {
            reader.fail(node, path, "expected a row (a mapping of column: value)")
            return nil
        }
        var result: [String: Cell] = [:]
        var valid = true
        for (keyNode, value) in mapping {
            guard let column = keyNode.scalar?.string else {
                reader.fail(keyNode, path, "expected a plain column name")
                valid = false
                continue
            }
            let cell = column == "timestamp" ? timestamp(value, "\(path).timestamp", &reader).map { Cell.number(Double($0)) } : cell(value, "\(path).\(column)", &reader)
            if let cell { result[column] = cell } else { valid = false }
        }
        return valid ? result : nil
    }

    /// A plain scalar is a number, a boolean (1 or 0) or null (missing) where it reads as one;
    /// a quoted scalar is always text.
    private static func cell(_ node: Node, _ path: String, _ reader: inout NodeReader) -> Cell? {
        guard let scalar = node.scalar else {
            reader.fail(node, path, "expected a number, a text or null")
            return nil
        }
        if scalar.style == .plain {
            if node.null != nil { return .missing }
            if let flag = node.bool { return .number(flag ? 1 : 0) }
            if let number = node.int { return .number(Double(number)) }
            if let number = node.float { return .number(number) }
        }
        return reader.string(node, path).map(Cell.text)
    }

    /// ns as a whole number, a duration from 0 (`1s`, `250ms`), or ISO-8601.
    private static func timestamp(_ node: Node, _ path: String, _ reader: inout NodeReader) -> Int64? {
        guard let text = reader.string(node, path) else { return nil }
        if let nanoseconds = Int64(text) { return nanoseconds }
        if let duration = parseDuration(text) {
            let (seconds, attoseconds) = duration.components
            return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
        }
        if let time = MessageFormats.timestamp(text) { return time }
        reader.fail(node, path, "expected a timestamp: ns, a duration from 0 (1s, 250ms) or ISO-8601, found \"\(text)\"")
        return nil
    }
}
