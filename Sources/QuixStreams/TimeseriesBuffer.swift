import OrderedCollections

/// One row of a frame, as buffer filters and triggers see it.
public struct TimeseriesRow: Sendable {
    let frame: TimeseriesFrame
    let index: Int

    public var timestamp: Int64 { frame.timestamps[index] }
    public func numeric(_ name: String) -> Double? { frame.numeric[name]?[index] }
    public func string(_ name: String) -> String? { frame.strings[name]?[index] ?? nil }
    public func binary(_ name: String) -> [UInt8]? { frame.binary[name]?[index] ?? nil }
    public func tag(_ name: String) -> String? { frame.tags[name]?[index] ?? nil }

    /// Whether the row has a numeric, string or binary value (tags do not count).
    var hasValues: Bool {
        frame.numeric.values.contains { $0[index] != nil } || frame.strings.values.contains { $0[index] != nil }
            || frame.binary.values.contains { $0[index] != nil }
    }
}

/// When a buffer releases its rows (Quix Streams 0.5, SPEC section 8). With none of packet size,
/// time span, timeout and triggers set, every write is released at once (after the filter).
public struct TimeseriesBufferConfiguration: Sendable {
    /// Release once this many rows are buffered; the row that reaches it is included.
    public var packetSize: Int?
    /// Release, before adding a row, the rows buffered so far when the span of data time they
    /// and the row cover reaches this. Data time, not wall clock.
    public var timeSpan: Duration?
    /// Release everything when no row was written (and nothing released) for this long.
    public var timeout: Duration?
    /// Rows for which this is false are dropped before buffering.
    public var filter: (@Sendable (TimeseriesRow) -> Bool)?
    /// Evaluated per incoming row (when the time span released nothing): true releases the
    /// buffered rows before the row is added.
    public var customTriggerBeforeEnqueue: (@Sendable (TimeseriesRow) -> Bool)?
    /// Evaluated after each row is added, on all buffered rows: true releases them all.
    public var customTrigger: (@Sendable (TimeseriesFrame) -> Bool)?

    public init(
        packetSize: Int? = nil, timeSpan: Duration? = nil, timeout: Duration? = nil,
        filter: (@Sendable (TimeseriesRow) -> Bool)? = nil,
        customTriggerBeforeEnqueue: (@Sendable (TimeseriesRow) -> Bool)? = nil,
        customTrigger: (@Sendable (TimeseriesFrame) -> Bool)? = nil
    ) {
        self.packetSize = packetSize
        self.timeSpan = timeSpan
        self.timeout = timeout
        self.filter = filter
        self.customTriggerBeforeEnqueue = customTriggerBeforeEnqueue
        self.customTrigger = customTrigger
    }

    /// Whether rows are held at all.
    public var isBuffering: Bool {
        packetSize != nil || timeSpan != nil || timeout != nil || customTrigger != nil || customTriggerBeforeEnqueue != nil
    }
}

/// The buffer engine of producer and consumer time-series buffers. A value type driven by its
/// owner: `write` returns what it releases, `expire(now:)` applies the timeout, `flush` releases
/// the rest (on flush and close). A release concatenates the buffered rows, leaves out columns
/// that are entirely empty in the frame they came from, merges rows with the same timestamp and
/// tags (later values win), and, for a producer, drops rows without any value; an empty release
/// is not returned.
public struct TimeseriesBuffer: Sendable {
    public var configuration: TimeseriesBufferConfiguration
    /// Drop rows without values on release (the producer does, the consumer does not).
    public var dropsRowsWithoutValues: Bool

    private var parts: [TimeseriesFrame] = []
    /// For each part, where it came from (a consumer's package offset), if known.
    private var origins: [Int64?] = []
    private var rows: [(part: Int, row: Int)] = []
    private var earliest = Int64.max
    private var latest = Int64.min
    private var deadline: ContinuousClock.Instant?

    public init(_ configuration: TimeseriesBufferConfiguration = .init(), dropsRowsWithoutValues: Bool) {
        self.configuration = configuration
        self.dropsRowsWithoutValues = dropsRowsWithoutValues
    }

    /// Rows waiting for a release.
    public var bufferedRows: Int { rows.count }

    /// When the timeout will release the buffered rows, if it is set and rows are waiting.
    public var nextDeadline: ContinuousClock.Instant? { rows.isEmpty ? nil : deadline }

    /// The smallest origin of a frame that still has rows waiting: a consumer must not commit
    /// past it, or a crash would lose those rows.
    public var oldestHeldOrigin: Int64? {
        Set(rows.map(\.part)).compactMap { origins[$0] }.min()
    }

    /// Adds the rows of `frame` (from `origin`, e.g. the offset of the package it came in);
    /// returns the frames released, in order.
    public mutating func write(_ frame: TimeseriesFrame, origin: Int64? = nil, now: ContinuousClock.Instant = .now) -> [TimeseriesFrame] {
        var released: [TimeseriesFrame] = []
        guard configuration.isBuffering else {
            let kept = (0..<frame.rowCount).filter { row in configuration.filter?(TimeseriesRow(frame: frame, index: row)) ?? true }
            if let release = Self.release([(frame, kept)], dropEmpty: dropsRowsWithoutValues) { released.append(release) }
            return released
        }
        let part = parts.count
        parts.append(frame)
        origins.append(origin)
        for index in 0..<frame.rowCount {
            let row = TimeseriesRow(frame: frame, index: index)
            if let filter = configuration.filter, !filter(row) { continue }
            let timestamp = row.timestamp
            var releasedBefore = false
            if let span = configuration.timeSpan, !rows.isEmpty {
                let low = min(earliest, timestamp)
                let high = max(latest, timestamp)
                if high - low >= span.nanoseconds {
                    released += releaseAll(now: now)
                    releasedBefore = true
                }
            }
            if !releasedBefore, !rows.isEmpty, configuration.customTriggerBeforeEnqueue?(row) == true {
                released += releaseAll(now: now)
            }
            rows.append((part, index))
            earliest = min(earliest, timestamp)
            latest = max(latest, timestamp)
            if let size = configuration.packetSize, rows.count >= size {
                released += releaseAll(now: now)
            } else if let trigger = configuration.customTrigger, trigger(bufferedFrame()) {
                released += releaseAll(now: now)
            }
        }
        if let timeout = configuration.timeout { deadline = now + timeout }
        dropReleasedParts()
        return released
    }

    /// Releases the buffered rows when the timeout has passed without writes.
    public mutating func expire(now: ContinuousClock.Instant = .now) -> TimeseriesFrame? {
        guard let deadline, now >= deadline, !rows.isEmpty else { return nil }
        defer { dropReleasedParts() }
        return releaseAll(now: now).first
    }

    /// Releases everything buffered (on flush and close).
    public mutating func flush(now: ContinuousClock.Instant = .now) -> TimeseriesFrame? {
        defer { dropReleasedParts() }
        return releaseAll(now: now).first
    }

    /// Forgets written frames that no buffered row refers to any more. Not done inside a
    /// release: the frame being written may have rows still to come.
    private mutating func dropReleasedParts() {
        guard let first = rows.first?.part else {
            parts.removeAll(keepingCapacity: true)
            origins.removeAll(keepingCapacity: true)
            return
        }
        guard first > 0 else { return }
        parts.removeFirst(first)
        origins.removeFirst(first)
        rows = rows.map { ($0.part - first, $0.row) }
    }

    private func bufferedFrame() -> TimeseriesFrame {
        TimeseriesFrame.concatenate(groupedRows().map { $0.frame.rows($0.rows) })
    }

    /// The buffered rows as runs of consecutive rows of one written frame.
    private func groupedRows() -> [(frame: TimeseriesFrame, rows: [Int])] {
        var groups: [(part: Int, rows: [Int])] = []
        for (part, row) in rows {
            if let last = groups.indices.last, groups[last].part == part {
                groups[last].rows.append(row)
            } else {
                groups.append((part, [row]))
            }
        }
        return groups.map { (parts[$0.part], $0.rows) }
    }

    private mutating func releaseAll(now: ContinuousClock.Instant) -> [TimeseriesFrame] {
        let groups = groupedRows()
        rows.removeAll(keepingCapacity: true)
        earliest = .max
        latest = .min
        if let timeout = configuration.timeout { deadline = now + timeout }
        return Self.release(groups, dropEmpty: dropsRowsWithoutValues).map { [$0] } ?? []
    }

    /// One release: the rows of each part (its all-empty columns left out), merged by
    /// (timestamp, tags), optionally without rows that carry no value; nil when empty.
    static func release(_ groups: [(frame: TimeseriesFrame, rows: [Int])], dropEmpty: Bool) -> TimeseriesFrame? {
        let pieces = groups.map { $0.frame.rows($0.rows).droppingEmptyColumns() }
        var merged = TimeseriesFrame.concatenate(pieces).mergingDuplicateRows()
        if dropEmpty {
            merged = merged.rows((0..<merged.rowCount).filter { TimeseriesRow(frame: merged, index: $0).hasValues })
        }
        return merged.rowCount == 0 ? nil : merged
    }
}

extension TimeseriesFrame {
    /// Whether every row has a numeric, string or binary value (a column without a missing cell
    /// answers at once).
    var rowsHaveValues: Bool {
        if numeric.values.contains(where: { !$0.present.contains(false) }) || strings.values.contains(where: { !$0.contains(nil) })
            || binary.values.contains(where: { !$0.contains(nil) })
        {
            return true
        }
        return (0..<rowCount).allSatisfy { TimeseriesRow(frame: self, index: $0).hasValues }
    }

    /// Without the columns in which no row has a value.
    func droppingEmptyColumns() -> TimeseriesFrame {
        var result = TimeseriesFrame(timestamps: timestamps)
        for (name, column) in numeric where column.presentCount > 0 { result[name] = column }
        for (name, column) in strings where column.contains(where: { $0 != nil }) { result.setStrings(name, column) }
        for (name, column) in binary where column.contains(where: { $0 != nil }) { result.setBinary(name, column) }
        for (name, column) in tags where column.contains(where: { $0 != nil }) { result.setTags(name, column) }
        return result
    }

    /// Rows with the same timestamp and the same tags merged into the first of them; a later
    /// row's values overwrite earlier ones where it has a value.
    func mergingDuplicateRows() -> TimeseriesFrame {
        // Strictly increasing timestamps (the usual case) cannot have duplicates.
        let increasing = timestamps.withUnsafeBufferPointer { times in
            times.indices.dropFirst().allSatisfy { times[$0 - 1] < times[$0] }
        }
        if increasing { return self }
        struct Key: Hashable {
            var timestamp: Int64
            var tags: [String?]
        }
        var firstOf: [Key: Int] = [:]
        var target: [Int] = []  // for each row, the output row it merges into
        var outputRows: [Int] = []
        for row in 0..<rowCount {
            let key = Key(timestamp: timestamps[row], tags: tags.values.map { $0[row] })
            if let existing = firstOf[key] {
                target.append(existing)
            } else {
                firstOf[key] = outputRows.count
                target.append(outputRows.count)
                outputRows.append(row)
            }
        }
        guard outputRows.count < rowCount else { return self }
        var result = rows(outputRows)
        for row in 0..<rowCount where outputRows[target[row]] != row {
            let into = target[row]
            for (name, column) in numeric { if let value = column[row] { result.numeric[name]![into] = value } }
            for (name, column) in strings { if let value = column[row] { result.strings[name]![into] = value } }
            for (name, column) in binary { if let value = column[row] { result.binary[name]![into] = value } }
        }
        return result
    }
}

extension Duration {
    /// Whole nanoseconds.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
