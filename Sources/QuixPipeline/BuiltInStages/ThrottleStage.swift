import QuixStreams

/// `throttle`: passes on at most one row per stream per `interval` of data time. A row is kept
/// when its timestamp is at least the last kept row's timestamp plus `interval` (the stream's
/// first row is kept); the others are dropped, so a row older than the last kept one is dropped
/// too. Works across frames.
///
/// State (store = the stage id, per stream): `lastKept` (Int), the timestamp (ns) of the last
/// kept row, absent until the first.
public struct ThrottleStage: Stage {
    /// In nanoseconds.
    public let interval: Int64

    public init(interval: Int64) {
        precondition(interval > 0, "a throttle interval must be positive")
        self.interval = interval
    }

    public static let descriptor = StageDescriptor(
        name: "throttle",
        summary: "Passes on at most one row per stream per interval of data time (a row at least interval after the last one kept).",
        options: [StageOption("interval", "duration", required: true, "the least data time between two rows passed on")],
        isStateful: true,
        stateShapedBy: []
    ) { options in
        StageTime.positive(&options, "interval").map(ThrottleStage.init)
    }

    static let lastKeptKey = "lastKept"

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return frame }
        let state = try context.state()
        let stored = try state.get(Self.lastKeptKey, as: Int.self).map(Int64.init)
        var lastKept = stored
        var keep = [Bool](repeating: false, count: frame.rowCount)
        for (row, timestamp) in frame.timestamps.enumerated() where lastKept.map({ timestamp >= StageTime.plus($0, interval) }) ?? true {
            keep[row] = true
            lastKept = timestamp
        }
        if let lastKept, lastKept != stored { state.set(Self.lastKeptKey, Int(lastKept)) }
        return keep.allSatisfy { $0 } ? frame : frame.filter(RowMask(keep))
    }
}
