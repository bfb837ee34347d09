import Glibc
import OrderedCollections

/// Time-series data of codec `JT` straight into and out of a frame's columns, the form streams
/// and pipelines work on: no `TimeseriesData` in between, one output buffer sized up front.
///
/// Decoding takes the shape the reference writes (its member names, order and number format,
/// no white space, strings without escapes) and returns nil for anything else, which the general
/// `TypedJSONCodec` then reads with its tolerance and its error messages: the fast path never
/// decides what is valid.
enum TimeseriesFrameCodec {
    /// What precedes the payload in the envelope of a ParameterData package.
    private static let envelopePrefix: StaticString = #"{"C":"JT","K":"ParameterData","V":"#

    // MARK: Decoding

    /// The frame of a `JT` timeseries payload in the reference's shape; nil for any other shape.
    static func decodeCanonical(_ payload: UnsafeBufferPointer<UInt8>) -> TimeseriesFrame? {
        var reader = CanonicalReader(bytes: payload)
        return reader.readFrame()
    }

    /// The payload range of an envelope in the reference's shape, `{"C":"JT","K":"<key>","V":{…},"S":s,"E":e}`,
    /// with `S` and `E` pointing at the payload; nil for any other shape.
    static func canonicalPayload(of value: UnsafeBufferPointer<UInt8>, modelKey: StaticString) -> Range<Int>? {
        var reader = CanonicalReader(bytes: value)
        guard reader.take(#"{"C":"JT","K":""#), reader.take(modelKey), reader.take(#"","V":"#) else { return nil }
        let start = reader.cursor
        // From the end: `,"S":<start>,"E":<end>}`.
        var cursor = value.count - 1
        guard cursor > start, value[cursor] == UInt8(ascii: "}") else { return nil }
        func number(before index: Int) -> (value: Int, first: Int)? {
            var first = index
            var result = 0
            var scale = 1
            while first > start, case let digit = value[first - 1] &- UInt8(ascii: "0"), digit < 10, scale < 1_000_000_000_000 {
                result += Int(digit) * scale
                scale *= 10
                first -= 1
            }
            return first < index ? (result, first) : nil
        }
        guard let end = number(before: cursor), end.first >= 5 else { return nil }
        cursor = end.first - 5
        guard value[cursor] == UInt8(ascii: ","), value[cursor + 1] == UInt8(ascii: "\""), value[cursor + 2] == UInt8(ascii: "E"),
            value[cursor + 3] == UInt8(ascii: "\""), value[cursor + 4] == UInt8(ascii: ":"),
            let begin = number(before: cursor), begin.first >= 5
        else { return nil }
        let suffix = begin.first - 5
        guard value[suffix] == UInt8(ascii: ","), value[suffix + 1] == UInt8(ascii: "\""), value[suffix + 2] == UInt8(ascii: "S"),
            value[suffix + 3] == UInt8(ascii: "\""), value[suffix + 4] == UInt8(ascii: ":"),
            begin.value == start, end.value == suffix, value[start] == UInt8(ascii: "{"), value[suffix - 1] == UInt8(ascii: "}")
        else { return nil }
        return start..<suffix
    }

    // MARK: Encoding

    /// The envelope of a ParameterData package of `frame`'s rows, exactly as the reference writes
    /// it with the JSON codec (absolute timestamps, so no `Epoch`), in one buffer.
    static func encodeMessage(_ frame: TimeseriesFrame) -> [UInt8] {
        let rows = frame.rowCount
        var bound = 160 + rows * (JSONText.maximumIntegerLength + 1)
        for name in frame.numeric.keys { bound += nameLength(name) + rows * (DotNetDouble.maximumLength + 1) }
        for (name, column) in frame.strings { bound += nameLength(name) + cellsLength(column) }
        for (name, column) in frame.tags { bound += nameLength(name) + cellsLength(column) }
        for (name, column) in frame.binary {
            bound += nameLength(name) + column.reduce(0) { $0 + ($1.map { Base64.encodedLength($0.count) + 3 } ?? 5) }
        }
        return [UInt8](unsafeUninitializedCapacity: bound) { buffer, count in
            var output = Output(base: buffer.baseAddress!)
            output.raw(envelopePrefix)
            let start = output.count
            output.raw(#"{"Timestamps":["#)
            for (row, timestamp) in frame.timestamps.enumerated() {
                if row > 0 { output.put(UInt8(ascii: ",")) }
                output.put(timestamp)
            }
            output.raw(#"],"NumericValues":{"#)
            for (index, (name, column)) in frame.numeric.enumerated() {
                output.member(name, first: index == 0)
                column.values.withUnsafeBufferPointer { values in
                    column.present.withUnsafeBufferPointer { present in
                        for row in 0..<rows {
                            if row > 0 { output.put(UInt8(ascii: ",")) }
                            if present[row] { output.put(values[row]) } else { output.raw("null") }
                        }
                    }
                }
                output.put(UInt8(ascii: "]"))
            }
            output.raw(#"},"StringValues":{"#)
            output.stringColumns(frame.strings)
            output.raw(#"},"BinaryValues":{"#)
            for (index, (name, column)) in frame.binary.enumerated() {
                output.member(name, first: index == 0)
                for (row, cell) in column.enumerated() {
                    if row > 0 { output.put(UInt8(ascii: ",")) }
                    if let cell { output.base64(cell) } else { output.raw("null") }
                }
                output.put(UInt8(ascii: "]"))
            }
            output.raw(#"},"TagValues":{"#)
            output.stringColumns(frame.tags)
            output.raw("}}")
            let end = output.count
            output.raw(#","S":"#)
            output.put(Int64(start))
            output.raw(#","E":"#)
            output.put(Int64(end))
            output.put(UInt8(ascii: "}"))
            precondition(output.count <= bound, "the frame encoder wrote \(output.count) bytes into \(bound)")
            count = output.count
        }
    }

    /// `,"name":[` at most.
    private static func nameLength(_ name: String) -> Int { JSONText.maximumStringLength(utf8Count: name.utf8.count) + 3 }

    private static func cellsLength(_ column: [String?]) -> Int {
        column.reduce(0) { $0 + ($1.map { JSONText.maximumStringLength(utf8Count: $0.utf8.count) + 1 } ?? 5) }
    }
}

/// Writes into a buffer the encoder sized for everything it writes.
private struct Output {
    let base: UnsafeMutablePointer<UInt8>
    var count = 0

    mutating func put(_ byte: UInt8) {
        base[count] = byte
        count += 1
    }

    mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { (base + count).update(from: $0.baseAddress!, count: $0.count) }
        count += text.utf8CodeUnitCount
    }

    mutating func put(_ value: Int64) { count += JSONText.writeInteger(value, to: base + count) }

    mutating func put(_ value: Double) {
        if value.isFinite {
            count += DotNetDouble.write(value, to: base + count)
        } else {
            raw(value.isNaN ? #""NaN""# : value > 0 ? #""Infinity""# : #""-Infinity""#)
        }
    }

    mutating func string(_ text: String) {
        var text = text
        text.withUTF8 { count += JSONText.writeString($0, to: base + count) }
    }

    mutating func base64(_ bytes: [UInt8]) {
        put(UInt8(ascii: "\""))
        bytes.withUnsafeBufferPointer { count += Base64.write($0, to: base + count) }
        put(UInt8(ascii: "\""))
    }

    /// `"name":[` after a comma unless it is the first member.
    mutating func member(_ name: String, first: Bool) {
        if !first { put(UInt8(ascii: ",")) }
        string(name)
        put(UInt8(ascii: ":"))
        put(UInt8(ascii: "["))
    }

    mutating func stringColumns(_ columns: OrderedDictionary<String, [String?]>) {
        for (index, (name, column)) in columns.enumerated() {
            member(name, first: index == 0)
            for (row, cell) in column.enumerated() {
                if row > 0 { put(UInt8(ascii: ",")) }
                if let cell { string(cell) } else { raw("null") }
            }
            put(UInt8(ascii: "]"))
        }
    }
}

/// Reads the reference's exact shape; every method returns nil (or false) at the first deviation.
private struct CanonicalReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var cursor = 0

    /// Consumes `literal` if it comes next.
    mutating func take(_ literal: StaticString) -> Bool {
        let length = literal.utf8CodeUnitCount
        guard bytes.count - cursor >= length else { return false }
        let matches = literal.withUTF8Buffer { memcmp(bytes.baseAddress! + cursor, $0.baseAddress!, length) == 0 }
        if matches { cursor += length }
        return matches
    }

    mutating func take(_ byte: UInt8) -> Bool {
        guard cursor < bytes.count, bytes[cursor] == byte else { return false }
        cursor += 1
        return true
    }

    mutating func readFrame() -> TimeseriesFrame? {
        guard take(UInt8(ascii: "{")) else { return nil }
        var epoch: Int64 = 0
        if take(#""Epoch":"#) {
            guard let value = readInt64(), take(UInt8(ascii: ",")) else { return nil }
            epoch = value
        }
        guard take(#""Timestamps":["#) else { return nil }
        var timestamps: [Int64] = []
        timestamps.reserveCapacity(16)
        if !take(UInt8(ascii: "]")) {
            repeat {
                guard let timestamp = readInt64() else { return nil }
                timestamps.append(epoch &+ timestamp)
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "]")) else { return nil }
        }
        let rows = timestamps.count
        guard take(#","NumericValues":{"#), let numeric = readColumns({ $0.readNumeric(rows: rows) }),
            take(#","StringValues":{"#), let strings = readColumns({ $0.readStrings(rows: rows) }),
            take(#","BinaryValues":{"#), let binary = readColumns({ $0.readBinary(rows: rows) }),
            take(#","TagValues":{"#), let tags = readColumns({ $0.readStrings(rows: rows) }),
            take(UInt8(ascii: "}")), cursor == bytes.count
        else { return nil }
        return TimeseriesFrame(timestamps: timestamps, numeric: numeric, strings: strings, binary: binary, tags: tags)
    }

    /// `"name":[…],…}` after the opening brace.
    private mutating func readColumns<Column>(_ readColumn: (inout CanonicalReader) -> Column?) -> OrderedDictionary<String, Column>? {
        var columns = OrderedDictionary<String, Column>()
        if take(UInt8(ascii: "}")) { return columns }
        // Room for a few columns and one a stage adds, without regrowing (no hash table below 16).
        columns.reserveCapacity(8)
        repeat {
            guard let name = readString(), take(UInt8(ascii: ":")), let column = readColumn(&self) else { return nil }
            // A repeated name: the general reader decides which wins.
            guard columns.updateValue(column, forKey: name) == nil else { return nil }
        } while take(UInt8(ascii: ","))
        return take(UInt8(ascii: "}")) ? columns : nil
    }

    /// `[cell,…]` of exactly `rows` cells.
    private mutating func readCells<Cell>(rows: Int, _ readCell: (inout CanonicalReader) -> Cell?) -> [Cell?]? {
        guard take(UInt8(ascii: "[")) else { return nil }
        var cells: [Cell?] = []
        cells.reserveCapacity(rows)
        if !take(UInt8(ascii: "]")) {
            repeat {
                if take("null") {
                    cells.append(nil)
                } else {
                    guard let cell = readCell(&self) else { return nil }
                    cells.append(cell)
                }
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "]")) else { return nil }
        }
        return cells.count == rows ? cells : nil
    }

    mutating func readNumeric(rows: Int) -> NumericColumn? {
        guard take(UInt8(ascii: "[")) else { return nil }
        var values: [Double] = []
        values.reserveCapacity(rows)
        // Flags only from the first missing cell on; until then every cell has a value.
        var present: [Bool]?
        if !take(UInt8(ascii: "]")) {
            repeat {
                if let value = readShortNumber() {
                    values.append(value)
                    present?.append(true)
                } else if take("null") {
                    if present == nil {
                        present = Array(repeating: true, count: values.count)
                        present!.reserveCapacity(rows)
                    }
                    values.append(0)
                    present!.append(false)
                } else {
                    let number = JSONText.scanNumber(bytes, from: cursor)
                    guard number.failure == nil, let value = JSONText.value(of: number, in: bytes, from: cursor) else { return nil }
                    cursor = number.end
                    values.append(value)
                    present?.append(true)
                }
            } while take(UInt8(ascii: ","))
            guard take(UInt8(ascii: "]")) else { return nil }
        }
        guard values.count == rows else { return nil }
        return NumericColumn(values: values, present: present ?? NumericColumn.allPresent(count: rows))
    }

    /// A number of the common short form `-?d{1,7}(.d{1,7})?`, its digits read eight bytes at
    /// a time: `m / 10^k` with `m` < 10^14 and both exact, so correctly rounded. nil, reading
    /// nothing, for any other form (more digits, an exponent, a malformed number) and near the
    /// end of the bytes: the general scan reads those.
    @inline(__always)
    mutating func readShortNumber() -> Double? {
        guard let base = bytes.baseAddress, cursor < bytes.count else { return nil }
        var at = cursor
        let negative = base[at] == UInt8(ascii: "-")
        if negative { at += 1 }
        guard bytes.count - at >= 8 else { return nil }
        let integer = UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self)
        let integerDigits = DigitChunk.leadingDigits(integer)
        guard integerDigits > 0, integerDigits < 8 else { return nil }
        var mantissa = DigitChunk.value(integer, digits: integerDigits)
        at += integerDigits
        // Each chunk ends in a byte that is no digit: `base[at]` is inside the bytes.
        var decimals = 0
        if base[at] == UInt8(ascii: ".") {
            at += 1
            guard bytes.count - at >= 8 else { return nil }
            let fraction = UnsafeRawPointer(base + at).loadUnaligned(as: UInt64.self)
            decimals = DigitChunk.leadingDigits(fraction)
            guard decimals > 0, decimals < 8 else { return nil }
            mantissa = mantissa &* Self.integerPowersOfTen[decimals] &+ DigitChunk.value(fraction, digits: decimals)
            at += decimals
        }
        guard base[at] | 0x20 != UInt8(ascii: "e") else { return nil }
        cursor = at
        let value = Double(mantissa) / JSONText.powersOfTen[decimals]
        return negative ? -value : value
    }

    private static let integerPowersOfTen: [UInt64] = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000, 10_000_000]

    mutating func readStrings(rows: Int) -> [String?]? {
        // A cell equal to the one before it (tags repeat row after row) shares its string.
        var previous: (range: Range<Int>, text: String)?
        return readCells(rows: rows) { reader in
            // The same quoted bytes again: compared at once, not scanned byte by byte.
            if let known = previous, case let end = reader.cursor + known.range.count + 1, end < reader.bytes.count,
                reader.bytes[reader.cursor] == UInt8(ascii: "\""), reader.bytes[end] == UInt8(ascii: "\""),
                memcmp(reader.bytes.baseAddress! + known.range.lowerBound, reader.bytes.baseAddress! + reader.cursor + 1, known.range.count) == 0
            {
                reader.cursor = end + 1
                return known.text
            }
            guard let range = reader.readStringRange(), let text = reader.string(in: range) else { return nil }
            previous = (range, text)
            return text
        }
    }

    mutating func readBinary(rows: Int) -> [[UInt8]?]? {
        readCells(rows: rows) { reader in
            guard let range = reader.readStringRange() else { return nil }
            return try? Base64.decode(UnsafeBufferPointer(rebasing: reader.bytes[range]))
        }
    }

    /// A string without escapes.
    mutating func readString() -> String? {
        guard let range = readStringRange() else { return nil }
        return string(in: range)
    }

    /// The text of `bytes[range]`, which has no escapes.
    func string(in range: Range<Int>) -> String? {
        let text = UnsafeBufferPointer(rebasing: bytes[range])
        var ascii = true
        for byte in text where byte >= 0x80 {
            ascii = false
            break
        }
        return ascii ? String(decoding: text, as: UTF8.self) : String(validating: text, as: UTF8.self)
    }

    /// The content of a string without escapes or control characters.
    private mutating func readStringRange() -> Range<Int>? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = cursor
        while cursor < bytes.count {
            let byte = bytes[cursor]
            if byte == UInt8(ascii: "\"") {
                cursor += 1
                return start..<(cursor - 1)
            }
            guard byte >= 0x20, byte != UInt8(ascii: "\\") else { return nil }
            cursor += 1
        }
        return nil
    }

    /// A plain integer (an integral number in another form goes to the general reader).
    mutating func readInt64() -> Int64? {
        let negative = take(UInt8(ascii: "-"))
        let start = cursor
        var magnitude: UInt64 = 0
        // Eight digits at a time while they come in eights (a timestamp's first sixteen), then
        // one at a time; 18 digits cannot overflow, a 19th is checked.
        while cursor - start <= 8, bytes.count - cursor >= 8,
            case let chunk = UnsafeRawPointer(bytes.baseAddress! + cursor).loadUnaligned(as: UInt64.self), DigitChunk.isEightDigits(chunk)
        {
            magnitude = magnitude &* 100_000_000 &+ DigitChunk.eightDigits(chunk)
            cursor += 8
        }
        while cursor < bytes.count, cursor - start < 18, case let digit = bytes[cursor] &- UInt8(ascii: "0"), digit < 10 {
            magnitude = magnitude &* 10 &+ UInt64(digit)
            cursor += 1
        }
        guard cursor > start else { return nil }
        if cursor < bytes.count, case let digit = bytes[cursor] &- UInt8(ascii: "0"), digit < 10 {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (next, overflow2) = times10.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2, next <= UInt64(Int64.max) + (negative ? 1 : 0) else { return nil }
            magnitude = next
            cursor += 1
            if cursor < bytes.count, bytes[cursor] &- UInt8(ascii: "0") < 10 { return nil }
        }
        if cursor < bytes.count, bytes[cursor] == UInt8(ascii: ".") || bytes[cursor] | 0x20 == UInt8(ascii: "e") { return nil }
        return negative ? Int64(truncatingIfNeeded: 0 &- magnitude) : Int64(magnitude)
    }
}
