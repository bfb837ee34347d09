import Foundation
@testable import QuixPipeline
import QuixStreams
import Testing

@Suite("join stage")
struct JoinStageTests {
    @Test("join's options are checked", arguments: [
        (["topic": "positions", "columns": "lat"], "tolerance: missing; stage join needs it (how much older than the row its match may be (data time))"),
        (["topic": "positions", "columns": "lat", "tolerance": "5s", "format": "raw"], "format: a join reads rows: quix or json, not raw"),
        (["topic": "positions", "columns": "lat", "tolerance": "0s"], #"tolerance: expected a positive duration such as 250ms, 10s, 5m or 1h, found "0s""#),
    ])
    func optionErrors(options: [String: String], expected: String) {
        do {
            _ = try make("join", options.mapValues { $0 == "lat" ? list(["lat"]) : ConfigValue(.scalar($0), line: 1, column: 1) })
            Issue.record("accepted \(options)")
        } catch let error as ConfigErrors {
            #expect(error.errors.map { "\($0.keyPath.replacingOccurrences(of: "spec.stages[0].with.", with: "")): \($0.message)" } == [expected])
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test("quixd test feeds a join's topic from input rows that name it, and names a topic the pipeline does not read at its place")
    func testFile() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let pipeline = try PipelineLoader.parse(
            """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: track }
            spec:
              input: { topic: telemetry }
              stages:
                - { id: position, uses: join, with: { topic: positions, columns: [lat], tolerance: 10s, onMissing: drop } }
              output: { topic: tracked }
            """, file: "p.yaml")
        let file = directory + "/track.test.yaml"
        try """
            tests:
              - name: as of
                input:
                  - stream: car-1
                    topic: positions
                    rows: [{ timestamp: 0s, lat: 1 }, { timestamp: 10s, lat: 2 }]
                  - stream: car-1
                    rows: [{ timestamp: 5s }, { timestamp: 12s }, { timestamp: 25s }]
                expect:
                  - stream: car-1
                    rows: [{ timestamp: 5s, lat: 1 }, { timestamp: 12s, lat: 2 }]
            """.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try PipelineTestSuite(file: file).run(pipeline, file: "p.yaml", registry: .builtIn)
        #expect(result.passed, "\(result.lines)")

        try String(contentsOfFile: file, encoding: .utf8).replacingOccurrences(of: "topic: positions", with: "topic: gps")
            .write(toFile: file, atomically: true, encoding: .utf8)
        #expect {
            try PipelineTestSuite(file: file).run(pipeline, file: "p.yaml", registry: .builtIn)
        } throws: { error in
            "\(error)".contains("track.test.yaml:5:16: tests[0].input[0].topic: the pipeline reads no topic \"gps\"; it reads telemetry, positions")
        }
    }

    @Test("outside a running pipeline a join says it needs one, instead of joining nothing")
    func needsARunningPipeline() throws {
        let stage = try make("join", ["topic": value("positions", 1), "columns": list(["lat"]), "tolerance": value("5s", 1)])
        let context = StageContext(pipeline: "p", stage: "s", streamID: "A", state: nil, emitted: EmittedEffects())
        let error = #expect(throws: PipelineError.self) { try stage.process(frame([1], [1]), context) }
        #expect(error?.message.contains("reads its topic only in a running pipeline") == true, "\(String(describing: error))")
    }
}
