import QuixStreams

/// `rolling`: adds a column with an aggregate of a numeric column over the window of the same
/// stream's rows that ends at each row, across frames:
///
/// - a duration window (`window: 10s`) holds the rows whose timestamp is in `(t - window, t]`
///   (pandas' time-based rolling);
/// - a row-count window (`window: 20`) holds the row itself and the rows before it, 20 in all,
///   missing cells included (they take a place but give no value).
///
/// Missing cells are skipped; a window without a value gives a missing cell (0 for `count`). A
/// row's own value always counts. Rows should come in timestamp order; a row older than the
/// stream's latest is aggregated with the kept rows in `(t - window, t]`, and rows older than
/// the latest timestamp minus the window are no longer kept.
///
/// State (store = the stage id, per stream):
/// - `window` (bytes): the present cells still inside the window, 16 bytes each — the position
///   (timestamp, or the row's number in the stream for a row-count window) as a little-endian
///   Int64, then the value's IEEE 754 bits, little-endian — in arrival order;
/// - `maxTimestamp` (Int, duration windows): the latest timestamp seen;
/// - `rowCount` (Int, row-count windows): the rows seen so far.
public struct RollingStage: Stage {
    public enum Aggregate: String, Sendable, CaseIterable {
        case mean, sum, min, max, count
    }

    public enum Window: Sendable, Hashable {
        /// Rows with a timestamp in `(t - span, t]`, the span in nanoseconds.
        case duration(nanoseconds: Int64)
        /// The row and the ones before it, this many in all.
        case rows(Int)
    }

    public let column: String
    public let window: Window
    public let aggregate: Aggregate
    /// The column added.
    public let output: String

    public init(column: String, window: Window, aggregate: Aggregate = .mean, as output: String? = nil) {
        self.column = column
        self.window = window
        self.aggregate = aggregate
        self.output = output ?? "\(column)_\(aggregate.rawValue)"
    }

    public static let descriptor = StageDescriptor(
        name: "rolling",
        summary: "Adds a column with an aggregate over a rolling window (a span of data time or a row count) ending at each row, across frames.",
        options: [
            StageOption("column", "name", required: true, "the numeric column to aggregate"),
            StageOption(
                "window", "duration (10s) or row count (20)", required: true,
                "the rows with a timestamp in (t - window, t], or the last N rows"),
            StageOption("aggregate", "mean | sum | min | max | count", default: "mean", "what to compute over the window"),
            StageOption("as", "name", default: "<column>_<aggregate>", "the column to add"),
        ],
        isStateful: true,
        stateShapedBy: ["column", "window", "aggregate"]
    ) { options in
        let column = options.string("column")
        let window = RollingStage.readWindow(&options)
        let aggregate = options.values["aggregate"] == nil ? RollingStage.Aggregate.mean : options.choice("aggregate", RollingStage.Aggregate.self)
        let output = options.string("as")
        guard let column, let window, let aggregate else { return nil }
        return RollingStage(column: column, window: window, aggregate: aggregate, as: output)
    }

    /// `window`: a whole number is a row count, anything else a duration.
    static func readWindow(_ options: inout StageOptions) -> Window? {
        guard let text = options.string("window") else { return nil }
        if let rows = Int(text) {
            guard (1...1_000_000).contains(rows) else {
                options.fail("window", "expected a row count from 1 to 1000000, found \"\(text)\"")
                return nil
            }
            return .rows(rows)
        }
        guard let duration = parseDuration(text), duration > .zero, StageTime.nanoseconds(duration) > 0 else {
            options.fail("window", "expected a duration such as 10s or a row count such as 20, found \"\(text)\"")
            return nil
        }
        return .duration(nanoseconds: StageTime.nanoseconds(duration))
    }

    static let windowKey = "window"
    static let maxTimestampKey = "maxTimestamp"
    static let rowCountKey = "rowCount"

    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions { definitions.adding(output) }

    public func process(_ frame: consuming TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return frame }
        let state = try context.state()
        var entries = try Self.decode(state.get(Self.windowKey, as: [UInt8].self) ?? [], context)
        let cells = frame[column] ?? NumericColumn(repeating: nil, count: frame.rowCount)
        var result = NumericColumn(repeating: nil, count: frame.rowCount)
        // Entries before `head` have left the window of every later row.
        var head = 0
        let cutoff: Int64
        switch window {
        case .duration(let span):
            var latest = try state.get(Self.maxTimestampKey, as: Int.self).map(Int64.init) ?? .min
            for row in 0..<frame.rowCount {
                let timestamp = frame.timestamps[row]
                latest = Swift.max(latest, timestamp)
                let rowCutoff = StageTime.minus(latest, span)
                while head < entries.count && entries[head].position <= rowCutoff { head += 1 }
                result[row] = aggregate(entries[head...], after: rowCutoff, upTo: timestamp, own: cells[row])
                if let value = cells[row] { entries.append(Entry(position: timestamp, value: value)) }
            }
            state.set(Self.maxTimestampKey, Int(latest))
            cutoff = StageTime.minus(latest, span)
        case .rows(let size):
            var seen = try state.get(Self.rowCountKey, as: Int.self) ?? 0
            for row in 0..<frame.rowCount {
                let position = Int64(seen)
                seen += 1
                let rowCutoff = position - Int64(size)
                while head < entries.count && entries[head].position <= rowCutoff { head += 1 }
                result[row] = aggregate(entries[head...], after: rowCutoff, upTo: position, own: cells[row])
                if let value = cells[row] { entries.append(Entry(position: position, value: value)) }
            }
            state.set(Self.rowCountKey, seen)
            cutoff = Int64(seen) - Int64(size)
        }
        state.set(Self.windowKey, Self.encode(entries[head...].filter { $0.position > cutoff }))
        frame[output] = result
        return frame
    }

    /// The aggregate of the entries with a position in `(cutoff, upper]` and the row's own value.
    private func aggregate(_ entries: ArraySlice<Entry>, after cutoff: Int64, upTo upper: Int64, own: Double?) -> Double? {
        var count = 0
        var sum = 0.0
        var low = Double.infinity
        var high = -Double.infinity
        func add(_ value: Double) {
            count += 1
            sum += value
            low = Swift.min(low, value)
            high = Swift.max(high, value)
        }
        for entry in entries where entry.position > cutoff && entry.position <= upper { add(entry.value) }
        if let own { add(own) }
        switch aggregate {
        case .count: return Double(count)
        case .sum: return count == 0 ? nil : sum
        case .mean: return count == 0 ? nil : sum / Double(count)
        case .min: return count == 0 ? nil : low
        case .max: return count == 0 ? nil : high
        }
    }

    // MARK: State

    struct Entry: Hashable {
        var position: Int64
        var value: Double
    }

    static func encode(_ entries: [Entry]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(entries.count * 16)
        for entry in entries {
            withUnsafeBytes(of: entry.position.littleEndian) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: entry.value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        }
        return bytes
    }

    static func decode(_ bytes: [UInt8], _ context: StageContext) throws -> [Entry] {
        guard bytes.count % 16 == 0 else {
            throw PipelineError(.state, "the rolling window of stream \"\(context.streamID)\" in state is corrupt (\(bytes.count) bytes)")
        }
        func word(_ offset: Int) -> UInt64 {
            var value: UInt64 = 0
            for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (8 * index) }
            return value
        }
        var entries: [Entry] = []
        entries.reserveCapacity(bytes.count / 16)
        for offset in stride(from: 0, to: bytes.count, by: 16) {
            entries.append(Entry(position: Int64(bitPattern: word(offset)), value: Double(bitPattern: word(offset + 8))))
        }
        return entries
    }
}

/// Data-time arithmetic of the stateful stages, in nanoseconds, saturating at the ends of Int64.
enum StageTime {
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return plus(whole, attoseconds / 1_000_000_000)
    }

    static func plus(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }

    static func minus(_ a: Int64, _ b: Int64) -> Int64 {
        let (difference, overflow) = a.subtractingReportingOverflow(b)
        return overflow ? (b > 0 ? .min : .max) : difference
    }

    /// `a / b` rounded down (towards minus infinity), `b` > 0.
    static func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
        let (quotient, remainder) = a.quotientAndRemainder(dividingBy: b)
        return remainder < 0 ? quotient - 1 : quotient
    }

    /// A positive duration option, in nanoseconds (nil when absent or wrong; a wrong one is recorded).
    static func positive(_ options: inout StageOptions, _ name: String) -> Int64? {
        guard let duration = options.duration(name) else { return nil }
        let nanoseconds = nanoseconds(duration)
        guard nanoseconds > 0 else {
            options.fail(name, "expected at least 1ns, found \"\(options.values[name].map(describe) ?? "")\"")
            return nil
        }
        return nanoseconds
    }

    /// A duration option that may be 0 (`0`, `0s`), in nanoseconds.
    static func nonNegative(_ options: inout StageOptions, _ name: String) -> Int64? {
        guard let text = options.string(name) else { return nil }
        if text == "0" { return 0 }
        guard let duration = parseDuration(text), duration >= .zero else {
            options.fail(name, "expected a duration such as 0s, 500ms or 1m, found \"\(text)\"")
            return nil
        }
        return nanoseconds(duration)
    }

    private static func describe(_ value: ConfigValue) -> String {
        if case .scalar(let text) = value.kind { text } else { "" }
    }
}
