import Foundation
@testable import QuixPipeline
import Testing

@Suite("tests files are read like pipeline files")
struct PipelineTestReaderTests {
    private func read(_ text: String) throws -> (file: String, result: Result<PipelineTestSuite, ConfigErrors>) {
        let directory = try scratchDirectory()
        let file = directory + "/p.test.yaml"
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { remove(directory) }
        do throws(ConfigErrors) {
            return (file, .success(try PipelineTestSuite(file: file)))
        } catch {
            return (file, .failure(error))
        }
    }

    @Test("every mistake of a tests file is reported at once, with file:line:col and its key path")
    func mistakesWithPositions() throws {
        let (file, result) = try read(
            """
            tests:
              - name: first
                input:
                  - stream: car-1
                    rows:
                      - { timestamp: soon, speed: 1 }
                      - { speed: 2 }
                expect:
                  - { stream: car-1, ouput: alerts }
              - name: second
                input:
                  - stream: car-2
                    events: [{ id: door }]
                state:
                  - { stream: car-2, stage: sum }
            """)
        guard case .failure(let errors) = result else {
            Issue.record("a tests file with five mistakes was read")
            return
        }
        let found = errors.errors.map { "\($0.line):\($0.column) \($0.keyPath)" }
        #expect(
            found == [
                "6:26 tests[0].input[0].rows[0].timestamp",
                "7:13 tests[0].input[0].rows[1]",
                "9:26 tests[0].expect[0].ouput",
                "13:18 tests[1].input[0].events[0].timestamp",
                "15:9 tests[1].state[0].key",
            ], "\(errors)")
        #expect(errors.description.contains("\(file):9:26: tests[0].expect[0].ouput: unknown key; did you mean \"output\"?"), "\(errors)")
        #expect(errors.description.contains("found \"soon\""), "\(errors)")
    }

    @Test("cells: plain numbers, booleans and null are values; quoted scalars stay text")
    func cellTypes() throws {
        let (_, result) = try read(
            """
            tests:
              - name: cells
                input:
                  - stream: 7
                    rows: [{ timestamp: 1500000000, a: 2, b: 2.5, c: true, d: null, e: "3", f: roadster }]
            """)
        let suite = try result.get()
        let input = try #require(suite.tests.first?.input.first)
        #expect(input.stream == "7")
        #expect(input.rows.first?.timestamp == 1_500_000_000)
        #expect(input.rows.first?.cells == ["a": .number(2), "b": .number(2.5), "c": .number(1), "d": .missing, "e": .text("3"), "f": .text("roadster")])
    }

    @Test("a table the pipeline does not have is refused at its place in the tests file")
    func unknownTable() throws {
        let (_, result) = try read(
            """
            tests:
              - name: tables
                tables:
                  vehicels: [{ key: car-1, model: roadster }]
                input:
                  - { stream: car-1, rows: [{ timestamp: 0s, speed: 1 }] }
            """)
        let suite = try result.get()
        let pipeline = try PipelineLoader.parse(
            """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: p }
            spec:
              input: { topic: in }
              tables: { vehicles: { topic: vehicles } }
              stages: [{ id: look, uses: lookup, with: { table: vehicles, columns: [model] } }]
              output: { topic: out }
            """, file: "p.yaml")
        let error = try #require(throws: ConfigErrors.self) { try suite.run(pipeline, file: "p.yaml", registry: .builtIn) }
        #expect(error.errors.map { "\($0.line):\($0.column) \($0.keyPath)" } == ["4:7 tests[0].tables.vehicels"], "\(error)")
        #expect(error.description.contains("no table \"vehicels\"; its tables: vehicles"), "\(error)")
    }
}
