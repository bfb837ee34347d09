import Foundation
@testable import QuixPipeline
import QuixStreams
import Testing

/// Session windows, count windows and `emit: current`, on hand-computed cases.
@Suite("window kinds")
struct WindowKindTests {
    private func window(_ options: [String: String], aggregates: [String] = ["sum", "count", "first", "last"]) throws -> any Stage {
        try make("window", options.mapValues { ConfigValue(.scalar($0), line: 1, column: 1) }.merging(["aggregates": list(aggregates)]) { $1 })
    }

    @Test("session windows: rows closer than gap form one; a row between two sessions joins them; closed at last row + gap + grace; a late row counted")
    func session() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try window(["type": "session", "gap": "5s", "grace": "5s", "column": "x"])
        let context = makeContext(local)

        #expect(try stage.process(frame([1, 3, 7], [1, 2, 4]), context).rowCount == 0, "one session, [1s, 7s], open until 7 + 5 + 5")
        let first = try stage.process(frame([20], [8]), context)
        #expect(first.timestamps == [1 * s])
        #expect(cells(first, "x_sum") == [7] && cells(first, "x_count") == [3])
        #expect(cells(first, "window_start") == [Double(1 * s)] && cells(first, "window_end") == [Double(7 * s)])

        // 30 closes [20s, 20s]; 38 is 8s after 30, a session of its own; 34 (in the grace of
        // [30s, 30s]) is within 5s of both and joins them.
        let second = try stage.process(frame([30, 38, 34], [16, 32, 64]), context)
        #expect(second.timestamps == [20 * s] && cells(second, "x_sum") == [8] && cells(second, "window_end") == [Double(20 * s)])
        let open = try local.stream("A", store: "s").decode("windows", as: [WindowStage.Accumulator].self) ?? []
        #expect(open.map(\.start) == [30 * s] && open.map(\.count) == [3], "the bridged sessions are one")

        // 50 closes [30s, 38s] (38 + 5 + 5 ≤ 50); 10 touches no open session and its own closed long ago.
        let third = try stage.process(frame([50, 10], [128, 256]), context)
        #expect(third.timestamps == [30 * s])
        #expect(cells(third, "x_sum") == [112] && cells(third, "x_count") == [3])
        #expect(cells(third, "x_first") == [16] && cells(third, "x_last") == [32], "first and last by data time across the joined sessions")
        #expect(cells(third, "window_start") == [Double(30 * s)] && cells(third, "window_end") == [Double(38 * s)])
        #expect(try local.stream("A", store: "s").get("late", as: Int.self) == 1)
    }

    @Test("a session's grace keeps it open for a late row after last row + gap")
    func sessionGrace() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try window(["type": "session", "gap": "5s", "grace": "3s", "column": "x"])
        let context = makeContext(local)
        #expect(try stage.process(frame([0, 7], [1, 2]), context).rowCount == 0, "two sessions; [0s] stays open until 0 + 5 + 3")
        #expect(try stage.process(frame([4], [4]), context).rowCount == 0, "4 is within 5s of both: one session [0s, 7s]")
        #expect(try stage.process(frame([14], [8]), context).rowCount == 0, "7 + 5 + 3 > 14")
        let closed = try stage.process(frame([15], [16]), context)
        #expect(closed.timestamps == [0] && cells(closed, "x_sum") == [7] && cells(closed, "window_end") == [Double(7 * s)])
    }

    @Test("count windows: tumbling windows of N rows with a value, hopping ones every step rows; timestamps of their earliest and latest rows")
    func countWindows() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let tumbling = try window(["size": "3", "column": "x"])
        let hopping = try window(["type": "hopping", "size": "4", "step": "2", "column": "x"])
        let contexts = (makeContext(local, stage: "t"), makeContext(local, stage: "h"))
        let frames = [frame([1, 2, 3], [1, 2, nil]), frame([4, 5], [4, 8]), frame([6, 7], [16, 32])]
        let counted = try frames.map { try tumbling.process($0, contexts.0) }
        #expect(counted.map(\.rowCount) == [0, 1, 1], "a window closes with its third row")
        #expect(counted.flatMap(\.timestamps) == [1 * s, 5 * s])
        #expect(cells(counted, "x_sum") == [7, 56] && cells(counted, "x_count") == [3, 3])
        #expect(cells(counted, "window_end") == [Double(4 * s), Double(7 * s)])
        #expect(try local.stream("A", store: "t").get("rowCount", as: Int.self) == 6)

        let hopped = try frames.map { try hopping.process($0, contexts.1) }
        #expect(hopped.flatMap(\.timestamps) == [1 * s, 4 * s], "rows 0-3, then rows 2-5; rows 4-5 wait for 6 and 7")
        #expect(cells(hopped, "x_sum") == [15, 60])
        #expect(cells(hopped, "window_end") == [Double(5 * s), Double(7 * s)])
    }

    @Test("emit current: every row passes on each window it went into, as it stands; nothing when a window closes")
    func emitCurrent() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let tumbling = try window(["size": "10s", "column": "x", "emit": "current"], aggregates: ["sum"])
        let context = makeContext(local, stage: "t")
        let first = try tumbling.process(frame([1, 4, 12], [1, 2, 4]), context)
        #expect(first.timestamps == [0, 0, 10 * s])
        #expect(cells(first, "x_sum") == [1, 3, 4])
        #expect(cells(first, "window_end") == [Double(10 * s), Double(10 * s), Double(20 * s)])
        let later = try tumbling.process(frame([25, 5], [8, 100]), context)
        #expect(later.timestamps == [20 * s], "[10s, 20s) closed without a row of its own; 5s is late and passes nothing")

        let hopping = try window(["type": "hopping", "size": "10s", "step": "5s", "column": "x", "emit": "current"], aggregates: ["sum"])
        let hopped = try hopping.process(frame([7], [1]), makeContext(local, stage: "h"))
        #expect(hopped.timestamps == [0, 5 * s] && cells(hopped, "x_sum") == [1, 1], "a row in two windows updates both")

        let session = try window(["type": "session", "gap": "5s", "column": "x", "emit": "current"], aggregates: ["sum"])
        let sessions = try session.process(frame([1, 3, 20], [1, 2, 4]), makeContext(local, stage: "se"))
        #expect(sessions.timestamps == [1 * s, 1 * s, 20 * s] && cells(sessions, "x_sum") == [1, 3, 4])
        #expect(cells(sessions, "window_end") == [Double(1 * s), Double(3 * s), Double(20 * s)])

        let counted = try window(["size": "2", "column": "x", "emit": "current"], aggregates: ["sum"])
        let counts = try counted.process(frame([1, 2, 3], [1, 2, 4]), makeContext(local, stage: "c"))
        #expect(cells(counts, "x_sum") == [1, 3, 4] && counts.timestamps == [1 * s, 1 * s, 3 * s])
    }

    @Test(
        "mistakes in session, count and emit options give exactly these errors",
        arguments: [
            (["type": "session", "size": "10s", "gap": "5s"], "size: a session window has no size: its rows make it as long as it is; give gap, the time without a row that ends it"),
            (["type": "session"], "gap: missing; a session window needs it (how long without a row ends a session)"),
            (["size": "10s", "gap": "5s"], "gap: only session windows take a gap"),
            (["type": "sliding", "size": "10"], "size: sliding windows are on data time; for the last N rows use the rolling stage"),
            (["size": "10", "grace": "1s"], "grace: count windows take no grace: a window closes with its last row, and no row is late"),
            (["type": "hopping", "size": "10", "step": "5s"], #"step: expected a whole number from 1 to 1000000, found "5s""#),
            (["type": "hopping", "size": "10s", "step": "5"], #"step: expected a duration as size is one, found the row count "5""#),
            (["type": "hopping", "size": "4", "step": "6"], #"step: expected a row count no more than size (4), found "6""#),
            (["size": "0"], #"size: expected a whole number from 1 to 1000000, found "0""#),
            (["type": "session", "gap": "5s", "step": "1s"], "step: only hopping windows take a step; a session starts with a stream's first row after a gap"),
            (["size": "10s", "emit": "always"], #"emit: expected one of final | current, found "always""#),
        ] as [([String: String], String)])
    func optionErrors(options: [String: String], expected: String) {
        do {
            _ = try window(options.merging(["column": "x"]) { $1 })
            Issue.record("accepted \(options)")
        } catch let error as ConfigErrors {
            #expect(error.errors.map { "\($0.keyPath): \($0.message)" } == ["spec.stages[0].with.\(expected)"])
        } catch {
            Issue.record("\(error)")
        }
    }
}
