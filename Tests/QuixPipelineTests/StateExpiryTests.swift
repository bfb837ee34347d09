import Foundation
@testable import QuixPipeline
import QuixStreams
import Testing

/// A pipeline of `stages` (YAML flow items) with `state` as its `spec.state`.
private func pipeline(_ stages: String, state: String? = nil) throws -> Pipeline {
    try PipelineLoader.parse(
        """
        apiVersion: quixd/v1
        kind: Pipeline
        metadata: { name: p }
        spec:
          input: { topic: in }
          stages: [\(stages)]
          output: { topic: out }
        \(state.map { "  state: \($0)" } ?? "")
        """, file: "p.yaml")
}

/// One stream's frames run through a pipeline's stages and its expiry, on `local`.
private struct ExpiringRun {
    let chain: StageChain
    let expiry: StreamStateExpiry?

    init(_ pipeline: Pipeline, metrics: PipelineMetrics? = nil) throws {
        chain = try StageChain(pipeline, file: "p.yaml", registry: .builtIn)
        expiry = StreamStateExpiry(pipeline: pipeline, chain: chain, metrics: metrics)
    }

    func process(_ frame: TimeseriesFrame, stream: String, on local: LocalState) throws -> TimeseriesFrame {
        let contexts = chain.contexts(streamID: stream, state: { local.stream(stream, store: $0) })
        return try expiry!.process(frame, partition: 0, state: { local.stream(stream, store: $0) }) { try chain.process($0, contexts) }
    }
}

@Suite("state expiry: ttl per stage, spec.state.idle and onStreamEnd, the checkpoint sweep")
struct StateExpiryTests {
    @Test("ttl: a row ttl or more after the stage's latest row of its stream starts from empty state, within a frame or across frames")
    func ttlStartsAfresh() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make("cumulative", ["column": "x", "ttl": "5s"])
        let context = makeContext(local)
        // 2 → 7 is 5 s: afresh; 7 → 11 is 4 s: kept; 11 → 20 is afresh, across frames.
        #expect(cells(try stage.process(frame([0, 2, 7, 11], [1, 2, 4, 8]), context), "x_cumulative_sum") == [1, 3, 4, 12])
        #expect(cells(try stage.process(frame([20, 6], [16, 32]), context), "x_cumulative_sum") == [16, 48])
        #expect(try local.stream("A", store: "s").get(ExpiringStage.latestKey, as: Int.self) == Int(20 * s))
        // Another stream is not affected by A's time.
        #expect(cells(try stage.process(frame([1], [64]), makeContext(local, stream: "B")), "x_cumulative_sum") == [64])
    }

    @Test(
        "ttl and idle options: a duration of at least 1 ns, on stateful stages only; spec.state keys with file:line:col",
        arguments: [
            ("{ id: f, uses: filter, with: { where: 'x > 1', ttl: 5s } }", nil,
             "p.yaml:6:64: spec.stages[0].with.ttl: stage filter keeps no state, so it has none to expire"),
            ("{ id: c, uses: cumulative, with: { column: x, ttl: 0s } }", nil, #"p.yaml:6:63: spec.stages[0].with.ttl: expected a positive duration such as 250ms, 10s, 5m or 1h, found "0s""#),
            ("{ id: c, uses: cumulative, with: { column: x } }", "{ idle: soon }", #"p.yaml:8:18: spec.state.idle: expected a positive duration such as 250ms, 10s, 5m or 1h, found "soon""#),
            ("{ id: c, uses: cumulative, with: { column: x } }", "{ onStreamEnd: forget }", #"p.yaml:8:25: spec.state.onStreamEnd: expected one of keep | drop, found "forget""#),
            ("{ id: c, uses: cumulative, with: { column: x } }", "{ idle: 1h, ttl: 5s }", #"p.yaml:8:22: spec.state.ttl: unknown key"#),
        ] as [(String, String?, String)])
    func optionErrors(stages: String, state: String?, expected: String) {
        do {
            _ = try pipeline(stages, state: state)
            Issue.record("accepted")
        } catch let error as ConfigErrors {
            #expect(error.errors.map(\.description).contains { $0.hasPrefix(expected) }, "\(error.errors.map(\.description))")
        } catch {
            Issue.record("\(error)")
        }
    }

    @Test("spec.state: onStreamEnd and idle read, keep and no idle by default")
    func stateKeys() throws {
        let defaults = try pipeline("{ id: c, uses: cumulative, with: { column: x } }")
        #expect(defaults.expiry == Pipeline.StateExpiry(onStreamEnd: .keep, idle: nil))
        let set = try pipeline("{ id: c, uses: cumulative, with: { column: x } }", state: "{ onStreamEnd: drop, idle: 90s }")
        #expect(set.expiry == Pipeline.StateExpiry(onStreamEnd: .drop, idle: .seconds(90)))
        // Nothing to expire: no sweep, no index.
        #expect(try ExpiringRun(defaults).expiry == nil)
    }

    @Test("idle: a row idle or more after its stream's previous one starts with every stage's state empty")
    func idleStartsAfresh() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let run = try ExpiringRun(
            pipeline(
                "{ id: sum, uses: cumulative, with: { column: x } }, { id: n, uses: cumulative, with: { column: x, aggregate: count } }",
                state: "{ idle: 1m }"))
        let first = try run.process(frame([0, 30, 90, 100], [1, 2, 4, 8]), stream: "A", on: local)
        #expect(cells(first, "x_cumulative_sum") == [1, 3, 4, 12] && cells(first, "x_cumulative_count") == [1, 2, 1, 2])
        let second = try run.process(frame([200], [16]), stream: "A", on: local)
        #expect(cells(second, "x_cumulative_sum") == [16] && cells(second, "x_cumulative_count") == [1])
    }

    @Test(
        "a restart from a checkpoint in the middle gives what an uninterrupted run gives, with ttl and idle",
        arguments: [
            ("{ id: sum, uses: cumulative, with: { column: x, ttl: 6s } }", nil),
            ("{ id: sum, uses: cumulative, with: { column: x } }", "{ idle: 6s }"),
            ("{ id: w, uses: window, with: { type: session, gap: 3s, column: x, aggregates: [sum], ttl: 6s } }", "{ idle: 10s }"),
        ] as [(String, String?)])
    func restart(stages: String, state: String?) throws {
        let run = try ExpiringRun(pipeline(stages, state: state))
        let base: Int64 = 1_700_000_000 * s
        let frames = [
            frame([0, 1, 3], [1, 2, nil], base: base), frame([4, 7], [4, 8], base: base), frame([9, 8, 12], [16, 32, 64], base: base),
            frame([13, 15, 19], [nil, 128, 256], base: base), frame([21, 11, 24], [512, 1024, 2048], base: base),
            frame([31, 35], [4096, 8192], base: base), frame([50], [1], base: base), frame([52], [2], base: base),
        ]
        func process(_ frames: ArraySlice<TimeseriesFrame>, in directory: String, checkpointAfter: Int? = nil) throws -> [TimeseriesFrame] {
            let local = try LocalState(directory: directory)
            var outputs: [TimeseriesFrame] = []
            for (index, frame) in frames.enumerated() {
                outputs.append(try run.process(frame, stream: "A", on: local))
                if index + 1 == checkpointAfter { try local.checkpoint(offset: Int64(index)) }
            }
            return outputs
        }
        let other = try scratchDirectory()
        defer { remove(other) }
        let uninterrupted = try process(frames[...], in: other)
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let beforeCrash = try process(frames[0..<5], in: directory, checkpointAfter: 3)
        let interrupted = Array(beforeCrash[0..<3]) + (try process(frames[3...], in: directory))
        #expect(interrupted == uninterrupted)
        if stages.contains("cumulative") {
            // 24 → 31 and 35 → 50 are gaps of 6 s or more: the sum starts again after each.
            #expect(cells(interrupted, "x_cumulative_sum") == [1, 3, 3, 7, 15, 31, 63, 127, 127, 255, 511, 1023, 2047, 4095, 4096, 12288, 1, 3])
        } else {
            #expect(!cells(interrupted, "x_sum").isEmpty)
        }
    }

    @Test("the sweep: idle streams lose all their state, a stage's state goes after its ttl, others keep theirs; counted by reason")
    func sweep() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let metrics = PipelineMetrics()
        let run = try ExpiringRun(
            pipeline(
                "{ id: sum, uses: cumulative, with: { column: x, ttl: 10s } }, { id: total, uses: cumulative, with: { column: x } }",
                state: "{ idle: 1m }"),
            metrics: metrics)
        for (stream, second) in [("old", 0), ("stale", 85), ("fresh", 95), ("now", 100)] as [(String, Int64)] {
            _ = try run.process(frame([second], [1]), stream: stream, on: local)
        }
        try run.expiry!.sweep(local.access)

        func keys(_ stream: String, _ store: String) throws -> [String] { try local.stream(stream, store: store).keys() }
        // old: 100 s behind the partition's latest row: idle, everything gone, its index entry too.
        #expect(try keys("old", "sum").isEmpty && keys("old", "total").isEmpty && keys("old", StreamStateExpiry.indexStore).isEmpty)
        // stale: 15 s behind: past the ttl of sum, not idle.
        #expect(try keys("stale", "sum").isEmpty && !keys("stale", "total").isEmpty && !keys("stale", StreamStateExpiry.indexStore).isEmpty)
        for stream in ["fresh", "now"] { #expect(try !keys(stream, "sum").isEmpty && !keys(stream, "total").isEmpty) }
        let exposition = metrics.exposition()
        #expect(exposition.contains(#"quixd_state_expired_total{pipeline="p",reason="idle"} 1"#), "\(exposition)")
        #expect(exposition.contains(#"quixd_state_expired_total{pipeline="p",reason="ttl"} 1"#), "\(exposition)")

        // Checkpointed, and a new process (no frame seen yet) still knows the partition's data time.
        try local.checkpoint(offset: 3)
    }

    @Test("the sweep after a restart knows the partition's data time before any frame")
    func sweepAfterRestart() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        do {
            let local = try LocalState(directory: directory)
            let run = try ExpiringRun(pipeline("{ id: total, uses: cumulative, with: { column: x } }", state: "{ idle: 1h }"))
            for (stream, second) in [("stale", 85), ("fresh", 95), ("now", 100)] as [(String, Int64)] {
                _ = try run.process(frame([second], [1]), stream: stream, on: local)
            }
            try run.expiry!.sweep(local.access)
            try local.checkpoint(offset: 3)
        }
        let reopened = try LocalState(directory: directory)
        try ExpiringRun(pipeline("{ id: total, uses: cumulative, with: { column: x } }", state: "{ idle: 4s }")).expiry!.sweep(reopened.access)
        for stream in ["stale", "fresh"] { #expect(try reopened.stream(stream, store: "total").keys().isEmpty) }
        #expect(try !reopened.stream("now", store: "total").keys().isEmpty)
    }

    @Test("the sweep is bounded: at most 1,000 keys of the index per checkpoint, walking on where it stopped")
    func sweepIsBounded() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let run = try ExpiringRun(pipeline("{ id: sum, uses: cumulative, with: { column: x } }", state: "{ idle: 1m }"))
        let streams = 2_500
        for index in 0..<streams { _ = try run.process(frame([0], [1]), stream: "s-\(index)", on: local) }
        _ = try run.process(frame([3600], [1]), stream: "late", on: local)
        func left() throws -> Int { try local.access.streams(in: "sum", after: nil, limit: 10_000).ids.count }
        #expect(try left() == streams + 1)
        // The first step reads the partition's entry and 999 streams, the late one among them.
        try run.expiry!.sweep(local.access)
        #expect(try left() == streams + 1 - 998)
        try run.expiry!.sweep(local.access)
        #expect(try left() == streams + 1 - 1998)
        try run.expiry!.sweep(local.access)
        try run.expiry!.sweep(local.access)
        #expect(try left() == 1)
    }
}
