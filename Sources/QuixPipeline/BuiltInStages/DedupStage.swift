import QuixStreams

/// `dedup`: drops a row whose values of `columns` the stream already had in a row within
/// `window` of data time (either side: rows may come out of order). The window counts from the
/// first row with those values; a dropped duplicate does not extend it. A column is looked up as
/// a numeric column, then a string column, then a tag; a missing cell is a value of its own.
///
/// State (store = the stage id, per stream):
/// - `seen/<values>` (Int): the timestamp of the first row with those values, kept while it is
///   within `window` of the stream's latest timestamp;
/// - `maxTimestamp` (Int): the latest timestamp seen;
/// - `sweepAt` (Int): the data time of the next sweep, which deletes the entries that fell out
///   of the window; sweeps run every half window, so a stream's state holds at most 1.5 windows
///   of distinct values;
/// - `dropped` (Int): the duplicates dropped so far (absent until the first).
public struct DedupStage: Stage {
    public let columns: [String]
    /// In nanoseconds.
    public let window: Int64

    public init(columns: [String], window: Int64) {
        precondition(!columns.isEmpty && window > 0, "dedup needs columns and a positive window")
        self.columns = columns
        self.window = window
    }

    public static let descriptor = StageDescriptor(
        name: "dedup",
        summary: "Drops rows whose values of the columns the stream already had within the window of data time.",
        options: [
            StageOption("columns", "list of names", required: true, "the columns whose values make a row a duplicate"),
            StageOption("window", "duration", required: true, "how long (data time) a row's values stay seen"),
        ],
        isStateful: true,
        stateShapedBy: ["columns"]
    ) { options in
        let columns = options.names("columns")
        let window = StageTime.positive(&options, "window")
        guard let columns, let window else { return nil }
        return DedupStage(columns: columns, window: window)
    }

    static let seenPrefix = "seen/"
    static let maxTimestampKey = "maxTimestamp"
    static let sweepAtKey = "sweepAt"
    static let droppedKey = "dropped"

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return frame }
        let state = try context.state()
        var latest = try state.get(Self.maxTimestampKey, as: Int.self).map(Int64.init) ?? .min
        var keep = [Bool](repeating: true, count: frame.rowCount)
        var dropped = 0
        for row in 0..<frame.rowCount {
            let timestamp = frame.timestamps[row]
            latest = Swift.max(latest, timestamp)
            let key = Self.seenPrefix + values(frame, row: row)
            if let seen = try state.get(key, as: Int.self).map(Int64.init), Self.distance(seen, timestamp) < window,
                Self.distance(seen, latest) <= window
            {
                keep[row] = false
                dropped += 1
            } else {
                state.set(key, Int(timestamp))
            }
        }
        state.set(Self.maxTimestampKey, Int(latest))
        if dropped > 0 { try state.update(Self.droppedKey, default: 0) { $0 += dropped } }
        try sweep(state, latest: latest)
        return dropped == 0 ? frame : frame.filter(RowMask(keep))
    }

    /// Deletes the entries older than the window, once every half window of data time.
    private func sweep(_ state: StreamState, latest: Int64) throws {
        let due = try state.get(Self.sweepAtKey, as: Int.self).map(Int64.init)
        if let due, latest < due { return }
        if due != nil {
            let oldest = StageTime.minus(latest, window)
            for key in try state.keys() where key.hasPrefix(Self.seenPrefix) {
                if let seen = try state.get(key, as: Int.self), Int64(seen) < oldest { state.delete(key) }
            }
        }
        state.set(Self.sweepAtKey, Int(StageTime.plus(latest, Swift.max(1, window / 2))))
    }

    private static func distance(_ a: Int64, _ b: Int64) -> Int64 { a > b ? StageTime.minus(a, b) : StageTime.minus(b, a) }

    /// The row's values of `columns`, each typed and length-prefixed so that no two differ in
    /// their text only by where one ends.
    private func values(_ frame: TimeseriesFrame, row: Int) -> String {
        var text = ""
        for name in columns {
            if let number = frame[name]?[row] {
                text += "n\((number == 0 ? 0 : number).bitPattern);"  // -0 and 0 are one value
            } else if let string = frame.strings[name]?[row] ?? frame.tags[name]?[row] {
                text += "s\(string.utf8.count):\(string);"
            } else {
                text += "-;"
            }
        }
        return text
    }
}
