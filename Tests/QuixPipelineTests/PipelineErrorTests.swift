@testable import QuixPipeline
import QuixProtocol
@testable import QuixStreams
import Testing

@Suite("typed pipeline errors")
struct PipelineErrorTests {
    private struct Unknown: Error, CustomStringConvertible {
        var description: String { "disk on fire" }
    }

    private func failure(_ error: any Error, _ phase: PackageFailure.Phase) -> PackageFailure {
        PackageFailure(
            topic: "telemetry", partition: 3, offset: 42, key: nil, value: [], timestampMilliseconds: nil, streamID: "car-1", error: error, phase: phase)
    }

    @Test("a failure is classified by its code, not by matching words, and carries stage, topic, partition and offset")
    func fromPackageFailure() {
        let undecodable = PipelineError(failure(QuixProtocolError(.truncated, "the value ends early"), .decoding))
        #expect(undecodable.code == .malformedMessage && undecodable.stage == "input")
        #expect(undecodable.topic == "telemetry" && undecodable.partition == 3 && undecodable.offset == 42)

        let json = #expect(throws: PipelineError.self) { try MessageFormats.decodeJSON(Array("{\"a\":".utf8)[...], kafkaTimestampMilliseconds: 0) }
        #expect(json?.code == .malformedMessage)

        let stage = PipelineError(failure(PipelineError.at(stage: "tickets", PipelineError(.badData, "text in camera_frame")), .handling("a handler of stream car-1")))
        #expect(stage.code == .badData && stage.stage == "tickets" && stage.message == "text in camera_frame")
        #expect(stage.description == "stage tickets, telemetry[3]@42: text in camera_frame (bad-data)")

        let other = PipelineError(failure(PipelineError.at(stage: "sum", Unknown()), .handling("a handler of stream car-1")))
        #expect(other.code == .failed && other.stage == "sum" && other.message == "disk on fire")

        let handler = PipelineError(failure(Unknown(), .handling("a handler of stream car-1")))
        #expect(handler.code == .failed && handler.stage == "handler")
    }

    @Test("a stage chain names the stage that threw, keeping a stage's own code")
    func chainNamesTheStage() throws {
        let pipeline = try PipelineLoader.parse(
            """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: p }
            spec:
              input: { topic: in }
              stages:
                - { id: keep, uses: filter, with: { where: "speed > 0" } }
                - { id: tables, uses: lookup, with: { table: vehicles, columns: [model] } }
              tables: { vehicles: { topic: vehicles } }
              output: { topic: out }
            """, file: "p.yaml")
        let chain = try StageChain(pipeline, file: "p.yaml", registry: .builtIn)
        var frame = TimeseriesFrame(timestamps: [1])
        frame["speed"] = NumericColumn([10])
        let error = #expect(throws: PipelineError.self) { try chain.process(frame, chain.contexts(streamID: "car-1", state: nil, tables: [:])) }
        #expect(error?.stage == "tables" && error?.code == .configuration, "\(String(describing: error))")
    }
}
