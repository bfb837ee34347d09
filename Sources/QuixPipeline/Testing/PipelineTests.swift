import Foundation
import QuixStreams
import Yams

/// `quixd test`: a pipeline's stages run in process on declared input, without a broker, and
/// what they emit (and keep in state) compared with what the tests file expects.
///
///     tests:
///       - name: adds gForceTotal
///         input:                      # fed in order, one message per row
///           - stream: car-1
///             rows:
///               - { timestamp: 0s, gForceX: 0.5, gForceY: -0.25, gForceZ: 1 }
///             events:
///               - { timestamp: 1s, id: door, value: open }
///         expect:                     # per stream, in order; only the columns named are compared
///           - stream: car-1
///             output: alerts          # optional: what that output takes (else what the stages pass on)
///             rows:
///               - { timestamp: 0s, gForceTotal: 1.75 }
///             events:
///               - { id: ticket, valueContains: "\"speed\":140" }
///         tables:                     # rows of the pipeline's tables (spec.tables), before the input
///           vehicles:
///             - { key: car-1, model: roadster, maxSpeed: 250 }   # key: the stream id (or the key field)
///         state:                      # a stateful stage's keys after the input
///           - { stream: car-1, stage: sum, key: total, value: 3.5 }
///
/// Timestamps are ns, a duration from 0 (`1s`, `250ms`), or ISO-8601. Numbers match within a
/// relative 1e-9.
public struct PipelineTestSuite: Sendable {
    public struct TestCase: Sendable {
        public var name: String
        /// Rows of the pipeline's tables by table name; `key` names the row.
        var tables: [String: [[String: Cell]]]
        var input: [Input]
        var expect: [Expectation]
        var state: [StateExpectation]
    }

    struct Input: Sendable {
        var stream: String
        var rows: [[String: Cell]]
        var events: [EventData]
    }

    struct Expectation: Sendable {
        var stream: String
        /// The id of the output whose rows and events are compared; nil: the stages' result.
        var output: String?
        var rows: [[String: Cell]]?
        var events: [ExpectedEvent]?
    }

    struct ExpectedEvent: Sendable {
        var id: String?
        var timestamp: Int64?
        var value: String?
        var valueContains: String?
    }

    struct StateExpectation: Sendable {
        var stream: String
        var stage: String
        var key: String
        var value: Cell?
    }

    enum Cell: Sendable, Equatable, CustomStringConvertible {
        case number(Double)
        case text(String)
        case missing

        var description: String {
            switch self {
            case .number(let value): EventTemplate.format(value)
            case .text(let text): "\"\(text)\""
            case .missing: "null"
            }
        }
    }

    public let file: String
    public let tests: [TestCase]

    /// Reads a tests file; a mistake names the file and the test.
    public init(file: String) throws {
        self.file = file
        let text = try String(contentsOfFile: file, encoding: .utf8)
        guard let root = try Yams.load(yaml: text) as? [String: Any], let list = root["tests"] as? [[String: Any]] else {
            throw StageError("\(file): expected a mapping with a list under tests:")
        }
        tests = try list.enumerated().map { index, entry in try Self.testCase(entry, "\(file): tests[\(index)]") }
    }

    /// Runs every test; returns the report lines and whether all passed.
    public func run(_ pipeline: Pipeline, file pipelineFile: String, registry: StageRegistry) throws -> (lines: [String], passed: Bool) {
        let chain = try StageChain(pipeline, file: pipelineFile, registry: registry)
        let expiry = StreamStateExpiry(pipeline: pipeline, chain: chain, metrics: nil)
        let routes = OutputRoutes(pipeline.outputs)
        for test in tests {
            for expectation in test.expect where expectation.output != nil && !routes.outputs.contains(where: { $0.id == expectation.output }) {
                throw StageError(
                    "\(file): test \(test.name): no output \"\(expectation.output!)\"; the pipeline's outputs: \(routes.outputs.map(\.id).joined(separator: ", "))")
            }
        }
        var lines: [String] = []
        var passed = true
        for test in tests {
            let differences = try run(test, pipeline, chain, expiry, routes)
            if differences.isEmpty {
                lines.append("ok   \(test.name)")
            } else {
                passed = false
                lines.append("FAIL \(test.name)")
                lines += differences.map { "     \($0)" }
            }
        }
        return (lines, passed)
    }

    private func run(
        _ test: TestCase, _ pipeline: Pipeline, _ chain: StageChain, _ expiry: StreamStateExpiry?, _ routes: OutputRoutes
    ) throws -> [String] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let state = try LocalState(directory: directory)
        let tables = try Self.tables(test, pipeline)
        var contexts: [String: StreamContexts] = [:]
        // By output id ("" for the stages' result), then stream.
        var frames: [String: [String: [TimeseriesFrame]]] = [:]
        var events: [String: [String: [EventData]]] = [:]
        func emit(_ passed: [EventData], _ stream: String) {
            events["", default: [:]][stream, default: []] += passed
            for (index, output) in routes.outputs.enumerated() where routes.takesEvents(index) {
                events[output.id, default: [:]][stream, default: []] += passed
            }
        }
        var differences: [String] = []
        for input in test.input {
            let id = input.stream
            let streamContexts = contexts[id] ?? chain.contexts(streamID: id, state: { store in state.stream(id, store: store) }, tables: tables)
            contexts[id] = streamContexts
            for row in input.rows {
                do {
                    let frame = try Self.frame(row)
                    let result =
                        try expiry.map { expiry in
                            try expiry.process(frame, partition: 0, state: { state.stream(id, store: $0) }) { try chain.process($0, streamContexts) }
                        } ?? (try chain.process(frame, streamContexts))
                    if result.rowCount > 0 {
                        frames["", default: [:]][id, default: []].append(result)
                        for (index, rows) in routes.route(result) { frames[routes.outputs[index].id, default: [:]][id, default: []].append(rows) }
                    }
                } catch {
                    differences.append("stream \(id): \(error)")
                }
                emit(streamContexts.emitted.take().events, id)
            }
            for event in input.events {
                do {
                    if let passed = try chain.process(event, streamContexts) { emit([passed], id) }
                } catch {
                    differences.append("stream \(id): \(error)")
                }
                emit(streamContexts.emitted.take().events, id)
            }
        }
        try state.checkpoint(offset: 0)
        for expectation in test.expect {
            let id = expectation.stream
            let output = expectation.output ?? ""
            let label = expectation.output.map { "\(id) → \($0)" } ?? id
            if let rows = expectation.rows {
                differences += Self.compare(rows: rows, TimeseriesFrame.concatenate(frames[output]?[id] ?? []), stream: label)
            }
            if let expected = expectation.events {
                differences += Self.compare(events: expected, events[output]?[id] ?? [], stream: label)
            }
        }
        for expected in test.state {
            let stream = state.stream(expected.stream, store: expected.stage)
            let found: Cell =
                if let number = try? stream.get(expected.key, as: Double.self) { .number(number) }
                else if let number = try? stream.get(expected.key, as: Int.self) { .number(Double(number)) }
                else if let text = try? stream.get(expected.key, as: String.self) { .text(text) }
                else { .missing }
            let wanted = expected.value ?? .missing
            if !Self.matches(found, wanted) {
                differences.append("state \(expected.stage)/\(expected.stream)/\(expected.key): expected \(wanted), got \(found)")
            }
        }
        return differences
    }

    /// The pipeline's tables, in memory, with the rows the test declares.
    private static func tables(_ test: TestCase, _ pipeline: Pipeline) throws -> [String: LookupTable] {
        var tables: [String: LookupTable] = [:]
        for table in pipeline.tables { tables[table.name] = try LookupTable(name: table.name, directory: nil) }
        for (name, rows) in test.tables {
            guard let table = tables[name], let declared = pipeline.tables.first(where: { $0.name == name }) else {
                throw StageError("test \(test.name): the pipeline has no table \"\(name)\"; its tables: \(pipeline.tables.map(\.name).joined(separator: ", "))")
            }
            let updates = try rows.map { row -> (key: String, row: [String: TableCell]?) in
                var cells: [String: TableCell] = [:]
                for (column, cell) in row where column != "key" {
                    switch cell {
                    case .number(let value): cells[column] = .number(value)
                    case .text(let text): cells[column] = .text(text)
                    case .missing: break
                    }
                }
                let key: String? =
                    switch declared.key {
                    case .streamID: row["key"].flatMap(keyText)
                    case .field(let field): cells[field]?.keyText
                    }
                guard let key else { throw StageError("test \(test.name): a row of table \(name) needs its key") }
                return (key, cells)
            }
            try table.apply(updates, offsets: [:])
        }
        return tables
    }

    private static func keyText(_ cell: Cell) -> String? {
        switch cell {
        case .number(let value): EventTemplate.format(value)
        case .text(let text): text
        case .missing: nil
        }
    }

    // MARK: Comparing

    private static func compare(rows expected: [[String: Cell]], _ frame: TimeseriesFrame, stream: String) -> [String] {
        var differences: [String] = []
        if expected.count != frame.rowCount {
            differences.append("stream \(stream): expected \(expected.count) rows, got \(frame.rowCount)")
        }
        for (row, cells) in expected.enumerated() where row < frame.rowCount {
            for name in cells.keys.sorted() {
                let wanted = cells[name]!
                let found: Cell =
                    name == "timestamp" ? .number(Double(frame.timestamps[row]))
                    : frame[name]?[row].map(Cell.number) ?? (frame.strings[name]?[row] ?? frame.tags[name]?[row]).map(Cell.text) ?? .missing
                if !matches(found, wanted) {
                    differences.append("stream \(stream) row \(row) (timestamp \(frame.timestamps[row])): \(name) expected \(wanted), got \(found)")
                }
            }
        }
        return differences
    }

    private static func compare(events expected: [ExpectedEvent], _ events: [EventData], stream: String) -> [String] {
        var differences: [String] = []
        if expected.count != events.count {
            differences.append("stream \(stream): expected \(expected.count) events, got \(events.count)\(events.isEmpty ? "" : ": " + events.map(\.id).joined(separator: ", "))")
        }
        for (index, wanted) in expected.enumerated() where index < events.count {
            let event = events[index]
            if let id = wanted.id, id != event.id { differences.append("stream \(stream) event \(index): id expected \"\(id)\", got \"\(event.id)\"") }
            if let time = wanted.timestamp, time != event.timestamp {
                differences.append("stream \(stream) event \(index): timestamp expected \(time), got \(event.timestamp)")
            }
            if let value = wanted.value, value != event.value {
                differences.append("stream \(stream) event \(index): value expected \"\(value)\", got \"\(event.value)\"")
            }
            if let part = wanted.valueContains, !event.value.contains(part) {
                differences.append("stream \(stream) event \(index): value expected to contain \"\(part)\", got \"\(event.value)\"")
            }
        }
        return differences
    }

    static func matches(_ found: Cell, _ wanted: Cell) -> Bool {
        if case .number(let a) = found, case .number(let b) = wanted { return abs(a - b) <= 1e-9 * max(1, abs(b)) }
        return found == wanted
    }

    // MARK: Reading

    private static func frame(_ row: [String: Cell]) throws -> TimeseriesFrame {
        guard case .number(let time) = row["timestamp"] else { throw StageError("a row needs a timestamp") }
        var frame = TimeseriesFrame(timestamps: [Int64(time)])
        for (name, cell) in row.sorted(by: { $0.key < $1.key }) where name != "timestamp" {
            switch cell {
            case .number(let value): frame[name] = NumericColumn([value])
            case .text(let text): frame.setStrings(name, [text])
            case .missing: frame[name] = NumericColumn([nil])
            }
        }
        return frame
    }

    private static func testCase(_ entry: [String: Any], _ path: String) throws -> TestCase {
        guard let name = entry["name"] as? String else { throw StageError("\(path): needs a name") }
        let path = "\(path) (\(name))"
        let inputs = try (entry["input"] as? [[String: Any]] ?? []).map { item -> Input in
            guard let stream = item["stream"].map({ "\($0)" }) else { throw StageError("\(path): an input needs a stream") }
            let rows = try (item["rows"] as? [[String: Any]] ?? []).map { try cells($0, path) }
            let events = try (item["events"] as? [[String: Any]] ?? []).map { event -> EventData in
                guard let id = event["id"] as? String, let time = try timestamp(event["timestamp"], path) else {
                    throw StageError("\(path): an input event needs an id and a timestamp")
                }
                return EventData(id: id, timestamp: time, value: event["value"].map { "\($0)" } ?? "")
            }
            return Input(stream: stream, rows: rows, events: events)
        }
        let expectations = try (entry["expect"] as? [[String: Any]] ?? []).map { item -> Expectation in
            guard let stream = item["stream"].map({ "\($0)" }) else { throw StageError("\(path): an expectation needs a stream") }
            let rows = try (item["rows"] as? [[String: Any]]).map { try $0.map { try cells($0, path) } }
            let events = try (item["events"] as? [[String: Any]]).map { list in
                try list.map { event in
                    ExpectedEvent(
                        id: event["id"] as? String, timestamp: try timestamp(event["timestamp"], path), value: event["value"].map { "\($0)" },
                        valueContains: event["valueContains"] as? String)
                }
            }
            return Expectation(stream: stream, output: item["output"].map { "\($0)" }, rows: rows, events: events)
        }
        let state = try (entry["state"] as? [[String: Any]] ?? []).map { item -> StateExpectation in
            guard let stream = item["stream"].map({ "\($0)" }), let stage = item["stage"] as? String, let key = item["key"].map({ "\($0)" }) else {
                throw StageError("\(path): a state expectation needs stream, stage and key")
            }
            return StateExpectation(stream: stream, stage: stage, key: key, value: try item["value"].map { try cell($0, path) })
        }
        guard !inputs.isEmpty else { throw StageError("\(path): needs input") }
        var tables: [String: [[String: Cell]]] = [:]
        for (table, rows) in entry["tables"] as? [String: Any] ?? [:] {
            guard let rows = rows as? [[String: Any]] else { throw StageError("\(path): tables.\(table) needs a list of rows") }
            tables[table] = try rows.map { try $0.mapValues { try cell($0, path) } }
        }
        return TestCase(name: name, tables: tables, input: inputs, expect: expectations, state: state)
    }

    private static func cells(_ row: [String: Any], _ path: String) throws -> [String: Cell] {
        var result: [String: Cell] = [:]
        for (key, value) in row {
            if key == "timestamp" {
                guard let time = try timestamp(value, path) else { throw StageError("\(path): a row needs a timestamp") }
                result[key] = .number(Double(time))
            } else {
                result[key] = try cell(value, path)
            }
        }
        return result
    }

    private static func cell(_ value: Any, _ path: String) throws -> Cell {
        switch value {
        case let number as Int: .number(Double(number))
        case let number as Double: .number(number)
        case let flag as Bool: .number(flag ? 1 : 0)
        case let text as String: .text(text)
        case is NSNull: .missing
        default: throw StageError("\(path): \(value) is not a number, a text or null")
        }
    }

    private static func timestamp(_ value: Any?, _ path: String) throws -> Int64? {
        switch value {
        case nil: return nil
        case let number as Int: return Int64(number)
        case let text as String:
            if let duration = parseDuration(text) ?? (text == "0" ? .zero : nil) {
                let (seconds, attoseconds) = duration.components
                return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
            }
            if let time = MessageFormats.timestamp(text) { return time }
            throw StageError("\(path): timestamp \"\(text)\" is not ns, a duration (1s) or ISO-8601")
        default:
            throw StageError("\(path): timestamp \(value!) is not ns, a duration (1s) or ISO-8601")
        }
    }
}
