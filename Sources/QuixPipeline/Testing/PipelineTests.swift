import Foundation
import QuixStreams

/// `quixd test`: a pipeline's stages run in process on declared input, without a broker, and
/// what they emit (and keep in state) compared with what the tests file expects.
///
///     tests:
///       - name: adds gForceTotal
///         input:                      # fed in order, one message per row
///           - stream: car-1
///             topic: telemetry        # optional: the input topic, or a join stage's topic
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
        var tables: [String: TableRows]
        var input: [Input]
        var expect: [Expectation]
        var state: [StateExpectation]
    }

    struct Input: Sendable {
        var stream: String
        /// The input topic when nil; else the topic of a join stage, whose rows the join reads.
        var topic: String?
        var topicPlace: SourcePlace?
        var rows: [InputRow]
        var events: [EventData]
    }

    struct InputRow: Sendable {
        var timestamp: Int64
        var cells: [String: Cell]
    }

    struct TableRows: Sendable {
        /// Where the table's name is in the file.
        var place: SourcePlace
        var rows: [[String: Cell]]
    }

    struct Expectation: Sendable {
        var stream: String
        /// The id of the output whose rows and events are compared; nil: the stages' result.
        var output: String?
        var outputPlace: SourcePlace?
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

    /// Reads a tests file; every mistake is reported with its file:line:col and key path.
    public init(file: String) throws(ConfigErrors) {
        self.file = file
        tests = try PipelineTestReader.read(file: file)
    }

    /// Runs every test; returns the report lines and whether all passed.
    public func run(_ pipeline: Pipeline, file pipelineFile: String, registry: StageRegistry) throws -> (lines: [String], passed: Bool) {
        let chain = try StageChain(pipeline, file: pipelineFile, registry: registry)
        let expiry = StreamStateExpiry(pipeline: pipeline, chain: chain, metrics: nil)
        let routes = OutputRoutes(pipeline.outputs)
        try check(against: pipeline, chain, routes)
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

    /// The output ids and table names the tests name must be the pipeline's.
    private func check(against pipeline: Pipeline, _ chain: StageChain, _ routes: OutputRoutes) throws(ConfigErrors) {
        var errors: [ConfigError] = []
        for test in tests {
            for expectation in test.expect {
                guard let output = expectation.output, let place = expectation.outputPlace, !routes.outputs.contains(where: { $0.id == output }) else { continue }
                errors.append(place.error(file, "the pipeline has no output \"\(output)\"; its outputs: \(routes.outputs.map(\.id).joined(separator: ", "))"))
            }
            let topics = [pipeline.input.topic] + chain.steps.compactMap { ($0.stage as? JoinStage)?.topic }
            for input in test.input {
                guard let topic = input.topic, let place = input.topicPlace, !topics.contains(topic) else { continue }
                errors.append(place.error(file, "the pipeline reads no topic \"\(topic)\"; it reads \(topics.joined(separator: ", "))"))
            }
            for (name, table) in test.tables where !pipeline.tables.contains(where: { $0.name == name }) {
                let names = pipeline.tables.isEmpty ? "it has none" : "its tables: " + pipeline.tables.map(\.name).joined(separator: ", ")
                errors.append(table.place.error(file, "the pipeline has no table \"\(name)\"; \(names)"))
            }
        }
        guard errors.isEmpty else { throw ConfigErrors(errors: errors) }
    }

    private func run(
        _ test: TestCase, _ pipeline: Pipeline, _ chain: StageChain, _ expiry: StreamStateExpiry?, _ routes: OutputRoutes
    ) throws -> [String] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-test-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let state = try LocalState(directory: directory)
        let tables = try tables(test, pipeline)
        let joins = joinSources(test, chain)
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
        for input in test.input where input.topic == nil || input.topic == pipeline.input.topic {
            let id = input.stream
            let streamContexts =
                contexts[id]
                ?? chain.contexts(
                    streamID: id, state: { store in state.stream(id, store: store) }, tables: tables, partition: { state.access }, joins: joins)
            contexts[id] = streamContexts
            for row in input.rows {
                do {
                    let frame = Self.frame(row)
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

    /// The join stages' topics, with the rows the test declares for them, by stage id.
    private func joinSources(_ test: TestCase, _ chain: StageChain) -> [String: JoinSource] {
        var joins: [String: JoinSource] = [:]
        for step in chain.steps {
            guard let join = step.stage as? JoinStage else { continue }
            var rows: [String: [JoinRow]] = [:]
            var offset: Int64 = 0
            for input in test.input where input.topic == join.topic {
                for row in input.rows {
                    var cells: [String: TableCell] = [:]
                    for (column, cell) in row.cells {
                        switch cell {
                        case .number(let value): cells[column] = .number(value)
                        case .text(let text): cells[column] = .text(text)
                        case .missing: break
                        }
                    }
                    rows[input.stream, default: []].append(JoinRow(timestamp: row.timestamp, offset: offset, cells: cells))
                    offset += 1
                }
            }
            joins[step.id] = JoinSource(stage: step.id, tolerance: join.tolerance, rows: rows)
        }
        return joins
    }

    /// The pipeline's tables, in memory, with the rows the test declares.
    private func tables(_ test: TestCase, _ pipeline: Pipeline) throws -> [String: LookupTable] {
        var tables: [String: LookupTable] = [:]
        for table in pipeline.tables { tables[table.name] = try LookupTable(name: table.name, directory: nil) }
        for (name, declared) in test.tables {
            guard let table = tables[name], let spec = pipeline.tables.first(where: { $0.name == name }) else { continue }
            let updates = try declared.rows.enumerated().map { index, row -> (key: String, row: [String: TableCell]?) in
                var cells: [String: TableCell] = [:]
                for (column, cell) in row where column != "key" {
                    switch cell {
                    case .number(let value): cells[column] = .number(value)
                    case .text(let text): cells[column] = .text(text)
                    case .missing: break
                    }
                }
                let key: String? =
                    switch spec.key {
                    case .streamID: row["key"].flatMap(Self.keyText)
                    case .field(let field): cells[field]?.keyText
                    }
                guard let key else {
                    let keyName = if case .field(let field) = spec.key { "the field \(field)" } else { "key: the stream id" }
                    var place = declared.place
                    place.keyPath += "[\(index)]"
                    throw ConfigErrors(errors: [place.error(file, "a row of table \(name) needs its key (\(keyName))")])
                }
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

    private static func frame(_ row: InputRow) -> TimeseriesFrame {
        var frame = TimeseriesFrame(timestamps: [row.timestamp])
        for (name, cell) in row.cells.sorted(by: { $0.key < $1.key }) {
            switch cell {
            case .number(let value): frame[name] = NumericColumn([value])
            case .text(let text): frame.setStrings(name, [text])
            case .missing: frame[name] = NumericColumn([nil])
            }
        }
        return frame
    }
}
