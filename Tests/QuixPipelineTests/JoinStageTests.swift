import Foundation
import QuixPipeline
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

    @Test("outside a running pipeline (quixd test) a join says it needs one, instead of joining nothing")
    func needsARunningPipeline() throws {
        let stage = try make("join", ["topic": value("positions", 1), "columns": list(["lat"]), "tolerance": value("5s", 1)])
        let context = StageContext(pipeline: "p", stage: "s", streamID: "A", state: nil, emitted: EmittedEffects())
        let error = #expect(throws: PipelineError.self) { try stage.process(frame([1], [1]), context) }
        #expect(error?.message.contains("reads its topic only in a running pipeline (quixd run)") == true, "\(String(describing: error))")
    }
}
