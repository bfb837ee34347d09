import Foundation
@testable import QuixPipeline
import QuixStreams
import Testing

private let pipelineText = """
    apiVersion: quixd/v1
    kind: Pipeline
    metadata: { name: enrich }
    spec:
      input: { topic: telemetry }
      tables:
        vehicles: { topic: vehicles }
        drivers: { topic: drivers, format: quix, key: badge }
      stages:
        - id: vehicle
          uses: lookup
          with: { table: vehicles, columns: [model, maxSpeed], as: "vehicle_" }
        - id: driver
          uses: lookup
          with: { table: drivers, key: badge, columns: [name], onMissing: drop }
      output: { topic: enriched }

    """

private func errors(_ text: String) -> [String] {
    do {
        _ = try PipelineLoader.parse(text, file: "p.yaml")
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

private func replacing(_ old: String, _ new: String) -> String {
    precondition(pipelineText.components(separatedBy: old).count == 2, "\(old) must occur once")
    return pipelineText.replacingOccurrences(of: old, with: new)
}

@Suite("tables and lookups")
struct LookupTests {
    @Test("spec.tables reads each table's topic, format and key; json and the stream id by default")
    func readsTables() throws {
        let pipeline = try PipelineLoader.parse(pipelineText, file: "p.yaml")
        #expect(pipeline.tables == [
            Pipeline.Table(name: "drivers", topic: "drivers", format: .quix, key: .field("badge")),
            Pipeline.Table(name: "vehicles", topic: "vehicles", format: .json, key: .streamID),
        ])
    }

    @Test("broken tables and lookups give their error with line, column and key path", arguments: [
        (replacing("vehicles: { topic: vehicles }", "vehicles: { topik: vehicles }"), [
            "p.yaml:7:15: spec.tables.vehicles.topic: missing; it is required", #"p.yaml:7:17: spec.tables.vehicles.topik: unknown key; did you mean "topic"?"#,
        ]),
        (replacing("vehicles: { topic: vehicles }", "vehicles: { topic: vehicles, format: raw }"), [
            "p.yaml:7:42: spec.tables.vehicles.format: expected json or quix; a raw message has no fields to look up",
        ]),
        (replacing("  tables:\n", "  tables: [vehicles]\n  unused:\n"), [
            "p.yaml:6:11: spec.tables: expected a mapping of table names to { topic, format, key }", "p.yaml:7:3: spec.unused: unknown key; expected one of input, stages, output, outputs, tables, delivery, checkpoint, state, onError",
        ]),
        (replacing("table: vehicles,", "table: vehicle,"), [#"p.yaml:12:22: spec.stages[0].with.table: no table named "vehicle"; did you mean "vehicles"? its tables: drivers, vehicles"#]),
        (replacing("with: { table: drivers, key: badge, columns: [name], onMissing: drop }", "with: { table: drivers, columns: [name], onMissing: never }"), [
            #"p.yaml:15:59: spec.stages[1].with.onMissing: expected one of keep | drop, found "never""#,
        ]),
    ])
    func broken(_ text: String, _ expected: [String]) {
        #expect(errors(text) == expected)
    }

    @Test("a lookup without spec.tables says the pipeline has none")
    func noTables() {
        let text = pipelineText.replacingOccurrences(of: "  tables:\n    vehicles: { topic: vehicles }\n    drivers: { topic: drivers, format: quix, key: badge }\n", with: "")
        #expect(errors(text) == [
            #"p.yaml:9:22: spec.stages[0].with.table: no table named "vehicles"; the pipeline has no spec.tables"#,
            #"p.yaml:12:22: spec.stages[1].with.table: no table named "drivers"; the pipeline has no spec.tables"#,
        ])
    }

    @Test("lookup adds the matching row's columns by stream id or by a column's value; no match: missing cells, or dropped")
    func lookup() throws {
        let vehicles = try LookupTable(name: "vehicles", directory: nil)
        try vehicles.apply([("car-1", ["model": .text("roadster"), "maxSpeed": .number(250)])], offsets: [:])
        let drivers = try LookupTable(name: "drivers", directory: nil)
        try drivers.apply([("17", ["name": .text("Ann")]), ("2.5", ["name": .text("Bob")])], offsets: [:])
        let pipeline = try PipelineLoader.parse(pipelineText, file: "p.yaml")
        let chain = try StageChain(pipeline, file: "p.yaml", registry: .builtIn)
        var frame = TimeseriesFrame(timestamps: [1, 2, 3])
        frame["badge"] = NumericColumn([17, 2.5, 99])
        let known = chain.contexts(streamID: "car-1", state: nil, tables: ["vehicles": vehicles, "drivers": drivers])
        let enriched = try chain.process(frame, known)
        #expect(enriched.timestamps == [1, 2], "badge 99 has no driver: dropped")
        #expect(enriched.strings["vehicle_model"] == ["roadster", "roadster"])
        #expect(enriched["vehicle_maxSpeed"].map(Array.init) == [250, 250])
        #expect(enriched.strings["name"] == ["Ann", "Bob"], "a number key matches its shortest text")
        let unknown = chain.contexts(streamID: "car-9", state: nil, tables: ["vehicles": vehicles, "drivers": drivers])
        let missing = try chain.process(frame, unknown)
        #expect(missing.timestamps == [1, 2] && missing["vehicle_maxSpeed"].map(Array.init) == [nil, nil], "no vehicle row: missing cells, kept")
        #expect(chain.definitions(ParameterDefinitions()).parameters.map(\.id) == ["vehicle_model", "vehicle_maxSpeed", "name"])
    }

    @Test("a table in LMDB keeps its rows and offsets: reopened, it has them; a tombstone deletes")
    func persisted() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        do {
            let table = try LookupTable(name: "t", directory: directory)
            try table.apply([("a", ["x": .number(1), "s": .text("é")]), ("b", ["x": .number(-0.5)])], offsets: [0: 2])
            try table.apply([("a", nil)], offsets: [1: 7])
        }
        let reopened = try LookupTable(name: "t", directory: directory)
        #expect(reopened.row("a") == nil && reopened.row("b") == ["x": .number(-0.5)] && reopened.count == 1)
        #expect(try reopened.storedOffsets() == [0: 2, 1: 7])
        let row: [String: TableCell] = ["x": .number(.infinity), "name": .text(String(repeating: "ü", count: 300))]
        #expect(TableRowCoding.encode(row).withUnsafeBytes { TableRowCoding.decode($0) } == row)
        #expect([UInt8]([1, 0, 65, 0x78]).withUnsafeBytes { TableRowCoding.decode($0) } == nil, "not a row: unknown kind")
    }

    @Test("quixd test declares table rows per test and compares the enriched rows")
    func testFile() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let file = directory + "/enrich.test.yaml"
        try """
            tests:
              - name: enriched
                tables:
                  vehicles: [{ key: car-1, model: roadster, maxSpeed: 250 }]
                  drivers: [{ badge: 17, name: Ann }]
                input:
                  - stream: car-1
                    rows: [{ timestamp: 1s, badge: 17 }, { timestamp: 2s, badge: 18 }]
                expect:
                  - stream: car-1
                    rows: [{ timestamp: 1s, vehicle_model: roadster, vehicle_maxSpeed: 250, name: Ann }]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let pipeline = try PipelineLoader.parse(pipelineText, file: "p.yaml")
        let result = try PipelineTestSuite(file: file).run(pipeline, file: "p.yaml", registry: .builtIn)
        #expect(result.passed, "\(result.lines)")
        try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "maxSpeed: 250 }]", with: "maxSpeed: 200 }]")
            .write(toFile: file, atomically: true, encoding: .utf8)
        let failed = try PipelineTestSuite(file: file).run(pipeline, file: "p.yaml", registry: .builtIn)
        #expect(failed.lines.contains { $0.contains("vehicle_maxSpeed expected 250, got 200") }, "\(failed.lines)")
    }
}
