import QuixStreams

/// `window`: aggregates a numeric column over windows of data time (or of row counts) and passes
/// on one row per window once it is closed — and nothing else (an empty frame when no window
/// closed). With `emit: current` it passes on, for every row, the aggregate of each window the
/// row went into, as it stands after the row (quixstreams 3's `.current()`), and nothing when a
/// window closes.
///
/// Windows on data time (`size`, `step`, `gap` and `grace` are durations; times are ns since the
/// Unix epoch):
/// - `tumbling`: `[k*size, (k+1)*size)`, aligned to the epoch;
/// - `hopping`: `[k*step, k*step + size)`, a window of `size` starting every `step`
///   (`step` ≤ `size`), so a row is in `size/step` windows;
/// - `sliding` (Kafka Streams' sliding windows, the windows defined by the records): each distinct
///   timestamp `t` of a row defines the window `[t - size, t]`, both ends inclusive, holding every
///   row with a timestamp in it (including rows that arrive later, within the grace). It is the
///   look-back window of each row; Kafka's extra "right" windows (the sets after a row drops
///   out) are not made. Its output row has timestamp `t - size` and `window_end = t`.
/// - `session` (`gap` instead of `size`): a stream's rows closer than `gap` to each other form
///   one window; a row that falls within `gap` of two sessions joins them into one. A session
///   `[first row, last row]` has the exclusive end `last row + gap`. Its output row has the
///   timestamp and `window_start` of its first row, and `window_end` its last row's timestamp.
///
/// Count windows (`size` a whole number, and `step` too for hopping windows): the stream's rows
/// with a value, numbered from 0; a tumbling window holds rows `[k*size, (k+1)*size)`, a hopping
/// one `[k*step, k*step + size)`. A count window closes with its last row (no grace, nothing is
/// late); its output row has the timestamp of its earliest row and `window_end` that of its
/// latest. The state key `rowCount` (Int) counts the rows so far.
///
/// A window closes when the stream's latest timestamp (of any row seen, including rows with a
/// missing cell and late rows) reaches its end plus `grace`: `latest ≥ end + grace`, with `end`
/// exclusive for tumbling and hopping windows and `t + 1ns` for a sliding window (so rows at its
/// last instant `t` still count). Closed windows are emitted at the end of the frame, in window
/// order (by start), as rows whose timestamp is the window start, with the columns
/// `<column>_<aggregate>` and `window_end` (ns, as a number: the exclusive end for tumbling and
/// hopping windows, `t` for sliding ones; a Double: ends on whole seconds are exact, others
/// may be off by up to 256ns).
/// Only windows that received a value are emitted.
///
/// Aggregates skip missing cells: a row whose cell is missing opens no window (it only advances
/// the stream's time). `first` and `last` are the values with the earliest and latest timestamp
/// (on equal timestamps, the first and last to arrive); `count` the number of values.
///
/// Late rows: a row that belongs to a window that is already closed (`latest ≥ end + grace`
/// when it arrives, whether or not that window was ever opened) is not added to that window. It
/// is still added to its windows that are open (a hopping row can be late for its oldest window
/// only; a sliding row to the open windows of later rows that contain it); a tumbling row, or a
/// sliding row whose own window is closed, is thereby dropped. Each such row is counted once in
/// the state key `late`.
///
/// Every row is handled with the latest timestamp as of that row, so the result does not depend
/// on how rows are split into frames, and a restart from a checkpoint (the state of that
/// checkpoint, the messages after it again) neither loses nor double-counts rows.
///
/// State (store = the stage id, per stream):
/// - `maxTimestamp` (Int): the latest timestamp seen;
/// - `late` (Int): the late rows so far (absent until the first);
/// - `windows` (JSON): the open windows by start, each `{"s": start, "e": exclusive end,
///   "n": count, "sum", "min", "max", "f": first, "ft": its timestamp, "l": last, "lt": its
///   timestamp}` (non-finite numbers as "nan", "inf", "-inf");
/// - `rows` (JSON, sliding only): `{"t": [timestamps], "v": [values]}`, the values a future
///   sliding window can still hold (timestamps ≥ latest - grace - size), in arrival order.
public struct WindowStage: Stage {
    public enum Kind: String, Sendable, CaseIterable {
        case tumbling, hopping, sliding, session
    }

    /// When a window's aggregate is passed on.
    public enum Emit: String, Sendable, CaseIterable {
        /// Once, when the window closes.
        case final
        /// With every row that goes into it, as it stands after that row.
        case current
    }

    public enum Aggregate: String, Sendable, CaseIterable {
        case mean, sum, min, max, count, first, last
    }

    public let kind: Kind
    /// In nanoseconds, as `step` and `grace`; rows for count windows. A session's gap.
    public let size: Int64
    /// How far apart windows start: `size` for tumbling windows (unused by sliding and session ones).
    public let step: Int64
    public let grace: Int64
    /// Whether `size` and `step` count rows (tumbling and hopping windows only).
    public let counted: Bool
    public let column: String
    public let aggregates: [Aggregate]
    public let emit: Emit

    public init(
        kind: Kind = .tumbling, size: Int64, step: Int64? = nil, grace: Int64 = 0, counted: Bool = false, column: String,
        aggregates: [Aggregate] = [.mean], emit: Emit = .final
    ) {
        precondition(size > 0 && (step ?? size) > 0 && (step ?? size) <= size && grace >= 0, "invalid window")
        precondition(!counted || (kind != .sliding && kind != .session && grace == 0), "count windows are tumbling or hopping, without grace")
        self.kind = kind
        self.size = size
        self.step = kind == .hopping ? (step ?? size) : size
        self.grace = grace
        self.counted = counted
        self.column = column
        self.aggregates = aggregates
        self.emit = emit
    }

    public static let descriptor = StageDescriptor(
        name: "window",
        summary: "Aggregates a column over tumbling, hopping, sliding or session windows of data time, or windows of row counts; passes on one row per window when it closes, or the current aggregate with every row.",
        options: [
            StageOption("type", "tumbling | hopping | sliding | session", default: "tumbling", "how windows are laid out"),
            StageOption("size", "duration or row count", "the length of a window: a duration (10s), or a row count (100) for tumbling and hopping windows; required except for session windows"),
            StageOption("step", "duration or row count", "how far apart hopping windows start, at most size and in its unit (hopping windows only, and required there)"),
            StageOption("gap", "duration", "how long without a row ends a session (session windows only, and required there)"),
            StageOption("grace", "duration", default: "0s", "how long after its end a window of data time still takes rows that arrive late"),
            StageOption("column", "name", required: true, "the numeric column to aggregate"),
            StageOption(
                "aggregates", "list of mean | sum | min | max | count | first | last", default: "[mean]",
                "the aggregates, passed on as columns <column>_<aggregate> besides window_end"),
            StageOption("emit", "final | current", default: "final", "a row per window when it closes, or a row per window a row went into, with every row"),
        ],
        isStateful: true,
        stateShapedBy: ["type", "size", "step", "gap", "column", "aggregates"]
    ) { options in
        let kind = options.values["type"] == nil ? WindowStage.Kind.tumbling : options.choice("type", WindowStage.Kind.self)
        let emit = options.values["emit"] == nil ? WindowStage.Emit.final : options.choice("emit", WindowStage.Emit.self)
        guard let kind else { return nil }
        let length = WindowStage.readLength(&options, kind: kind)
        let counted = length?.counted ?? false
        var step: Int64?
        if options.values["step"] != nil {
            switch kind {
            case .hopping:
                step = WindowStage.readLength(&options, "step", counted: counted)
                if let given = step, let size = length?.size, given > size {
                    options.fail("step", "expected \(counted ? "a row count no more" : "a duration no longer") than size (\(WindowStage.text(options, "size"))), found \"\(WindowStage.text(options, "step"))\"")
                    step = nil
                }
            case .tumbling:
                options.fail("step", "only hopping windows take a step; a tumbling window starts where the previous one ends")
            case .sliding:
                options.fail("step", "only hopping windows take a step; a sliding window ends at each row")
            case .session:
                options.fail("step", "only hopping windows take a step; a session starts with a stream's first row after a gap")
            }
        } else if kind == .hopping {
            options.fail("step", "missing; a hopping window needs it (how far apart windows start)")
        }
        var grace: Int64? = 0
        if options.values["grace"] != nil {
            grace = StageTime.nonNegative(&options, "grace")
            if counted {
                options.fail("grace", "count windows take no grace: a window closes with its last row, and no row is late")
                grace = nil
            }
        }
        let column = options.string("column")
        let aggregates = options.values["aggregates"] == nil ? [WindowStage.Aggregate.mean] : WindowStage.readAggregates(&options)
        guard let length, let grace, let column, let aggregates, let emit, kind != .hopping || step != nil else { return nil }
        return WindowStage(
            kind: kind, size: length.size, step: step, grace: grace, counted: counted, column: column, aggregates: aggregates, emit: emit)
    }

    /// The window's length: `gap` for session windows, else `size`, a duration or (tumbling and
    /// hopping windows) a row count.
    private static func readLength(_ options: inout StageOptions, kind: Kind) -> (size: Int64, counted: Bool)? {
        if kind == .session {
            if options.values["size"] != nil {
                options.fail("size", "a session window has no size: its rows make it as long as it is; give gap, the time without a row that ends it")
                return nil
            }
            guard options.values["gap"] != nil else {
                options.fail("gap", "missing; a session window needs it (how long without a row ends a session)")
                return nil
            }
            return StageTime.positive(&options, "gap").map { ($0, false) }
        }
        if options.values["gap"] != nil { options.fail("gap", "only session windows take a gap") }
        guard options.values["size"] != nil else {
            options.fail("size", "missing; a \(kind.rawValue) window needs it")
            return nil
        }
        let counted = Int(text(options, "size")) != nil
        if counted, kind == .sliding {
            options.fail("size", "sliding windows are on data time; for the last N rows use the rolling stage")
            return nil
        }
        return readLength(&options, "size", counted: counted).map { ($0, counted) }
    }

    /// A duration in ns, or a row count from 1 to 1,000,000 when `counted`.
    private static func readLength(_ options: inout StageOptions, _ name: String, counted: Bool) -> Int64? {
        guard counted else {
            if Int(text(options, name)) != nil {
                options.fail(name, "expected a duration as size is one, found the row count \"\(text(options, name))\"")
                return nil
            }
            return StageTime.positive(&options, name)
        }
        guard let rows = options.int(name, in: 1...1_000_000) else { return nil }
        return Int64(rows)
    }

    private static func text(_ options: StageOptions, _ name: String) -> String {
        if case .scalar(let text)? = options.values[name]?.kind { text } else { "" }
    }

    /// `aggregates`: known names, each once (a repeated one is kept once).
    static func readAggregates(_ options: inout StageOptions) -> [Aggregate]? {
        guard let names = options.names("aggregates") else { return nil }
        let known = Aggregate.allCases.map(\.rawValue)
        var aggregates: [Aggregate] = []
        var valid = true
        for name in names {
            guard let aggregate = Aggregate(rawValue: name) else {
                let hint = nearest(name, in: known).map { "; did you mean \"\($0)\"?" } ?? ""
                options.fail("aggregates", "expected one of \(known.joined(separator: " | ")), found \"\(name)\"\(hint)")
                valid = false
                continue
            }
            if !aggregates.contains(aggregate) { aggregates.append(aggregate) }
        }
        return valid ? aggregates : nil
    }

    static let maxTimestampKey = "maxTimestamp"
    static let lateKey = "late"
    static let windowsKey = "windows"
    static let rowsKey = "rows"
    static let rowCountKey = "rowCount"

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return TimeseriesFrame() }
        let state = try context.state()
        var latest = try state.get(Self.maxTimestampKey, as: Int.self).map(Int64.init) ?? .min
        var open: [Int64: Accumulator] = [:]
        for window in try state.decode(Self.windowsKey, as: [Accumulator].self) ?? [] { open[window.start] = window }
        var rows = Rows()
        if kind == .sliding { rows = try state.decode(Self.rowsKey, as: Rows.self) ?? Rows() }
        var rowCount = counted ? Int64(try state.get(Self.rowCountKey, as: Int.self) ?? 0) : 0
        let cells = frame[column] ?? NumericColumn(repeating: nil, count: frame.rowCount)
        var late = 0
        var current: [Accumulator] = []
        for row in 0..<frame.rowCount {
            let timestamp = frame.timestamps[row]
            latest = Swift.max(latest, timestamp)
            guard let value = cells[row] else { continue }
            let added: Added
            if counted {
                added = addCounted(rowCount, timestamp, value, to: &open)
                rowCount += 1
            } else {
                switch kind {
                case .tumbling, .hopping: added = addAligned(timestamp, value, to: &open, latest: latest)
                case .sliding: added = addSliding(timestamp, value, to: &open, rows: &rows, latest: latest)
                case .session: added = addSession(timestamp, value, to: &open, latest: latest)
                }
            }
            if added.missed { late += 1 }
            if emit == .current { current += added.windows.compactMap { open[$0] } }
        }
        let closed = open.values.filter { counted ? $0.end <= rowCount : isClosed($0.end, latest) }.sorted { $0.start < $1.start }
        for window in closed { open[window.start] = nil }

        state.set(Self.maxTimestampKey, Int(latest))
        if counted { state.set(Self.rowCountKey, Int(rowCount)) }
        if late > 0 { try state.update(Self.lateKey, default: 0) { $0 += late } }
        try state.encode(open.values.sorted { $0.start < $1.start }, for: Self.windowsKey)
        if kind == .sliding {
            rows.keep(from: StageTime.minus(StageTime.minus(latest, grace), size))
            try state.encode(rows, for: Self.rowsKey)
        }
        return output(emit == .final ? closed : current)
    }

    /// None of the input's parameters pass on: the output has only the window's columns, which
    /// the pipeline defines when they first appear.
    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions {
        (aggregates.map { "\(column)_\($0.rawValue)" } + (kind == .session ? ["window_start", "window_end"] : ["window_end"]))
            .reduce(ParameterDefinitions()) { $0.adding($1) }
    }

    /// One row per window: its start (a count window's earliest row), the aggregates, and
    /// `window_end` (and a session's `window_start`).
    private func output(_ windows: [Accumulator]) -> TimeseriesFrame {
        var frame = TimeseriesFrame(timestamps: windows.map { counted ? $0.firstAt : $0.start })
        guard !windows.isEmpty else { return frame }
        for aggregate in aggregates {
            frame["\(column)_\(aggregate.rawValue)"] = NumericColumn(windows.map { $0.value(aggregate) })
        }
        if kind == .session { frame["window_start"] = NumericColumn(values: windows.map { Double($0.start) }) }
        frame["window_end"] = NumericColumn(values: windows.map { Double(end(of: $0)) })
        return frame
    }

    /// The `window_end` of a window: the exclusive end of a tumbling or hopping window, the last
    /// instant of a sliding one, the last row of a session or count window.
    private func end(of window: Accumulator) -> Int64 {
        if counted { return window.lastAt }
        switch kind {
        case .tumbling, .hopping: return window.end
        case .sliding: return window.end - 1
        case .session: return StageTime.minus(window.end, size)
        }
    }
}
