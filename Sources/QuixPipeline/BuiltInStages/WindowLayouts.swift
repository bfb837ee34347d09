/// How each kind of window takes a row: which windows it goes into, and whether it came too late
/// for one (see `WindowStage` for the layouts).
extension WindowStage {
    /// What adding one row did.
    struct Added {
        /// The row belongs to a window that is already closed.
        var missed = false
        /// The starts of the windows it went into.
        var windows: [Int64] = []
    }

    func isClosed(_ end: Int64, _ latest: Int64) -> Bool { StageTime.plus(end, grace) <= latest }

    /// Adds a value to its tumbling or hopping windows of data time that are open.
    func addAligned(_ timestamp: Int64, _ value: Double, to open: inout [Int64: Accumulator], latest: Int64) -> Added {
        let last = StageTime.floorDivide(timestamp, step)
        let first = StageTime.floorDivide(StageTime.minus(timestamp, size), step) + 1
        var added = Added()
        guard first <= last else { return added }
        for index in first...last {
            let start = index * step
            let end = StageTime.plus(start, size)
            if isClosed(end, latest) {
                added.missed = true
            } else {
                open[start, default: Accumulator(start: start, end: end)].add(timestamp, value)
                added.windows.append(start)
            }
        }
        return added
    }

    /// Adds a value to the open sliding windows that contain it and opens its own window
    /// `[t - size, t]` (with the kept values in it); missed if its own window is already closed.
    func addSliding(_ timestamp: Int64, _ value: Double, to open: inout [Int64: Accumulator], rows: inout Rows, latest: Int64) -> Added {
        let containing = open.values.filter { $0.start <= timestamp && timestamp < $0.end && !isClosed($0.end, latest) }.map(\.start).sorted()
        for start in containing { open[start]?.add(timestamp, value) }
        var added = Added(windows: containing)
        let start = StageTime.minus(timestamp, size)
        let end = StageTime.plus(timestamp, 1)
        added.missed = isClosed(end, latest)
        if !added.missed && open[start] == nil {
            var window = Accumulator(start: start, end: end)
            for (time, kept) in zip(rows.timestamps, rows.values) where time >= start && time <= timestamp { window.add(time, kept) }
            window.add(timestamp, value)
            open[start] = window
            added.windows.append(start)
        }
        rows.timestamps.append(timestamp)
        rows.values.append(value)
        return added
    }

    /// Adds a value to the open session within `gap` of it, joining the sessions it bridges, or
    /// opens a session of its own; missed if it touches no open session and its own is closed.
    func addSession(_ timestamp: Int64, _ value: Double, to open: inout [Int64: Accumulator], latest: Int64) -> Added {
        let touching = open.values.filter {
            !isClosed($0.end, latest) && StageTime.minus($0.start, size) < timestamp && timestamp < $0.end
        }
        var session = Accumulator(start: timestamp, end: StageTime.plus(timestamp, size))
        if touching.isEmpty && isClosed(session.end, latest) { return Added(missed: true) }
        session.add(timestamp, value)
        for other in touching {
            open[other.start] = nil
            session.merge(other)
        }
        open[session.start] = session
        return Added(windows: [session.start])
    }

    /// Adds the stream's row number `index` to its count windows (`start` and `end` count rows).
    func addCounted(_ index: Int64, _ timestamp: Int64, _ value: Double, to open: inout [Int64: Accumulator]) -> Added {
        let last = index / step
        let first = Swift.max(0, StageTime.floorDivide(index - size, step) + 1)
        var added = Added()
        for window in first...last {
            let start = window * step
            open[start, default: Accumulator(start: start, end: start + size)].add(timestamp, value)
            added.windows.append(start)
        }
        return added
    }
}
