import OrderedCollections


/// Time-series data as columns: one timestamp per row (ns since the Unix epoch, epoch folded
/// in), numeric columns as flat arrays, string and binary columns, and tags. What a pandas frame
/// of the Quix 0.5 data gives a data scientist: column access and arithmetic, filters,
/// projection, concatenation, and rolling windows on data time.
///
/// The columns live in one copy-on-write box: a frame is passed through decoders, stages and
/// outputs by value, and a copy is one reference to count, not one per array and dictionary
/// (thirteen, which made frame copies a tenth of the runtime's CPU).
public struct TimeseriesFrame: Sendable, Hashable {
    private var storage: Storage

    public init(timestamps: [Int64] = []) {
        storage = Storage(timestamps: timestamps)
    }

    /// A frame of these columns (a decoder's), made in one step.
    package init(
        timestamps: [Int64], numeric: OrderedDictionary<String, NumericColumn>, strings: OrderedDictionary<String, [String?]>,
        binary: OrderedDictionary<String, [[UInt8]?]>, tags: OrderedDictionary<String, [String?]>
    ) {
        storage = Storage(timestamps: timestamps, numeric: numeric, strings: strings, binary: binary, tags: tags)
    }

    public package(set) var timestamps: [Int64] {
        _read { yield storage.timestamps }
        _modify {
            makeUnique()
            yield &storage.timestamps
        }
    }

    public package(set) var numeric: OrderedDictionary<String, NumericColumn> {
        _read { yield storage.numeric }
        _modify {
            makeUnique()
            yield &storage.numeric
        }
    }

    public package(set) var strings: OrderedDictionary<String, [String?]> {
        _read { yield storage.strings }
        _modify {
            makeUnique()
            yield &storage.strings
        }
    }

    public package(set) var binary: OrderedDictionary<String, [[UInt8]?]> {
        _read { yield storage.binary }
        _modify {
            makeUnique()
            yield &storage.binary
        }
    }

    public package(set) var tags: OrderedDictionary<String, [String?]> {
        _read { yield storage.tags }
        _modify {
            makeUnique()
            yield &storage.tags
        }
    }

    private mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
    }

    /// The columns of a frame and its copies until one of them changes. A box is only changed
    /// through a frame that holds the sole reference (`makeUnique`), so no two accesses to a
    /// box's fields ever overlap and they go unchecked.
    private final class Storage: @unchecked Sendable {
        @exclusivity(unchecked) var timestamps: [Int64]
        @exclusivity(unchecked) var numeric: OrderedDictionary<String, NumericColumn>
        @exclusivity(unchecked) var strings: OrderedDictionary<String, [String?]>
        @exclusivity(unchecked) var binary: OrderedDictionary<String, [[UInt8]?]>
        @exclusivity(unchecked) var tags: OrderedDictionary<String, [String?]>

        convenience init(timestamps: [Int64]) { self.init(timestamps: timestamps, numeric: [:], strings: [:], binary: [:], tags: [:]) }

        init(
            timestamps: [Int64], numeric: OrderedDictionary<String, NumericColumn>, strings: OrderedDictionary<String, [String?]>,
            binary: OrderedDictionary<String, [[UInt8]?]>, tags: OrderedDictionary<String, [String?]>
        ) {
            self.timestamps = timestamps
            self.numeric = numeric
            self.strings = strings
            self.binary = binary
            self.tags = tags
        }

        func copy() -> Storage {
            Storage(timestamps: timestamps, numeric: numeric, strings: strings, binary: binary, tags: tags)
        }
    }

    public static func == (a: TimeseriesFrame, b: TimeseriesFrame) -> Bool {
        a.storage === b.storage
            || (a.timestamps == b.timestamps && a.numeric == b.numeric && a.strings == b.strings && a.binary == b.binary && a.tags == b.tags)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(timestamps)
        hasher.combine(numeric)
        hasher.combine(strings)
        hasher.combine(binary)
        hasher.combine(tags)
    }

    public var rowCount: Int { timestamps.count }

    // MARK: Columns

    /// A numeric column; setting one with the wrong number of rows is a programming error.
    public subscript(name: String) -> NumericColumn? {
        get { numeric[name] }
        set {
            if let newValue { precondition(newValue.count == rowCount, "column \"\(name)\" has \(newValue.count) rows, the frame \(rowCount)") }
            numeric[name] = newValue
        }
    }

    public mutating func setStrings(_ name: String, _ column: [String?]) {
        precondition(column.count == rowCount, "column \"\(name)\" has \(column.count) rows, the frame \(rowCount)")
        strings[name] = column
    }

    public mutating func setBinary(_ name: String, _ column: [[UInt8]?]) {
        precondition(column.count == rowCount, "column \"\(name)\" has \(column.count) rows, the frame \(rowCount)")
        binary[name] = column
    }

    public mutating func setTags(_ name: String, _ column: [String?]) {
        precondition(column.count == rowCount, "column \"\(name)\" has \(column.count) rows, the frame \(rowCount)")
        tags[name] = column
    }

    // MARK: Rows

    /// The rows where `mask` is true, in order.
    public func filter(_ mask: RowMask) -> TimeseriesFrame {
        precondition(mask.rows.count == rowCount, "a mask of \(mask.rows.count) rows for a frame of \(rowCount)")
        let kept = mask.rows.indices.filter { mask.rows[$0] }
        return rows(kept)
    }

    /// Only these columns (numeric, string or binary); tags are kept.
    public func select(_ names: some Sequence<String>) -> TimeseriesFrame {
        let wanted = Set(names)
        var result = TimeseriesFrame(timestamps: timestamps)
        result.numeric = numeric.filter { wanted.contains($0.key) }
        result.strings = strings.filter { wanted.contains($0.key) }
        result.binary = binary.filter { wanted.contains($0.key) }
        result.tags = tags
        return result
    }

    /// Without these columns.
    public func dropping(_ names: some Sequence<String>) -> TimeseriesFrame {
        let unwanted = Set(names)
        return select((Array(numeric.keys) + Array(strings.keys) + Array(binary.keys)).filter { !unwanted.contains($0) })
    }

    /// The frame with columns and tags renamed (`old: new`); other names are kept.
    public func renaming(_ names: [String: String]) -> TimeseriesFrame {
        func renamed<Column>(_ columns: OrderedDictionary<String, Column>) -> OrderedDictionary<String, Column> {
            OrderedDictionary(columns.map { (names[$0.key] ?? $0.key, $0.value) }, uniquingKeysWith: { _, last in last })
        }
        var result = TimeseriesFrame(timestamps: timestamps)
        result.numeric = renamed(numeric)
        result.strings = renamed(strings)
        result.binary = renamed(binary)
        result.tags = renamed(tags)
        return result
    }

    /// Frames one after the other; a column missing from a frame is missing in its rows.
    public static func concatenate(_ frames: [TimeseriesFrame]) -> TimeseriesFrame {
        var result = TimeseriesFrame(timestamps: frames.flatMap(\.timestamps))
        var offset = 0
        for frame in frames {
            for (name, column) in frame.numeric {
                var target = result.numeric[name] ?? NumericColumn(repeating: nil, count: result.rowCount)
                for row in 0..<frame.rowCount { target[offset + row] = column[row] }
                result.numeric[name] = target
            }
            place(frame.strings, into: &result.strings, at: offset, total: result.rowCount)
            place(frame.binary, into: &result.binary, at: offset, total: result.rowCount)
            place(frame.tags, into: &result.tags, at: offset, total: result.rowCount)
            offset += frame.rowCount
        }
        return result
    }

    private static func place<Cell>(
        _ columns: OrderedDictionary<String, [Cell?]>, into target: inout OrderedDictionary<String, [Cell?]>, at offset: Int, total: Int
    ) {
        for (name, column) in columns {
            var cells = target[name] ?? Array(repeating: nil, count: total)
            cells.replaceSubrange(offset..<(offset + column.count), with: column)
            target[name] = cells
        }
    }

    /// The frame of the given rows, in the given order.
    public func rows(_ indices: [Int]) -> TimeseriesFrame {
        var result = TimeseriesFrame(timestamps: indices.map { timestamps[$0] })
        for (name, column) in numeric { result.numeric[name] = NumericColumn(indices.map { column[$0] }) }
        for (name, column) in strings { result.strings[name] = indices.map { column[$0] } }
        for (name, column) in binary { result.binary[name] = indices.map { column[$0] } }
        for (name, column) in tags { result.tags[name] = indices.map { column[$0] } }
        return result
    }

    // MARK: The wire model

    /// The frame of a packet, epoch folded into the timestamps.
    public init(_ data: TimeseriesData) {
        self.init(timestamps: data.epoch == 0 ? data.timestamps : data.timestamps.map { data.epoch &+ $0 })
        for (name, column) in data.numericValues { numeric[name] = NumericColumn(column) }
        strings = data.stringValues
        binary = data.binaryValues
        tags = data.tagValues
    }

    /// The packet of this frame (absolute timestamps, no epoch).
    public var timeseriesData: TimeseriesData {
        TimeseriesData(
            timestamps: timestamps,
            numericValues: OrderedDictionary(uniqueKeysWithValues: numeric.map { ($0.key, Array($0.value)) }),
            stringValues: strings, binaryValues: binary, tagValues: tags)
    }

    // MARK: Rolling windows

    /// Rolling windows ending at each row: the rows within `window` of data time before it
    /// (`(t - window, t]`, as pandas' time-based rolling), or the last `n` rows. Timestamps must
    /// be in ascending order for a duration window.
    public func rolling(_ column: String, _ window: RollingWindow) -> Rolling {
        Rolling(timestamps: timestamps, column: numeric[column] ?? NumericColumn(repeating: nil, count: rowCount), window: window)
    }
}

public enum RollingWindow: Sendable, Hashable {
    /// Rows whose timestamp is within this span of data time before the current row.
    case duration(Duration)
    /// The current row and the ones before it, this many in all.
    case rows(Int)
}

/// Aggregates over rolling windows; each gives one cell per row (missing when its window has
/// no value).
public struct Rolling: Sendable {
    let timestamps: [Int64]
    let column: NumericColumn
    let window: RollingWindow

    public func sum() -> NumericColumn { aggregate { $0.reduce(0, +) } }
    public func mean() -> NumericColumn { aggregate { $0.reduce(0, +) / Double($0.count) } }
    public func min() -> NumericColumn { aggregate { $0.min()! } }
    public func max() -> NumericColumn { aggregate { $0.max()! } }
    /// Present values in each window (0, not missing, for an empty window).
    public func count() -> NumericColumn {
        NumericColumn(values: (0..<column.count).map { row in Double(bounds(row).filter { column.present[$0] }.count) })
    }

    private func aggregate(_ reduce: ([Double]) -> Double) -> NumericColumn {
        NumericColumn((0..<column.count).map { row -> Double? in
            let values = bounds(row).compactMap { column[$0] }
            return values.isEmpty ? nil : reduce(values)
        })
    }

    /// The rows of the window ending at `row`.
    private func bounds(_ row: Int) -> Range<Int> {
        switch window {
        case .rows(let count):
            return Swift.max(0, row - count + 1)..<(row + 1)
        case .duration(let span):
            let (seconds, attoseconds) = span.components
            let nanoseconds = seconds * 1_000_000_000 + attoseconds / 1_000_000_000
            var first = row
            while first > 0 && timestamps[first - 1] > timestamps[row] - nanoseconds { first -= 1 }
            return first..<(row + 1)
        }
    }
}
