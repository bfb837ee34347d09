import Foundation
@testable import QuixPipeline
import QuixStreams
import Testing

@Suite("stateful stages")
struct StatefulStageTests {
    // MARK: rolling

    @Test(
        "rolling by duration: rows in (t - window, t], across frames, missing cells skipped, an empty window missing (count 0)",
        arguments: [
            ("mean", [1, 1, 2, 4, 4, 7, nil]), ("sum", [1, 1, 4, 8, 8, 7, nil]), ("count", [1, 1, 2, 2, 2, 1, 0]),
            ("min", [1, 1, 1, 3, 3, 7, nil]), ("max", [1, 1, 3, 5, 5, 7, nil]),
        ] as [(String, [Double?])])
    func rollingByDuration(aggregate: String, expected: [Double?]) throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make("rolling", ["column": "x", "window": "3s", "aggregate": aggregate])
        let context = makeContext(local)
        let outputs = [
            try stage.process(frame([0, 1, 2], [1, nil, 3]), context),
            try stage.process(frame([3, 4, 6], [5, nil, 7]), context),
            try stage.process(frame([10], [nil]), context),
        ]
        #expect(cells(outputs, "x_\(aggregate)") == expected)
        #expect(cells(outputs, "x") == [1, nil, 3, 5, nil, 7, nil])
        #expect(outputs.flatMap(\.timestamps) == [0, 1, 2, 3, 4, 6, 10].map { $0 * s })
    }

    @Test("rolling by rows: the last N rows across frames, missing cells taking a place, with the column named by as")
    func rollingByRows() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let sum = try make("rolling", ["column": "x", "window": "3", "aggregate": "sum", "as": "x_last3"])
        let count = try make("rolling", ["column": "x", "window": "3", "aggregate": "count"])
        let frames = [frame([0, 1, 2], [1, nil, 2]), frame([3, 4, 5, 6], [4, nil, nil, 8]), frame([7, 8, 9], [nil, nil, nil])]
        let sums = try frames.map { try sum.process($0, makeContext(local, stage: "sum")) }
        let counts = try frames.map { try count.process($0, makeContext(local, stage: "count")) }
        #expect(cells(sums, "x_last3") == [1, 1, 3, 6, 6, 4, 8, 8, 8, nil])
        #expect(cells(sums, "x_sum") == [])
        #expect(cells(counts, "x_count") == [1, 1, 2, 2, 2, 1, 1, 1, 1, 0])
    }

    // MARK: window

    @Test("tumbling windows: emitted only when closed (end + grace), rows in the grace counted, a late row dropped and counted")
    func tumbling() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make(
            "window",
            [
                "size": ConfigValue(.scalar("10s"), line: 1, column: 1), "grace": ConfigValue(.scalar("2s"), line: 1, column: 1),
                "column": ConfigValue(.scalar("x"), line: 1, column: 1),
                "aggregates": list(["mean", "sum", "count", "min", "max", "first", "last"]),
            ])
        let context = makeContext(local)
        let state = local.stream("A", store: "s")

        // [0s, 10s) closes when the stream reaches 12s.
        let first = try stage.process(frame([1, 4, 9, 11], [1, 3, 2, 10]), context)
        #expect(first.rowCount == 0)
        #expect(try state.get("late", as: Int.self) == nil)

        // 8s is within the grace; the missing cell at 12s closes the window; 5s is then late.
        let second = try stage.process(frame([8, 12, 5, 15], [4, nil, 100, 6]), context)
        #expect(second.timestamps == [0])
        #expect(cells(second, "x_mean") == [2.5])
        #expect(cells(second, "x_sum") == [10])
        #expect(cells(second, "x_count") == [4])
        #expect(cells(second, "x_min") == [1])
        #expect(cells(second, "x_max") == [4])
        #expect(cells(second, "x_first") == [1])
        #expect(cells(second, "x_last") == [2])  // by data time: 2 at 9s, not 4 at 8s that came later
        #expect(cells(second, "window_end") == [Double(10 * s)])
        #expect(Array(second.numeric.keys) == ["x_mean", "x_sum", "x_count", "x_min", "x_max", "x_first", "x_last", "window_end"])
        #expect(try state.get("late", as: Int.self) == 1)

        // 30s closes [10s, 20s); [20s, 30s) had no rows; [30s, 40s) stays open.
        let third = try stage.process(frame([30], [1]), context)
        #expect(third.timestamps == [10 * s])
        #expect(cells(third, "x_sum") == [16])
        #expect(cells(third, "x_mean") == [8])
        #expect(cells(third, "x_first") == [10])
        #expect(cells(third, "x_last") == [6])
        #expect(cells(third, "window_end") == [Double(20 * s)])
        #expect(try state.get("late", as: Int.self) == 1)
        #expect(try state.get("maxTimestamp", as: Int.self) == Int(30 * s))
    }

    @Test("hopping windows: a row in size/step windows, emitted in window order when closed; a row late for one window only still counts in the other")
    func hopping() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make(
            "window",
            [
                "type": ConfigValue(.scalar("hopping"), line: 1, column: 1), "size": ConfigValue(.scalar("10s"), line: 1, column: 1),
                "step": ConfigValue(.scalar("5s"), line: 1, column: 1), "column": ConfigValue(.scalar("x"), line: 1, column: 1),
                "aggregates": list(["sum", "count"]),
            ])
        let context = makeContext(local)

        let first = try stage.process(frame([1, 6, 9], [1, 2, 3]), context)
        #expect(first.timestamps == [-5 * s])
        #expect(cells(first, "x_sum") == [1] && cells(first, "x_count") == [1])
        #expect(cells(first, "window_end") == [Double(5 * s)])

        // At 12s, [0s, 10s) is closed: 7s misses it (late) but goes into [5s, 15s).
        let second = try stage.process(frame([12, 7], [4, 50]), context)
        #expect(second.timestamps == [0])
        #expect(cells(second, "x_sum") == [6] && cells(second, "x_count") == [3])
        #expect(try local.stream("A", store: "s").get("late", as: Int.self) == 1)

        let third = try stage.process(frame([20], [1]), context)
        #expect(third.timestamps == [5 * s, 10 * s])
        #expect(cells(third, "x_sum") == [59, 4])
        #expect(cells(third, "x_count") == [4, 1])
        #expect(cells(third, "window_end") == [Double(15 * s), Double(20 * s)])
    }

    @Test("sliding windows: [t - size, t] per distinct row timestamp, both ends inclusive, emitted when closed; a row after its window closed is late")
    func sliding() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make(
            "window",
            [
                "type": ConfigValue(.scalar("sliding"), line: 1, column: 1), "size": ConfigValue(.scalar("5s"), line: 1, column: 1),
                "column": ConfigValue(.scalar("x"), line: 1, column: 1), "aggregates": list(["sum", "count"]),
            ])
        let context = makeContext(local)

        let first = try stage.process(frame([1, 2, 7], [1, 2, 4]), context)
        #expect(first.timestamps == [-4 * s, -3 * s])
        #expect(cells(first, "x_sum") == [1, 3] && cells(first, "x_count") == [1, 2])
        #expect(cells(first, "window_end") == [Double(1 * s), Double(2 * s)])

        // [2s, 7s] takes the second row at 7s and the row at 2s (its start); [4s, 9s] both rows at 7s.
        let second = try stage.process(frame([7, 9, 20], [8, 16, 0]), context)
        #expect(second.timestamps == [2 * s, 4 * s])
        #expect(cells(second, "x_sum") == [14, 28] && cells(second, "x_count") == [3, 3])
        #expect(cells(second, "window_end") == [Double(7 * s), Double(9 * s)])

        let late = try stage.process(frame([8], [100]), context)
        #expect(late.rowCount == 0)
        #expect(try local.stream("A", store: "s").get("late", as: Int.self) == 1)

        let fourth = try stage.process(frame([26], [1]), context)
        #expect(fourth.timestamps == [15 * s])
        #expect(cells(fourth, "x_sum") == [0] && cells(fourth, "x_count") == [1])
        #expect(cells(fourth, "window_end") == [Double(20 * s)])
    }

    @Test("windows of two streams are kept apart: their rows, their open windows and their time")
    func twoStreams() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make("window", ["size": "10s", "column": "x", "aggregates": "sum"])
        let a = makeContext(local, stream: "A")
        let b = makeContext(local, stream: "B")

        #expect(try stage.process(frame([1, 2], [1, 2]), a).rowCount == 0)
        let fromB = try stage.process(frame([3, 25], [100, 5]), b)
        #expect(fromB.timestamps == [0] && cells(fromB, "x_sum") == [100])
        // B's time (25s) is not A's: 5s is not late for A.
        #expect(try stage.process(frame([5], [4]), a).rowCount == 0)
        let fromA = try stage.process(frame([10], [0]), a)
        #expect(fromA.timestamps == [0] && cells(fromA, "x_sum") == [7])
        let laterB = try stage.process(frame([30], [0]), b)
        #expect(laterB.timestamps == [20 * s] && cells(laterB, "x_sum") == [5])
        #expect(try local.stream("A", store: "s").get("late", as: Int.self) == nil)
    }

    // MARK: restart

    /// Frames at realistic timestamps, some out of order, with missing cells; x in powers of two
    /// so that a lost or doubled row shows in any sum.
    private static let base: Int64 = 1_700_000_000 * s
    private static let restartFrames = [
        frame([0, 1, 3], [1, 2, nil], base: base), frame([4, 7], [4, 8], base: base), frame([9, 8, 12], [16, 32, 64], base: base),
        frame([13, 15, 19], [nil, 128, 256], base: base), frame([21, 11, 24], [512, 1024, 2048], base: base),
        frame([31, 35], [4096, 8192], base: base), frame([50], [1], base: base),
    ]

    /// Processes `frames` on the state in `directory`, checkpointing after the first
    /// `checkpointAfter`, then drops the state: what was not checkpointed is lost, as in a crash.
    private func run(_ stage: any Stage, _ frames: ArraySlice<TimeseriesFrame>, in directory: String, checkpointAfter: Int? = nil) throws
        -> [TimeseriesFrame]
    {
        let local = try LocalState(directory: directory)
        let context = makeContext(local)
        var outputs: [TimeseriesFrame] = []
        for (index, frame) in frames.enumerated() {
            outputs.append(try stage.process(frame, context))
            if index + 1 == checkpointAfter { try local.checkpoint(offset: Int64(index)) }
        }
        return outputs
    }

    @Test(
        "a restart from a checkpoint in the middle of windows gives what an uninterrupted run gives: no row lost or counted twice",
        arguments: [
            ("window", ["size": "10s", "grace": "2s", "column": "x", "aggregates": "sum"], "x_sum", [63, 1472, 2560, 12288]),
            ("window", ["type": "hopping", "size": "10s", "step": "5s", "grace": "1s", "column": "x", "aggregates": "sum"], "x_sum", nil),
            ("window", ["type": "sliding", "size": "5s", "grace": "1s", "column": "x", "aggregates": "sum"], "x_sum", nil),
            ("window", ["type": "session", "gap": "3s", "grace": "1s", "column": "x", "aggregates": "sum"], "x_sum", nil),
            ("window", ["type": "tumbling", "size": "3", "column": "x", "aggregates": "sum"], "x_sum", [7, 56, 448, 3584, 12289]),
            ("window", ["type": "hopping", "size": "4", "step": "2", "column": "x", "aggregates": "sum"], "x_sum", nil),
            ("window", ["type": "tumbling", "size": "10s", "column": "x", "aggregates": "sum", "emit": "current"], "x_sum", nil),
            ("window", ["type": "session", "gap": "3s", "column": "x", "aggregates": "sum", "emit": "current"], "x_sum", nil),
            ("rolling", ["column": "x", "window": "4s", "aggregate": "sum"], "x_sum", nil),
            ("rolling", ["column": "x", "window": "3", "aggregate": "max"], "x_max", nil),
            ("cumulative", ["column": "x"], "x_cumulative_sum", nil),
            ("cumulative", ["column": "x", "ttl": "6s"], "x_cumulative_sum", [1, 3, 3, 7, 15, 31, 63, 127, 127, 255, 511, 1023, 2047, 4095, 4096, 12288, 1]),
            ("window", ["type": "session", "gap": "3s", "column": "x", "aggregates": "sum", "ttl": "6s"], "x_sum", nil),
            ("dedup", ["columns": "x", "window": "5s"], "x", nil),
            ("throttle", ["interval": "3s"], "x", [1, nil, 8, 64, 128, 256, 2048, 4096, 8192, 1]),
        ] as [(String, [String: String], String, [Double?]?)])
    func restart(uses: String, options: [String: String], column: String, expected: [Double?]?) throws {
        let stage = try make(uses, options)
        let frames = Self.restartFrames
        let other = try scratchDirectory()
        defer { remove(other) }
        let uninterrupted = try run(stage, frames[...], in: other)

        let directory = try scratchDirectory()
        defer { remove(directory) }
        // Checkpointed after frame 3; frames 4 and 5 are processed, then the process dies.
        let beforeCrash = try run(stage, frames[0..<5], in: directory, checkpointAfter: 3)
        // Reopened: the messages after the checkpoint come again.
        let afterRestart = try run(stage, frames[3...], in: directory)
        let interrupted = Array(beforeCrash[0..<3]) + afterRestart

        #expect(interrupted == uninterrupted)
        #expect(!cells(uninterrupted, column).isEmpty)
        if let expected { #expect(cells(interrupted, column) == expected) }
        if uses == "window", options["type"] == nil {
            #expect(interrupted.flatMap(\.timestamps) == [0, 10, 20, 30].map { Self.base + $0 * s })
        }
    }

    // MARK: cumulative

    @Test(
        "cumulative: a running aggregate per stream across frames, missing cells skipped",
        arguments: [
            ("sum", [nil, 3, 3, 4], [9, 9], [10]), ("count", [0, 1, 1, 2], [3, 3], [1]),
            ("min", [nil, 3, 3, 1], [1, 1], [10]), ("max", [nil, 3, 3, 3], [5, 5], [10]),
        ] as [(String, [Double?], [Double?], [Double?])])
    func cumulative(aggregate: String, firstA: [Double?], secondA: [Double?], firstB: [Double?]) throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make("cumulative", ["column": "x", "aggregate": aggregate])
        let name = "x_cumulative_\(aggregate)"
        #expect(cells(try stage.process(frame([0, 1, 2, 3], [nil, 3, nil, 1]), makeContext(local, stream: "A")), name) == firstA)
        #expect(cells(try stage.process(frame([0], [10]), makeContext(local, stream: "B")), name) == firstB)
        #expect(cells(try stage.process(frame([4, 5], [5, nil]), makeContext(local, stream: "A")), name) == secondA)
    }

    // MARK: throttle

    @Test("throttle: a row at least interval after the last kept one, per stream, across frames")
    func throttle() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make("throttle", ["interval": "10s"])
        let a = makeContext(local, stream: "A")

        let first = try stage.process(frame([0, 3, 10, 15, 21], [0, 1, 2, 3, 4]), a)
        #expect(first.timestamps == [0, 10 * s, 21 * s] && cells(first, "x") == [0, 2, 4])
        let otherStream = try stage.process(frame([5, 6], [7, 8]), makeContext(local, stream: "B"))
        #expect(otherStream.timestamps == [5 * s] && cells(otherStream, "x") == [7])
        let second = try stage.process(frame([25, 31, 32], [5, 6, 7]), a)
        #expect(second.timestamps == [31 * s] && cells(second, "x") == [6])
        let third = try stage.process(frame([40, 41], [8, 9]), a)
        #expect(third.timestamps == [41 * s])
        #expect(try stage.process(frame([45], [10]), a).rowCount == 0)
        #expect(try local.stream("A", store: "s").get("lastKept", as: Int.self) == Int(41 * s))
    }

    // MARK: options

    @Test(
        "mistakes in the options give exactly these errors",
        arguments: [
            (
                "window", ["type": value("tumbling", 8), "size": value("10s", 9), "step": value("5s", 10), "column": value("x", 11)],
                ["p.yaml:10:11: spec.stages[0].with.step: only hopping windows take a step; a tumbling window starts where the previous one ends"]
            ),
            (
                "window", ["type": value("sliding", 8), "size": value("10s", 9), "step": value("5s", 10), "column": value("x", 11)],
                ["p.yaml:10:11: spec.stages[0].with.step: only hopping windows take a step; a sliding window ends at each row"]
            ),
            (
                "window", ["type": value("hopping", 8), "size": value("10s", 9), "column": value("x", 11)],
                ["p.yaml:7:5: spec.stages[0].with.step: missing; a hopping window needs it (how far apart windows start)"]
            ),
            (
                "window", ["type": value("hopping", 8), "size": value("10s", 9), "step": value("15s", 10), "column": value("x", 11)],
                [#"p.yaml:10:11: spec.stages[0].with.step: expected a duration no longer than size (10s), found "15s""#]
            ),
            (
                "window", ["type": value("tumblin", 8), "size": value("10s", 9), "column": value("x", 11)],
                [#"p.yaml:8:11: spec.stages[0].with.type: expected one of tumbling | hopping | sliding | session, found "tumblin"; did you mean "tumbling"?"#]
            ),
            (
                "window", ["size": value("0s", 9), "grace": value("-1s", 10), "column": value("x", 11)],
                [
                    #"p.yaml:9:11: spec.stages[0].with.size: expected a positive duration such as 250ms, 10s, 5m or 1h, found "0s""#,
                    #"p.yaml:10:11: spec.stages[0].with.grace: expected a duration such as 0s, 500ms or 1m, found "-1s""#,
                ]
            ),
            (
                "window",
                [
                    "size": value("10s", 9), "column": value("x", 11),
                    "aggregates": ConfigValue(.list([value("mean", 13), value("lst", 14), value("avg", 15)]), line: 12, column: 11),
                ],
                [
                    #"p.yaml:12:11: spec.stages[0].with.aggregates: expected one of mean | sum | min | max | count | first | last, found "lst"; did you mean "last"?"#,
                    #"p.yaml:12:11: spec.stages[0].with.aggregates: expected one of mean | sum | min | max | count | first | last, found "avg""#,
                ]
            ),
            (
                "rolling", ["column": value("x", 8), "window": value("10s", 9), "aggregate": value("summ", 10)],
                [#"p.yaml:10:11: spec.stages[0].with.aggregate: expected one of mean | sum | min | max | count, found "summ"; did you mean "sum"?"#]
            ),
            (
                "rolling", ["column": value("x", 8), "window": value("ten", 9)],
                [#"p.yaml:9:11: spec.stages[0].with.window: expected a duration such as 10s or a row count such as 20, found "ten""#]
            ),
            (
                "rolling", ["column": value("x", 8), "window": value("0", 9)],
                [#"p.yaml:9:11: spec.stages[0].with.window: expected a row count from 1 to 1000000, found "0""#]
            ),
            (
                "rolling", ["column": value("x", 8)],
                ["p.yaml:7:5: spec.stages[0].with.window: missing; stage rolling needs it (the rows with a timestamp in (t - window, t], or the last N rows)"]
            ),
            (
                "cumulative", ["column": value("x", 8), "aggregate": value("total", 9)],
                [#"p.yaml:9:11: spec.stages[0].with.aggregate: expected one of sum | count | min | max, found "total""#]
            ),
            (
                "throttle", ["interval": value("fast", 8)],
                [#"p.yaml:8:11: spec.stages[0].with.interval: expected a positive duration such as 250ms, 10s, 5m or 1h, found "fast""#]
            ),
            (
                "throttle", ["intervall": value("1s", 8)],
                [
                    #"p.yaml:8:11: spec.stages[0].with.intervall: unknown option; did you mean "interval"?"#,
                    "p.yaml:7:5: spec.stages[0].with.interval: missing; stage throttle needs it (the least data time between two rows passed on)",
                ]
            ),
        ] as [(String, [String: ConfigValue], [String])])
    func optionErrors(uses: String, options: [String: ConfigValue], expected: [String]) {
        var errors: [String] = []
        do throws(ConfigErrors) {
            _ = try StageRegistry.builtIn.make(
                Pipeline.Stage(id: "s", uses: uses, options: options, line: 7, column: 5), file: "p.yaml", path: "spec.stages[0]")
        } catch {
            errors = error.errors.map(\.description)
        }
        #expect(errors == expected)
    }

    @Test("valid options: defaults, a grace of 0, repeated aggregates kept once; the four stages are stateful built-ins")
    func validOptions() throws {
        let window = try #require(try make("window", ["size": "10s", "column": "x"]) as? WindowStage)
        #expect(window.kind == .tumbling && window.size == 10 * s && window.step == 10 * s && window.grace == 0 && window.aggregates == [.mean])
        // A window passes on its aggregates, not the rows it read: their columns are what it defines.
        #expect(window.definitions(ParameterDefinitions(parameters: [ParameterDefinition(id: "x")])).parameters.map(\.id) == ["x_mean", "window_end"])
        let hopping = try #require(
            try make(
                "window",
                [
                    "type": ConfigValue(.scalar("hopping"), line: 1, column: 1), "size": ConfigValue(.scalar("1m"), line: 1, column: 1),
                    "step": ConfigValue(.scalar("250ms"), line: 1, column: 1), "grace": ConfigValue(.scalar("0"), line: 1, column: 1),
                    "column": ConfigValue(.scalar("x"), line: 1, column: 1), "aggregates": list(["max", "min", "max"]),
                ]) as? WindowStage)
        #expect(hopping.size == 60 * s && hopping.step == s / 4 && hopping.grace == 0 && hopping.aggregates == [.max, .min])
        let rolling = try #require(try make("rolling", ["column": "x", "window": "500us"]) as? RollingStage)
        #expect(rolling.window == .duration(nanoseconds: 500_000) && rolling.aggregate == .mean && rolling.output == "x_mean")
        let throttle = try #require(try make("throttle", ["interval": "1.5s"]) as? ThrottleStage)
        #expect(throttle.interval == 1_500_000_000)
        let cumulative = try #require(try make("cumulative", ["column": "x", "aggregate": "max", "as": "peak"]) as? CumulativeStage)
        #expect(cumulative.aggregate == .max && cumulative.output == "peak")
        for name in ["rolling", "window", "cumulative", "throttle"] {
            #expect(StageRegistry.builtIn[name]?.isStateful == true, "\(name)")
        }
    }
}
