import OrderedCollections
import QuixProtocol
import QuixStreams
import Testing

@Suite("TimeseriesFrame")
struct TimeseriesFrameTests {
    private func frame() -> TimeseriesFrame {
        var frame = TimeseriesFrame(timestamps: [0, 1_000_000_000, 2_000_000_000, 3_000_000_000, 4_000_000_000])
        frame["x"] = [1, -2, nil, 4, -5]
        frame["y"] = [10, 20, 30, nil, 50]
        frame.setStrings("label", ["a", nil, "c", "d", "e"])
        frame.setTags("car", ["1", "1", "2", "2", "2"])
        return frame
    }

    @Test("arithmetic and aggregates keep missing cells missing")
    func arithmetic() {
        let frame = frame()
        let total = frame["x"]!.abs() + frame["y"]!
        #expect(Array(total) == [11, 22, nil, nil, 55])
        #expect(Array(frame["x"]! * 2) == [2, -4, nil, 8, -10])
        #expect(frame["x"]!.sum() == -2 && frame["x"]!.mean() == -0.5)
        #expect(frame["x"]!.min() == -5 && frame["y"]!.max() == 50)
        #expect(NumericColumn([nil, nil]).mean() == nil)
    }

    @Test("comparisons filter rows; select, drop and concatenate keep columns aligned")
    func filtersAndProjections() {
        let frame = frame()
        let positive = frame.filter(frame["x"]! > 0 && !(frame["y"]! >= 40))
        #expect(positive.timestamps == [0, 3_000_000_000], "a missing y is not >= 40, so its negation holds (as in pandas)")
        let some = frame.filter(frame["x"]! < 0 || frame["y"]! == 30)
        #expect(some.timestamps == [1_000_000_000, 2_000_000_000, 4_000_000_000])
        #expect(some.strings["label"] == [nil, "c", "e"] && some.tags["car"] == ["1", "2", "2"])
        #expect(Array(frame.select(["y"]).numeric.keys) == ["y"] && frame.select(["y"]).strings.isEmpty)
        #expect(Array(frame.dropping(["x", "label"]).numeric.keys) == ["y"])

        var other = TimeseriesFrame(timestamps: [9])
        other["z"] = [7]
        let joined = TimeseriesFrame.concatenate([frame.filter(frame["x"]! > 0), other])
        #expect(joined.timestamps == [0, 3_000_000_000, 9])
        #expect(Array(joined["x"]!) == [1, 4, nil] && Array(joined["z"]!) == [nil, nil, 7])
    }

    @Test("a frame is a value: changing a copy's columns, tags or timestamps leaves the original as it was")
    func valueSemantics() {
        let original = frame()
        var copy = original
        copy["x"] = [0, 0, 0, 0, 0]
        copy["added"] = [1, 2, 3, 4, 5]
        copy.setTags("car", [nil, nil, nil, nil, nil])
        copy.timestamps[0] = 42
        #expect(original == frame(), "the original changed with its copy")
        #expect(copy != original && copy.timestamps[0] == 42 && copy["added"] != nil && original["added"] == nil)
    }

    @Test("rolling windows on data time and on row count")
    func rolling() {
        let frame = frame()
        let window = frame.rolling("y", .duration(.seconds(2)))  // (t - 2 s, t]
        #expect(Array(window.sum()) == [10, 30, 50, 30, 50])
        #expect(Array(window.mean()) == [10, 15, 25, 30, 50])
        #expect(Array(window.count()) == [1, 2, 2, 1, 1])
        let rows = frame.rolling("x", .rows(3))
        #expect(Array(rows.max()) == [1, 1, 1, 4, 4])
        #expect(Array(rows.min()) == [1, -2, -2, -2, -5])
    }

    @Test("from and to the wire model, epoch folded in")
    func wireModel() {
        var data = TimeseriesData(epoch: 1_000, timestamps: [1, 2])
        data.numericValues["a"] = [1.5, nil]
        data.stringValues["s"] = ["x", "y"]
        data.binaryValues["b"] = [[1], nil]
        data.tagValues["t"] = ["T", nil]
        let frame = TimeseriesFrame(data)
        #expect(frame.timestamps == [1_001, 1_002])
        #expect(Array(frame["a"]!) == [1.5, nil])
        let back = frame.timeseriesData
        #expect(back.epoch == 0 && back.timestamps == [1_001, 1_002])
        #expect(back.numericValues == data.numericValues && back.stringValues == data.stringValues)
        #expect(back.binaryValues == data.binaryValues && back.tagValues == data.tagValues)
    }
}
