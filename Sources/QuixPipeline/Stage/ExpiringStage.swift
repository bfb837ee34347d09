import QuixStreams

/// A stateful stage with `ttl`: a stream's state in the stage is removed when no row of the
/// stream has reached the stage for `ttl` of data time. A row that comes `ttl` or more after the
/// latest row the stage saw of its stream starts from empty state, whether the rows came in one
/// message or many, so a restart gives what an uninterrupted run gives. The pipeline's
/// checkpoint sweep (`StateExpiry`) also removes the state of streams that do not come back.
///
/// State: `ttl.latest` (Int), the latest timestamp of the stream's rows that reached the stage,
/// in the stage's own store.
struct ExpiringStage: Stage {
    let inner: any Stage
    /// In nanoseconds.
    let ttl: Int64

    static let latestKey = "ttl.latest"

    func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return try inner.process(frame, context) }
        let state = try context.state()
        let gaps = DataTimeGaps(frame.timestamps, after: try state.get(Self.latestKey, as: Int.self).map(Int64.init), gap: ttl)
        let result = try gaps.process(frame, startAfresh: { state.clear() }) { try inner.process($0, context) }
        state.set(Self.latestKey, Int(gaps.latest))
        return result
    }

    func process(_ event: EventData, _ context: StageContext) throws -> EventData? { try inner.process(event, context) }

    func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions { inner.definitions(definitions) }
}

/// The rows of a frame from which a stream's state starts afresh: each one `gap` or more of data
/// time past the latest row before it (the stream's latest before the frame, then the frame's).
struct DataTimeGaps {
    /// Row indexes, ascending.
    let starts: [Int]
    /// The latest timestamp once the frame is taken in.
    let latest: Int64

    /// `timestamps` must not be empty.
    init(_ timestamps: [Int64], after previous: Int64?, gap: Int64) {
        var latest = previous
        var starts: [Int] = []
        for (row, timestamp) in timestamps.enumerated() {
            if let latest, StageTime.minus(timestamp, latest) >= gap { starts.append(row) }
            latest = Swift.max(latest ?? timestamp, timestamp)
        }
        self.starts = starts
        self.latest = latest!
    }

    /// Runs `body` on the rows between starts, calling `startAfresh` before each start, and
    /// joins what it returns.
    func process(
        _ frame: TimeseriesFrame, startAfresh: () throws -> Void, _ body: (TimeseriesFrame) throws -> TimeseriesFrame
    ) throws -> TimeseriesFrame {
        guard !starts.isEmpty else { return try body(frame) }
        var results: [TimeseriesFrame] = []
        var from = 0
        for start in starts + [frame.rowCount] {
            if start > from { results.append(try body(frame.rows(Array(from..<start)))) }
            if start < frame.rowCount { try startAfresh() }
            from = start
        }
        return results.count == 1 ? results[0] : TimeseriesFrame.concatenate(results)
    }
}
