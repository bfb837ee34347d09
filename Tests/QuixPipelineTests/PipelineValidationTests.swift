import Foundation
@testable import QuixPipeline
import SpeedingTicketStage
import Testing

/// The stages quixd has: the built-in ones and the speeding-ticket stage target.
private let registry = StageRegistry.builtIn.registering([SpeedingTicketStage.descriptor])

/// The example pipeline of DESIGN.md (pipelines/gforce.yaml), as text, to break one line at a time.
private let example = """
    apiVersion: quixd/v1
    kind: Pipeline
    metadata:
      name: gforce
    spec:
      input:
        topic: telemetry
        consumerGroup: gforce
        format: quix
        startFrom: earliest
      stages:
        - id: total
          uses: compute
          with: { column: gForceTotal, expression: "abs(gForceX) + abs(gForceY) + abs(gForceZ)" }
        - id: avg
          uses: rolling
          with: { column: gForceTotal, window: 10s, aggregate: mean, as: gForceTotal_avg10s }
      output:
        topic: telemetry-enriched
        buffer: { packetSize: 100, timeSpan: 100ms }
      checkpoint: { interval: 1s }
      onError: { policy: dead-letter, topic: telemetry-dlq }

    """

/// `example` with `old` replaced by `new` (which must occur exactly once).
private func broken(_ old: String, _ new: String) -> String {
    precondition(example.components(separatedBy: old).count == 2, "\(old) must occur once")
    return example.replacingOccurrences(of: old, with: new)
}

/// The errors `text` gives, one line each.
private func errors(_ text: String, environment: [String: String] = [:]) -> [String] {
    do {
        _ = try PipelineLoader.parse(text, file: "p.yaml", environment: environment, stages: registry)
        return []
    } catch {
        return error.errors.map(\.description)
    }
}

@Suite("pipeline files")
struct PipelineValidationTests {
    @Test("the example pipeline of DESIGN.md validates unchanged, with its values")
    func designExample() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let pipeline = try PipelineLoader.load(file: root.appendingPathComponent("pipelines/gforce.yaml").path, environment: [:], stages: registry)
        #expect(pipeline.name == "gforce" && pipeline.input.topic == "telemetry" && pipeline.input.consumerGroup == "gforce")
        #expect(pipeline.stages.map(\.uses) == ["compute", "rolling", "speeding-ticket"])
        #expect(pipeline.stages[0].options["expression"]?.kind == .scalar("abs(gForceX) + abs(gForceY) + abs(gForceZ)"))
        #expect(pipeline.outputs[0].buffer == Pipeline.Buffer(packetSize: 100, timeSpan: .milliseconds(100), timeout: .seconds(1)))
        #expect(pipeline.delivery == .atLeastOnce && pipeline.checkpointInterval == .seconds(1) && pipeline.changelog)
        #expect(pipeline.onError == Pipeline.ErrorPolicy(kind: .deadLetter, topic: "telemetry-dlq"))
    }

    @Test("defaults: the consumer group is the pipeline's name, quix in and out, earliest, at-least-once, stop on error")
    func defaults() throws {
        let pipeline = try PipelineLoader.parse(
            """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: small }
            spec:
              input: { topic: in }
              stages: [{ id: a, uses: select, with: { columns: [x] } }]
              output: { topic: out }
            """, file: "small.yaml")
        #expect(pipeline.input == Pipeline.Input(topic: "in", consumerGroup: "small", format: .quix, startFrom: .earliest))
        #expect(pipeline.onError == Pipeline.ErrorPolicy(kind: .stop, topic: nil) && pipeline.delivery == .atLeastOnce)
    }

    /// Broken files and the loader's errors for each (the schema tests measure how many of them
    /// the JSON Schema refuses too).
    static let brokenCases: [(text: String, errors: [String])] = [
        (broken("kind: Pipeline", "kind: Pipe"), [#"p.yaml:2:7: kind: expected Pipeline, found "Pipe""#]),
        (broken("apiVersion: quixd/v1", "apiVersion: quixd/v2"), [#"p.yaml:1:13: apiVersion: expected quixd/v1, found "quixd/v2""#]),
        (broken("    topic: telemetry\n", "    topik: telemetry\n"), [
            #"p.yaml:7:5: spec.input.topik: unknown key; did you mean "topic"?"#, #"p.yaml:7:5: spec.input.topic: missing; it is required"#,
        ]),
        (broken("    format: quix\n", "    format: jsn\n"), [#"p.yaml:9:13: spec.input.format: expected one of quix | json | raw, found "jsn"; did you mean "json"?"#]),
        (broken("startFrom: earliest", "startFrom: beginning"), [#"p.yaml:10:16: spec.input.startFrom: expected one of earliest | latest, found "beginning""#]),
        (broken("uses: rolling", "uses: rolling-mean"), [
            #"p.yaml:16:13: spec.stages[1].uses: no stage named "rolling-mean"; did you mean "rolling"? known stages: filter, compute, select, drop, rename, rolling, window, cumulative, event, throttle, dedup, lookup, join, speeding-ticket"#,
        ]),
        (broken("    - id: avg", "    - id: total"), [#"p.yaml:15:11: spec.stages[1].id: "total" is the id of an earlier stage; ids must be unique"#]),
        (broken("packetSize: 100", "packetSize: lots"), [#"p.yaml:20:27: spec.output.buffer.packetSize: expected a whole number in 1...1000000, found "lots""#]),
        (broken("timeSpan: 100ms", "timeSpan: 100 years"), [
            #"p.yaml:20:42: spec.output.buffer.timeSpan: expected a positive duration such as 250ms, 10s, 5m or 1h, found "100 years""#,
        ]),
        (broken("interval: 1s", "interval: 0s"), [#"p.yaml:21:27: spec.checkpoint.interval: expected a positive duration such as 250ms, 10s, 5m or 1h, found "0s""#]),
        (broken("policy: dead-letter, topic: telemetry-dlq", "policy: dead-letter"), [#"p.yaml:22:12: spec.onError.topic: missing; the dead-letter policy needs a topic"#]),
        (broken("policy: dead-letter", "policy: retry"), [#"p.yaml:22:22: spec.onError.policy: expected one of dead-letter | skip | stop, found "retry""#]),
        (broken("  name: gforce", "  name: -GForce/1"), [#"p.yaml:4:9: metadata.name: expected letters, digits, dots, dashes and underscores, starting with a letter or digit (at most 200), found "-GForce/1""#]),
        (broken("  checkpoint: { interval: 1s }", "  checkpoints: { interval: 1s }"), [#"p.yaml:21:3: spec.checkpoints: unknown key; did you mean "checkpoint"?"#]),
        (broken("    topic: telemetry-enriched", "    topic: \"\""), [#"p.yaml:19:12: spec.output.topic: expected a non-empty value, found an empty one"#]),
        (broken("      uses: compute", "      uses: [compute]"), [#"p.yaml:13:13: spec.stages[0].uses: expected a value, found a list"#]),
        (broken("  output:\n    topic: telemetry-enriched\n    buffer: { packetSize: 100, timeSpan: 100ms }\n", "  output: none\n"), [#"p.yaml:18:11: spec.output: expected a mapping (key: value lines), found "none""#]),
        ("apiVersion: quixd/v1\nkind: Pipeline\nmetadata: [gforce\n", [#"p.yaml:4:1: YAML syntax: did not find expected ',' or ']'"#]),
    ]

    @Test("each broken file gives exactly its error, with line, column and key path", arguments: brokenCases)
    func brokenFiles(_ text: String, _ expected: [String]) {
        #expect(errors(text) == expected)
    }

    @Test("all mistakes at once, in file order")
    func severalMistakes() {
        let text = broken("kind: Pipeline", "kind: Pipe").replacingOccurrences(of: "startFrom: earliest", with: "startFrom: soon")
        #expect(errors(text) == [
            #"p.yaml:2:7: kind: expected Pipeline, found "Pipe""#,
            #"p.yaml:10:16: spec.input.startFrom: expected one of earliest | latest, found "soon""#,
        ])
    }

    @Test("${VAR} and ${VAR:default} come from the environment; an undefined variable without a default is an error")
    func interpolation() throws {
        let text = broken("    topic: telemetry\n", "    topic: ${INPUT_TOPIC}\n").replacingOccurrences(
            of: "topic: telemetry-enriched", with: "topic: ${OUTPUT_TOPIC:enriched}-${REGION:eu}")
        let pipeline = try PipelineLoader.parse(text, file: "p.yaml", environment: ["INPUT_TOPIC": "cars", "REGION": "us"], stages: registry)
        #expect(pipeline.input.topic == "cars" && pipeline.outputs[0].topic == "enriched-us")
        #expect(errors(text) == [
            "p.yaml:7:12: spec.input.topic: environment variable INPUT_TOPIC is not set and has no default; set it or write ${INPUT_TOPIC:default}"
        ])
        #expect(errors(broken("  name: gforce", "  name: ${bad-name}")) == [
            #"p.yaml:4:9: metadata.name: "${bad-name}" is not a variable reference; expected ${NAME} or ${NAME:default}"#
        ])
    }

    @Test("--set overrides keys, adds missing ones, reaches into lists, and says what is wrong with a bad one")
    func overrides() throws {
        let pipeline = try PipelineLoader.parse(
            example, file: "p.yaml",
            overrides: [
                "spec.input.topic=cars", "spec.output.buffer.timeout=2s", "spec.stages[1].with.window=30s",
                "spec.delivery=exactly-once", "spec.output.buffer={packetSize: 5}",
            ], stages: registry)
        #expect(pipeline.input.topic == "cars" && pipeline.delivery == .exactlyOnce)
        #expect(pipeline.stages[1].options["window"]?.kind == .scalar("30s"))
        #expect(pipeline.outputs[0].buffer == Pipeline.Buffer(packetSize: 5, timeSpan: nil, timeout: nil), "a later --set replaces the whole buffer")
        #expect(throws: Never.self) { try PipelineLoader.parse(example, file: "p.yaml", overrides: ["spec.output.buffer.timeout=2s"], stages: registry) }

        func failures(_ overrides: [String]) -> [String] {
            do {
                _ = try PipelineLoader.parse(example, file: "p.yaml", overrides: overrides, stages: registry)
                return []
            } catch {
                return error.errors.map(\.description)
            }
        }
        #expect(failures(["spec.input.topic"]) == ["--set: spec.input.topic: expected path.to.key=value"])
        #expect(failures(["spec.stages[5].id=x"]) == ["--set: spec.stages[5].id=x: [5] is past the end of a list of 2"])
        #expect(failures(["spec.input.topic.name=x"]) == [#"--set: spec.input.topic.name=x: "name" goes into a value that is not a mapping"#])
        #expect(failures(["spec.delivery=twice"]) == [
            #"p.yaml: spec.delivery: expected one of at-least-once | exactly-once, found "twice""#
        ], "a bad value is caught by the same checks as the file's")
        let noChangelog = failures(["spec.delivery=exactly-once", "spec.state={changelog: false}"])
        #expect(noChangelog.count == 1 && noChangelog.first?.contains("spec.state.changelog: exactly-once needs the changelog") == true, "\(noChangelog)")
        #expect(failures(["spec.delivery=exactly-once"]).isEmpty)
    }
}
