import OrderedCollections

/// Codec `JT-PaDa-1` ("CompactJsonForBetterPerformance"), timeseries only: delta-encoded
/// timestamps, and columns as runs (skip count, then one value or an array of consecutive
/// values). Numeric values are deltas from the previous non-null value of their column;
/// strings and tags are indices into a list of distinct values.
enum CompactJSONCodec {
    static func encode(_ data: TimeseriesData) -> [UInt8] {
        var writer = JSONWriter()
        writer.beginObject()
        if data.epoch != 0 { writer.key("Epoch"); writer.int64(data.epoch) }
        writer.key("Numerics")
        writer.beginObject()
        for (name, column) in data.numericValues {
            writer.key(name)
            var previous = 0.0
            writeRuns(column, to: &writer) { value, writer in
                writer.double(value - previous)
                previous = value
            }
        }
        writer.endObject()
        writer.key("Binary")
        writer.beginObject()
        for (name, column) in data.binaryValues {
            writer.key(name)
            writer.beginArray()
            for cell in column {
                if let cell { writer.base64(cell) } else { writer.null() }
            }
            writer.endArray()
        }
        writer.endObject()
        writer.key("Strings")
        writeIndexedColumns(data.stringValues, to: &writer)
        writer.key("Tags")
        writeIndexedColumns(data.tagValues, to: &writer)
        writer.key("Timestamps")
        writer.beginArray()
        var previous: Int64 = 0
        for (index, timestamp) in data.timestamps.enumerated() {
            writer.int64(index == 0 ? timestamp : timestamp &- previous)
            previous = timestamp
        }
        writer.endArray()
        writer.endObject()
        return writer.bytes
    }

    private static func writeIndexedColumns(_ columns: OrderedDictionary<String, [String?]>, to writer: inout JSONWriter) {
        writer.beginObject()
        for (name, column) in columns {
            var distinct: OrderedSet<String> = []
            for cell in column { if let cell { distinct.append(cell) } }
            writer.key(name)
            writer.beginObject()
            writer.key("K")
            writer.beginArray()
            for value in distinct { writer.string(value) }
            writer.endArray()
            writer.key("V")
            writeRuns(column, to: &writer) { value, writer in writer.int64(Int64(distinct.firstIndex(of: value)!)) }
            writer.endObject()
        }
        writer.endObject()
    }

    /// Writes `[skip, item, skip, item, ...]`: an item is one value, or an array for a run of more.
    private static func writeRuns<Cell>(
        _ column: [Cell?], to writer: inout JSONWriter, _ writeValue: (Cell, inout JSONWriter) -> Void
    ) {
        writer.beginArray()
        var index = 0
        while index < column.count {
            var skip = 0
            while index < column.count && column[index] == nil {
                skip += 1
                index += 1
            }
            guard index < column.count else { break }
            var end = index
            while end < column.count && column[end] != nil { end += 1 }
            writer.int64(Int64(skip))
            if end - index == 1 {
                writeValue(column[index]!, &writer)
            } else {
                writer.beginArray()
                for row in index..<end { writeValue(column[row]!, &writer) }
                writer.endArray()
            }
            index = end
        }
        writer.endArray()
    }

    // MARK: Decoding

    /// Cells of a column as (row, value) pairs, placed once the row count is known.
    private typealias Runs<Value> = [(row: Int, value: Value)]

    static func decode(_ payload: ArraySlice<UInt8>) throws(QuixProtocolError) -> TimeseriesData {
        return try JSONReader.read(payload) { reader throws(QuixProtocolError) in
            var epoch: Int64 = 0
            var timestamps: [Int64]?
            var numerics: OrderedDictionary<String, Runs<Double>> = [:]
            var strings: OrderedDictionary<String, Runs<String>> = [:]
            var tags: OrderedDictionary<String, Runs<String>> = [:]
            var binary: OrderedDictionary<String, [[UInt8]?]> = [:]
            try reader.readObject { reader, member throws(QuixProtocolError) in
                if member.equalsIgnoringCase("Epoch") {
                    epoch = try reader.readInt64()
                } else if member.equalsIgnoringCase("Timestamps") {
                    var values: [Int64] = []
                    var previous: Int64 = 0
                    try reader.readArray { reader throws(QuixProtocolError) in
                        let delta = try reader.readInt64()
                        previous = values.isEmpty ? delta : previous &+ delta
                        values.append(previous)
                    }
                    timestamps = values
                } else if member.equalsIgnoringCase("Numerics") {
                    if try reader.readNullIfPresent() { return }
                    try reader.readObject { reader, name throws(QuixProtocolError) in
                        var running = 0.0
                        numerics[name] = try readRuns(&reader) { reader throws(QuixProtocolError) in
                            running += try reader.readDouble()
                            return running
                        }
                    }
                } else if member.equalsIgnoringCase("Strings") {
                    if try reader.readNullIfPresent() { return }
                    strings = try readIndexedColumns(&reader)
                } else if member.equalsIgnoringCase("Tags") {
                    if try reader.readNullIfPresent() { return }
                    tags = try readIndexedColumns(&reader)
                } else if member.equalsIgnoringCase("Binary") {
                    if try reader.readNullIfPresent() { return }
                    try reader.readObject { reader, name throws(QuixProtocolError) in
                        var column: [[UInt8]?] = []
                        try reader.readArray { reader throws(QuixProtocolError) in
                            if try reader.readNullIfPresent() {
                                column.append(nil)
                            } else {
                                let start = reader.position
                                column.append(try Base64.decode(Array(try reader.readString().utf8)[...], offset: start + 1))
                            }
                        }
                        binary[name] = column
                    }
                } else {
                    try reader.skipValue()
                }
            }
            try reader.expectEnd()
            guard let timestamps else { throw QuixProtocolError(.missingMember, "compact timeseries data without Timestamps") }
            var data = TimeseriesData(epoch: epoch, timestamps: timestamps, binaryValues: binary)
            for (name, runs) in numerics { data.numericValues[name] = try place(runs, name: name, rows: timestamps.count) }
            for (name, runs) in strings { data.stringValues[name] = try place(runs, name: name, rows: timestamps.count) }
            for (name, runs) in tags { data.tagValues[name] = try place(runs, name: name, rows: timestamps.count) }
            try data.validate()
            return data
        }
    }

    private static func readIndexedColumns(_ reader: inout JSONReader) throws(QuixProtocolError) -> OrderedDictionary<String, Runs<String>> {
        var columns: OrderedDictionary<String, Runs<String>> = [:]
        try reader.readObject { reader, name throws(QuixProtocolError) in
            var keys: [String] = []
            var indices: Runs<Int64> = []
            try reader.readObject { reader, member throws(QuixProtocolError) in
                if member.equalsIgnoringCase("K") {
                    try reader.readArray { reader throws(QuixProtocolError) in keys.append(try reader.readString()) }
                } else if member.equalsIgnoringCase("V") {
                    indices = try readRuns(&reader) { reader throws(QuixProtocolError) in try reader.readInt64() }
                } else {
                    try reader.skipValue()
                }
            }
            var runs: Runs<String> = []
            runs.reserveCapacity(indices.count)
            for (row, index) in indices {
                guard index >= 0, index < keys.count else {
                    throw QuixProtocolError(.inconsistentData, "column \"\(name)\" refers to value \(index) of \(keys.count)")
                }
                runs.append((row, keys[Int(index)]))
            }
            columns[name] = runs
        }
        return columns
    }

    private static func readRuns<Value>(
        _ reader: inout JSONReader, _ readValue: (inout JSONReader) throws(QuixProtocolError) -> Value
    ) throws(QuixProtocolError) -> Runs<Value> {
        var runs: Runs<Value> = []
        var row = 0
        var expectSkip = true
        try reader.readArray { reader throws(QuixProtocolError) in
            if expectSkip {
                let start = reader.position
                let skip = try reader.readInt64()
                guard skip >= 0, skip <= Int64(Int32.max) else {
                    throw QuixProtocolError(.inconsistentData, "a run skips \(skip) rows", at: start)
                }
                row += Int(skip)
            } else if try reader.peekKind() == .array {
                try reader.readArray { reader throws(QuixProtocolError) in
                    runs.append((row, try readValue(&reader)))
                    row += 1
                }
            } else {
                runs.append((row, try readValue(&reader)))
                row += 1
            }
            expectSkip.toggle()
        }
        return runs
    }

    private static func place<Value>(_ runs: Runs<Value>, name: String, rows: Int) throws(QuixProtocolError) -> [Value?] {
        var column = [Value?](repeating: nil, count: rows)
        for (row, value) in runs {
            guard row < rows else {
                throw QuixProtocolError(.inconsistentData, "column \"\(name)\" has a value at row \(row) of \(rows)")
            }
            column[row] = value
        }
        return column
    }
}
