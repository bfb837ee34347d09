import QuixStreams

/// `window`: aggregates a numeric column over windows of data time and passes on one row per
/// window once it is closed — and nothing else (an empty frame when no window closed).
///
/// Windows (`size`, `step` and `grace` are durations; times are ns since the Unix epoch):
/// - `tumbling`: `[k*size, (k+1)*size)`, aligned to the epoch;
/// - `hopping`: `[k*step, k*step + size)`, a window of `size` starting every `step`
///   (`step` ≤ `size`), so a row is in `size/step` windows;
/// - `sliding` (Kafka Streams' sliding windows, the windows defined by the records): each distinct
///   timestamp `t` of a row defines the window `[t - size, t]`, both ends inclusive, holding every
///   row with a timestamp in it (including rows that arrive later, within the grace). It is the
///   look-back window of each row; Kafka's extra "right" windows (the sets after a row drops
///   out) are not made. Its output row has timestamp `t - size` and `window_end = t`.
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
        case tumbling, hopping, sliding
    }

    public enum Aggregate: String, Sendable, CaseIterable {
        case mean, sum, min, max, count, first, last
    }

    public let kind: Kind
    /// In nanoseconds, as `step` and `grace`.
    public let size: Int64
    /// How far apart windows start: `size` for tumbling windows (unused by sliding ones).
    public let step: Int64
    public let grace: Int64
    public let column: String
    public let aggregates: [Aggregate]

    public init(kind: Kind = .tumbling, size: Int64, step: Int64? = nil, grace: Int64 = 0, column: String, aggregates: [Aggregate] = [.mean]) {
        precondition(size > 0 && (step ?? size) > 0 && (step ?? size) <= size && grace >= 0, "invalid window")
        self.kind = kind
        self.size = size
        self.step = kind == .hopping ? (step ?? size) : size
        self.grace = grace
        self.column = column
        self.aggregates = aggregates
    }

    public static let descriptor = StageDescriptor(
        name: "window",
        summary: "Aggregates a column over tumbling, hopping or sliding windows of data time; passes on one row per window when it closes.",
        options: [
            StageOption("type", "tumbling | hopping | sliding", default: "tumbling", "how windows are laid out on data time"),
            StageOption("size", "duration", required: true, "the length of a window"),
            StageOption("step", "duration", "how far apart hopping windows start, at most size (hopping windows only, and required there)"),
            StageOption("grace", "duration", default: "0s", "how long after its end a window still takes rows that arrive late"),
            StageOption("column", "name", required: true, "the numeric column to aggregate"),
            StageOption(
                "aggregates", "list of mean | sum | min | max | count | first | last", default: "[mean]",
                "the aggregates, passed on as columns <column>_<aggregate> besides window_end"),
        ],
        isStateful: true
    ) { options in
        let kind = options.values["type"] == nil ? WindowStage.Kind.tumbling : options.choice("type", WindowStage.Kind.self)
        let size = StageTime.positive(&options, "size")
        var step: Int64?
        if let kind, options.values["step"] != nil {
            switch kind {
            case .hopping:
                step = StageTime.positive(&options, "step")
                if let given = step, let size, given > size {
                    options.fail("step", "expected a duration no longer than size (\(WindowStage.text(options, "size"))), found \"\(WindowStage.text(options, "step"))\"")
                    step = nil
                }
            case .tumbling:
                options.fail("step", "only hopping windows take a step; a tumbling window starts where the previous one ends")
            case .sliding:
                options.fail("step", "only hopping windows take a step; a sliding window ends at each row")
            }
        } else if kind == .hopping {
            options.fail("step", "missing; a hopping window needs it (how far apart windows start)")
        }
        let grace = options.values["grace"] == nil ? 0 : StageTime.nonNegative(&options, "grace")
        let column = options.string("column")
        let aggregates = options.values["aggregates"] == nil ? [WindowStage.Aggregate.mean] : WindowStage.readAggregates(&options)
        guard let kind, let size, let grace, let column, let aggregates, kind != .hopping || step != nil else { return nil }
        return WindowStage(kind: kind, size: size, step: step, grace: grace, column: column, aggregates: aggregates)
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

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return TimeseriesFrame() }
        let state = try context.state()
        var latest = try state.get(Self.maxTimestampKey, as: Int.self).map(Int64.init) ?? .min
        var open: [Int64: Accumulator] = [:]
        for window in try state.decode(Self.windowsKey, as: [Accumulator].self) ?? [] { open[window.start] = window }
        var rows = Rows()
        if kind == .sliding { rows = try state.decode(Self.rowsKey, as: Rows.self) ?? Rows() }
        let cells = frame[column] ?? NumericColumn(repeating: nil, count: frame.rowCount)
        var late = 0
        for row in 0..<frame.rowCount {
            let timestamp = frame.timestamps[row]
            latest = Swift.max(latest, timestamp)
            guard let value = cells[row] else { continue }
            let missed =
                kind == .sliding
                ? addSliding(timestamp, value, to: &open, rows: &rows, latest: latest)
                : addAligned(timestamp, value, to: &open, latest: latest)
            if missed { late += 1 }
        }
        let closed = open.values.filter { isClosed($0.end, latest) }.sorted { $0.start < $1.start }
        for window in closed { open[window.start] = nil }

        state.set(Self.maxTimestampKey, Int(latest))
        if late > 0 { try state.update(Self.lateKey, default: 0) { $0 += late } }
        try state.encode(open.values.sorted { $0.start < $1.start }, for: Self.windowsKey)
        if kind == .sliding {
            rows.keep(from: StageTime.minus(StageTime.minus(latest, grace), size))
            try state.encode(rows, for: Self.rowsKey)
        }
        return output(closed)
    }

    /// None of the input's parameters pass on: the output has only the window's columns, which
    /// the pipeline defines when they first appear.
    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions {
        (aggregates.map { "\(column)_\($0.rawValue)" } + ["window_end"]).reduce(ParameterDefinitions()) { $0.adding($1) }
    }

    private func isClosed(_ end: Int64, _ latest: Int64) -> Bool { StageTime.plus(end, grace) <= latest }

    /// Adds a value to its tumbling or hopping windows that are open; true if it missed a closed one.
    private func addAligned(_ timestamp: Int64, _ value: Double, to open: inout [Int64: Accumulator], latest: Int64) -> Bool {
        let last = StageTime.floorDivide(timestamp, step)
        let first = StageTime.floorDivide(StageTime.minus(timestamp, size), step) + 1
        guard first <= last else { return false }
        var missed = false
        for index in first...last {
            let start = index * step
            let end = StageTime.plus(start, size)
            if isClosed(end, latest) {
                missed = true
            } else {
                open[start, default: Accumulator(start: start, end: end)].add(timestamp, value)
            }
        }
        return missed
    }

    /// Adds a value to the open sliding windows that contain it and opens its own window
    /// `[t - size, t]` (with the kept values in it); true if its own window is already closed.
    private func addSliding(
        _ timestamp: Int64, _ value: Double, to open: inout [Int64: Accumulator], rows: inout Rows, latest: Int64
    ) -> Bool {
        let containing = open.values.filter { $0.start <= timestamp && timestamp < $0.end && !isClosed($0.end, latest) }.map(\.start)
        for start in containing { open[start]?.add(timestamp, value) }
        let start = StageTime.minus(timestamp, size)
        let end = StageTime.plus(timestamp, 1)
        let missed = isClosed(end, latest)
        if !missed && open[start] == nil {
            var window = Accumulator(start: start, end: end)
            for (time, kept) in zip(rows.timestamps, rows.values) where time >= start && time <= timestamp { window.add(time, kept) }
            window.add(timestamp, value)
            open[start] = window
        }
        rows.timestamps.append(timestamp)
        rows.values.append(value)
        return missed
    }

    private func output(_ closed: [Accumulator]) -> TimeseriesFrame {
        var frame = TimeseriesFrame(timestamps: closed.map(\.start))
        guard !closed.isEmpty else { return frame }
        for aggregate in aggregates {
            frame["\(column)_\(aggregate.rawValue)"] = NumericColumn(closed.map { $0.value(aggregate) })
        }
        frame["window_end"] = NumericColumn(values: closed.map { Double(kind == .sliding ? $0.end - 1 : $0.end) })
        return frame
    }

    // MARK: State

    /// An open window's running aggregates.
    struct Accumulator: Codable, Sendable, Hashable {
        var start: Int64
        /// Exclusive.
        var end: Int64
        var count = 0
        var sum = 0.0
        var min = Double.infinity
        var max = -Double.infinity
        var first = Double.nan
        var firstAt = Int64.max
        var last = Double.nan
        var lastAt = Int64.min

        init(start: Int64, end: Int64) {
            self.start = start
            self.end = end
        }

        mutating func add(_ timestamp: Int64, _ value: Double) {
            count += 1
            sum += value
            min = Swift.min(min, value)
            max = Swift.max(max, value)
            if timestamp < firstAt || count == 1 {
                first = value
                firstAt = timestamp
            }
            if timestamp >= lastAt || count == 1 {
                last = value
                lastAt = timestamp
            }
        }

        func value(_ aggregate: Aggregate) -> Double? {
            if aggregate == .count { return Double(count) }
            guard count > 0 else { return nil }
            switch aggregate {
            case .mean: return sum / Double(count)
            case .sum: return sum
            case .min: return min
            case .max: return max
            case .count: return Double(count)
            case .first: return first
            case .last: return last
            }
        }

        enum CodingKeys: String, CodingKey {
            case start = "s", end = "e", count = "n", sum, min, max, first = "f", firstAt = "ft", last = "l", lastAt = "lt"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            start = try container.decode(Int64.self, forKey: .start)
            end = try container.decode(Int64.self, forKey: .end)
            count = try container.decode(Int.self, forKey: .count)
            sum = try container.decode(Number.self, forKey: .sum).value
            min = try container.decode(Number.self, forKey: .min).value
            max = try container.decode(Number.self, forKey: .max).value
            first = try container.decode(Number.self, forKey: .first).value
            firstAt = try container.decode(Int64.self, forKey: .firstAt)
            last = try container.decode(Number.self, forKey: .last).value
            lastAt = try container.decode(Int64.self, forKey: .lastAt)
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(start, forKey: .start)
            try container.encode(end, forKey: .end)
            try container.encode(count, forKey: .count)
            try container.encode(Number(sum), forKey: .sum)
            try container.encode(Number(min), forKey: .min)
            try container.encode(Number(max), forKey: .max)
            try container.encode(Number(first), forKey: .first)
            try container.encode(firstAt, forKey: .firstAt)
            try container.encode(Number(last), forKey: .last)
            try container.encode(lastAt, forKey: .lastAt)
        }
    }

    /// The values a sliding window may still need, in arrival order.
    struct Rows: Codable, Sendable, Hashable {
        var timestamps: [Int64] = []
        var values: [Double] = []

        init() {}

        mutating func keep(from oldest: Int64) {
            let kept = timestamps.indices.filter { timestamps[$0] >= oldest }
            guard kept.count < timestamps.count else { return }
            timestamps = kept.map { timestamps[$0] }
            values = kept.map { values[$0] }
        }

        enum CodingKeys: String, CodingKey {
            case timestamps = "t", values = "v"
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            timestamps = try container.decode([Int64].self, forKey: .timestamps)
            values = try container.decode([Number].self, forKey: .values).map(\.value)
            guard timestamps.count == values.count else {
                throw DecodingError.dataCorruptedError(forKey: .values, in: container, debugDescription: "as many values as timestamps expected")
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(timestamps, forKey: .timestamps)
            try container.encode(values.map(Number.init), forKey: .values)
        }
    }

    /// A Double in JSON: a number when finite, else "nan", "inf" or "-inf" (JSON has none).
    struct Number: Codable, Sendable, Hashable {
        var value: Double

        init(_ value: Double) { self.value = value }

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let number = try? container.decode(Double.self) {
                value = number
                return
            }
            switch try container.decode(String.self) {
            case "nan": value = .nan
            case "inf": value = .infinity
            case "-inf": value = -.infinity
            case let other: throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(other)\" is not a number")
            }
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            if value.isFinite {
                try container.encode(value)
            } else {
                try container.encode(value.isNaN ? "nan" : value > 0 ? "inf" : "-inf")
            }
        }
    }
}
