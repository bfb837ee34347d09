import OrderedCollections
import QuixProtocol
import QuixStreams
import QuixTestSupport
import Testing

private let base: Int64 = 1_700_000_000_000_000_000
private let ms: Int64 = 1_000_000

/// A one-row frame, as one `buffer.add_timestamp…publish()` of the reference writes it.
private func row(_ timestamp: Int64, _ values: [String: Double], tags: [String: String] = [:]) -> TimeseriesFrame {
    var frame = TimeseriesFrame(timestamps: [timestamp])
    for (name, value) in values.sorted(by: { $0.key < $1.key }) { frame[name] = [value] }
    for (name, value) in tags.sorted(by: { $0.key < $1.key }) { frame.setTags(name, [value]) }
    return frame
}

/// The ParameterData packages of a golden vector file, as bytes.
private func publishedPackets(_ file: String) throws -> [[UInt8]] {
    try Vectors.messages(file).map(\.value).filter { value in
        if case .model(.timeseries) = try QuixCodec.decode(value[...]) { true } else { false }
    }
}

private func encoded(_ frames: [TimeseriesFrame]) -> [[UInt8]] {
    frames.map { QuixCodec.encode(.timeseries($0.timeseriesData)) }
}

@Suite("time-series buffers release exactly when the reference does")
struct TimeseriesBufferTests {
    @Test("packet size 3, seven rows: 3, 3 and 1 at close; the packets are byte-identical to 0.5.7's")
    func packetSize() throws {
        var buffer = TimeseriesBuffer(.init(packetSize: 3), dropsRowsWithoutValues: true)
        var released: [TimeseriesFrame] = []
        for index in 0..<7 {
            released += buffer.write(row(base + Int64(index) * 10 * ms, ["v": Double(index)], tags: ["row": "\(index)"]))
        }
        #expect(released.map(\.rowCount) == [3, 3])
        #expect(buffer.bufferedRows == 1)
        let last = buffer.flush()
        released += [try #require(last)]
        #expect(encoded(released) == (try publishedPackets("buffer_packet_size")))
    }

    @Test("a time span of 100 ms on data time: [0, 30, 60], [100, 130], [250, 260], as 0.5.7 sent them")
    func timeSpan() throws {
        var buffer = TimeseriesBuffer(.init(timeSpan: .milliseconds(100)), dropsRowsWithoutValues: true)
        var released: [TimeseriesFrame] = []
        let now = ContinuousClock.now  // wall clock does not move: only data time counts
        for offset: Int64 in [0, 30, 60, 100, 130, 250, 260] {
            released += buffer.write(row(base + offset * ms, ["v": Double(offset)]), now: now)
        }
        let last = buffer.flush(now: now)
        released += [try #require(last)]
        #expect(released.map { $0.timestamps.map { ($0 - base) / ms } } == [[0, 30, 60], [100, 130], [250, 260]])
        #expect(encoded(released) == (try publishedPackets("buffer_time_span")))
    }

    @Test("a timeout of 300 ms: two rows released by the timer, the third at close, as 0.5.7 sent them")
    func timeout() throws {
        var buffer = TimeseriesBuffer(.init(timeout: .milliseconds(300)), dropsRowsWithoutValues: true)
        let start = ContinuousClock.now
        let first = buffer.write(row(base, ["v": 1]), now: start) + buffer.write(row(base + ms, ["v": 2]), now: start)
        #expect(first.isEmpty)
        let early = buffer.expire(now: start + .milliseconds(299))
        #expect(early == nil, "not before the timeout")
        #expect(buffer.nextDeadline == start + .milliseconds(300))
        let expired = buffer.expire(now: start + .milliseconds(300))
        let byTimer = try #require(expired)
        let third = buffer.write(row(base + 2 * ms, ["v": 3]), now: start + .seconds(1))
        #expect(third.isEmpty)
        let restarted = buffer.expire(now: start + .milliseconds(1_200))
        #expect(restarted == nil, "the timer restarts on every write")
        let closed = buffer.flush()
        let atClose = try #require(closed)
        #expect(encoded([byTimer, atClose]) == (try publishedPackets("buffer_timeout")))
    }

    @Test("a filter drops rows before they count; custom triggers release before or after a row")
    func filterAndTriggers() throws {
        var filtered = TimeseriesBuffer(.init(packetSize: 2, filter: { ($0.numeric("v") ?? 0) >= 0 }), dropsRowsWithoutValues: true)
        var released: [TimeseriesFrame] = []
        for (index, value) in [1.0, -1, 2, -2, 3].enumerated() { released += filtered.write(row(base + Int64(index), ["v": value])) }
        #expect(released.map { $0["v"].map(Array.init) } == [[1, 2]])
        let rest = filtered.flush()
        #expect(rest?["v"].map(Array.init) == [3])

        var after = TimeseriesBuffer(.init(customTrigger: { frame in frame.tags["flush"]?.contains("yes") == true }), dropsRowsWithoutValues: true)
        let held = after.write(row(base, ["v": 1]))
        #expect(held.isEmpty)
        let triggered = after.write(row(base + 1, ["v": 2], tags: ["flush": "yes"]))
        #expect(triggered.map(\.rowCount) == [2], "the trigger row is included")

        var before = TimeseriesBuffer(.init(customTriggerBeforeEnqueue: { $0.numeric("v") == 0 }), dropsRowsWithoutValues: true)
        let waiting = before.write(row(base, ["v": 5]))
        #expect(waiting.isEmpty)
        let split = before.write(row(base + 1, ["v": 0]))
        #expect(split.map { $0["v"].map(Array.init) } == [[5]], "released before the row is added")
        #expect(before.bufferedRows == 1)
    }

    @Test("without conditions every write is released at once; duplicate rows merge, empty rows go (producer)")
    func immediateAndMerge() throws {
        var producer = TimeseriesBuffer(dropsRowsWithoutValues: true)
        var frame = TimeseriesFrame(timestamps: [base, base, base + 1, base + 2])
        frame["a"] = [1, nil, 3, nil]
        frame["b"] = [nil, 7, nil, nil]
        frame.setTags("t", ["x", "x", "x", "only"])
        let released = producer.write(frame)
        #expect(released.count == 1)
        let result = try #require(released.first)
        #expect(result.timestamps == [base, base + 1], "duplicates merged, the row without values dropped")
        #expect(result["a"].map(Array.init) == [1, 3] && result["b"].map(Array.init) == [7, nil])

        var consumer = TimeseriesBuffer(dropsRowsWithoutValues: false)
        let kept = consumer.write(frame)
        #expect(kept.first?.rowCount == 3, "a consumer buffer keeps rows without values")
    }
}
