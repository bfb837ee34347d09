import Foundation
@testable import QuixPipeline
import QuixStreams
import Testing

/// A pipeline with routed outputs, to break one line at a time.
private let routed = """
    apiVersion: quixd/v1
    kind: Pipeline
    metadata:
      name: routes
    spec:
      input: { topic: telemetry }
      stages:
        - id: fast
          uses: event
          with: { when: "speed > 200", id: fast }
      outputs:
        - id: all
          topic: telemetry-all
        - id: alerts
          topic: telemetry-alerts
          format: json
          when: "speed > 100"
          events: false
        - id: slow
          topic: telemetry-slow
          when: "speed <= 50"

    """

private func routedWith(_ old: String, _ new: String) -> String {
    precondition(routed.components(separatedBy: old).count == 2, "\(old) must occur once")
    return routed.replacingOccurrences(of: old, with: new)
}

private func errors(_ text: String) -> [String] {
    do {
        _ = try PipelineLoader.parse(text, file: "p.yaml")
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

@Suite("routed outputs")
struct RoutedOutputTests {
    @Test("spec.outputs reads each output's id, topic, format, when and events; spec.output is a list of one with id main")
    func reads() throws {
        let pipeline = try PipelineLoader.parse(routed, file: "p.yaml")
        #expect(pipeline.outputs.map(\.id) == ["all", "alerts", "slow"])
        #expect(pipeline.outputs.map(\.topic) == ["telemetry-all", "telemetry-alerts", "telemetry-slow"])
        #expect(pipeline.outputs.map(\.format) == [.quix, .json, .quix])
        #expect(pipeline.outputs.map { $0.when?.source } == [nil, "speed > 100", "speed <= 50"])
        #expect(pipeline.outputs.map(\.events) == [true, false, true])
        let single = routed.components(separatedBy: "  outputs:")[0] + "  output:\n    topic: telemetry-all\n    when: \"speed > 1\"\n"
        let one = try PipelineLoader.parse(single, file: "p.yaml")
        #expect(one.outputs.map(\.id) == ["main"] && one.outputs[0].when?.source == "speed > 1")
    }

    @Test("broken outputs give their error with line, column and key path", arguments: [
        (routedWith("when: \"speed > 100\"", "when: \"speed + 100\""), [
            "p.yaml:17:13: spec.outputs[1].when: column 1: expected a condition (a boolean), found a number\n  speed + 100\n  ^",
        ]),
        (routedWith("when: \"speed <= 50\"", "when: \"speed <=\""), [
            "p.yaml:21:13: spec.outputs[2].when: column 9: unexpected end of expression\n  speed <=\n          ^",
        ]),
        (routedWith("id: slow", "id: all"), [#"p.yaml:19:11: spec.outputs[2].id: "all" is the id of an earlier output (topic telemetry-all); ids must be unique"#]),
        (routedWith("topic: telemetry-slow", "topic: telemetry-all"), [
            #"p.yaml:20:14: spec.outputs[2].topic: "telemetry-all" is also output all's topic; two outputs would write one stream twice"#,
        ]),
        (routedWith("events: false", "events: sometimes"), [#"p.yaml:18:15: spec.outputs[1].events: expected true or false, found "sometimes""#]),
        (routedWith("    - id: all\n", "    - name: all\n"), [
            #"p.yaml:12:7: spec.outputs[0].name: unknown key; expected one of id, topic, format, buffer, when, events"#, #"p.yaml:12:7: spec.outputs[0].id: missing; it is required"#,
        ]),
        (routedWith("  outputs:\n", "  output: { topic: x }\n  outputs:\n"), [
            "p.yaml:13:5: spec.outputs: spec.output and spec.outputs are both given; keep one (spec.output is a list of one)",
        ]),
        (routedWith("  outputs:\n", "  outputs: []\n  unused:\n"), [
            "p.yaml:11:12: spec.outputs: expected at least one output",
            "p.yaml:12:3: spec.unused: unknown key; expected one of input, stages, output, outputs, tables, delivery, checkpoint, state, onError",
        ]),
    ])
    func broken(_ text: String, _ expected: [String]) {
        #expect(errors(text) == expected)
    }

    @Test("a pipeline without spec.output or spec.outputs says what it needs")
    func missing() {
        let text = routed.components(separatedBy: "  outputs:")[0]
        #expect(errors(text) == ["p.yaml:6:3: spec.output: missing; a pipeline needs spec.output, or a list of routed outputs in spec.outputs"])
    }

    @Test("a row goes to every output whose when holds; an output without when takes all rows")
    func routesRows() throws {
        let routes = OutputRoutes(try PipelineLoader.parse(routed, file: "p.yaml").outputs)
        var frame = TimeseriesFrame(timestamps: [1, 2, 3, 4])
        frame["speed"] = NumericColumn([120, 40, nil, 250])
        let result = routes.route(frame)
        #expect(result.map(\.output) == [0, 1, 2])
        #expect(result[0].frame.timestamps == [1, 2, 3, 4])
        #expect(result[1].frame.timestamps == [1, 4], "speed > 100; a missing cell makes the comparison false")
        #expect(result[2].frame.timestamps == [2])
        var none = TimeseriesFrame(timestamps: [5])
        none["speed"] = NumericColumn([70])
        #expect(routes.route(none).map(\.output) == [0], "an output that takes no row of a frame gets nothing")
        #expect([0, 1, 2].map(routes.takesEvents) == [true, false, true])
    }

    @Test("quixd test compares what each output takes with expectations that name it")
    func testFileExpectations() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("routes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        func suite(_ expect: String) throws -> PipelineTestSuite {
            let file = directory.appendingPathComponent("routes.test.yaml").path
            try """
            tests:
              - name: routes
                input:
                  - stream: car-1
                    rows:
                      - { timestamp: 1s, speed: 120 }
                      - { timestamp: 2s, speed: 40 }
                      - { timestamp: 3s, speed: 250 }
                expect:
            \(expect)
            """.write(toFile: file, atomically: true, encoding: .utf8)
            return try PipelineTestSuite(file: file)
        }
        let pipeline = try PipelineLoader.parse(routed, file: "p.yaml")
        let right = try suite(
            """
                  - { stream: car-1, output: alerts, rows: [{ timestamp: 1s, speed: 120 }, { timestamp: 3s, speed: 250 }], events: [] }
                  - { stream: car-1, output: slow, rows: [{ timestamp: 2s, speed: 40 }], events: [{ id: fast }] }
                  - { stream: car-1, rows: [{ speed: 120 }, { speed: 40 }, { speed: 250 }] }
            """)
        let passed = try right.run(pipeline, file: "p.yaml", registry: .builtIn)
        #expect(passed.passed, "\(passed.lines)")
        let wrong = try suite("      - { stream: car-1, output: alerts, rows: [{ timestamp: 2s, speed: 40 }], events: [{ id: fast }] }")
        let failed = try wrong.run(pipeline, file: "p.yaml", registry: .builtIn)
        #expect(!failed.passed)
        #expect(failed.lines.contains("     stream car-1 → alerts: expected 1 rows, got 2"), "\(failed.lines)")
        #expect(failed.lines.contains("     stream car-1 → alerts: expected 1 events, got 0"), "\(failed.lines)")
        let unknown = try suite("      - { stream: car-1, output: fast, rows: [] }")
        let error = try #require(throws: ConfigErrors.self) { try unknown.run(pipeline, file: "p.yaml", registry: .builtIn) }
        #expect(error.errors.map(\.keyPath) == ["tests[0].expect[0].output"], "\(error)")
        #expect(error.errors.first?.line ?? 0 > 0 && error.description.contains("no output \"fast\"; its outputs: all, alerts, slow"), "\(error)")
    }
}
