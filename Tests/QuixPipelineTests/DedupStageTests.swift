import Foundation
@testable import QuixPipeline
import QuixStreams
import Testing

@Suite("dedup stage")
struct DedupStageTests {
    private func rows(_ seconds: [Int64], codes: [Double?], drivers: [String?]? = nil) -> TimeseriesFrame {
        var frame = TimeseriesFrame(timestamps: seconds.map { $0 * s })
        frame["code"] = NumericColumn(codes)
        if let drivers { frame.setStrings("driver", drivers) }
        return frame
    }

    @Test("a row whose values were seen within the window is dropped, either side in data time; the window counts from the first row")
    func drops() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make("dedup", ["columns": list(["code"]), "window": ConfigValue(.scalar("10s"), line: 1, column: 1)])
        let context = makeContext(local)
        let first = try stage.process(rows([1, 3, 5, 12], codes: [1, 2, 1, 1]), context)
        #expect(first.timestamps == [1 * s, 3 * s, 12 * s], "5s repeats 1s; 12s is 11s after the first 1")
        let second = try stage.process(rows([8, 14, 15, 16], codes: [2, 2, nil, nil]), context)
        #expect(second.timestamps == [14 * s, 15 * s], "8s is 5s after 3s (out of order); 14s is 11s after it; a missing cell is a value too")
        #expect(try local.stream("A", store: "s").get("dropped", as: Int.self) == 3)
        let other = try stage.process(rows([2], codes: [1]), makeContext(local, stream: "B"))
        #expect(other.rowCount == 1, "streams are deduplicated apart")
    }

    @Test("several columns, strings among them: a row is a duplicate only when all its values repeat")
    func severalColumns() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make("dedup", ["columns": list(["code", "driver"]), "window": ConfigValue(.scalar("1m"), line: 1, column: 1)])
        let kept = try stage.process(rows([1, 2, 3, 4], codes: [1, 1, 1, -0.0], drivers: ["ann", "bob", "ann", "ann"]), makeContext(local))
        #expect(kept.timestamps == [1 * s, 2 * s, 4 * s], "3s repeats (1, ann); -0 is not 1")
        let zero = try stage.process(rows([5], codes: [0], drivers: ["ann"]), makeContext(local))
        #expect(zero.rowCount == 0, "0 and -0 are one value")
    }

    @Test("entries that fell out of the window are deleted every half window, so state stays bounded")
    func sweeps() throws {
        let directory = try scratchDirectory()
        defer { remove(directory) }
        let local = try LocalState(directory: directory)
        let stage = try make("dedup", ["columns": list(["code"]), "window": ConfigValue(.scalar("10s"), line: 1, column: 1)])
        let context = makeContext(local)
        let state = local.stream("A", store: "s")
        for second in 0..<100 { _ = try stage.process(rows([Int64(second)], codes: [Double(second)]), context) }
        let seen = try state.keys().filter { $0.hasPrefix("seen/") }.count
        #expect(seen >= 10 && seen <= 16, "at most 1.5 windows of distinct values kept, found \(seen)")
        #expect(try stage.process(rows([100], codes: [95]), context).rowCount == 0, "a value 5s old is still seen")
    }

    @Test("dedup's options are checked", arguments: [
        (["window": "10s"], "columns: missing; stage dedup needs it (the columns whose values make a row a duplicate)"),
        (["columns": "code", "window": "soon"], #"window: expected a positive duration such as 250ms, 10s, 5m or 1h, found "soon""#),
    ])
    func optionErrors(options: [String: String], expected: String) {
        do {
            _ = try make("dedup", options)
            Issue.record("accepted \(options)")
        } catch let error as ConfigErrors {
            #expect(error.errors.map { "\($0.keyPath.replacingOccurrences(of: "spec.stages[0].with.", with: "")): \($0.message)" } == [expected])
        } catch {
            Issue.record("\(error)")
        }
    }
}
