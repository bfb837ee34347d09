/// Writes JSON bytes the way Newtonsoft.Json does in Quix Streams 0.5: compact, members in the
/// order the caller writes them, UTF-8 unescaped, doubles in .NET's round-trip form with `.0` on
/// integral values, non-finite doubles as strings.
struct JSONWriter {
    var bytes: [UInt8] = []
    private var needsComma = false

    init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes a member name; the next write is its value.
    mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        needsComma = false
    }

    mutating func key(_ name: String) {
        string(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    mutating func string(_ text: String) {
        separate()
        var text = text
        text.withUTF8 { utf8 in
            let capacity = JSONText.maximumStringLength(utf8Count: utf8.count)
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: capacity) { buffer in
                let count = JSONText.writeString(utf8, to: buffer.baseAddress!)
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<count]))
            }
        }
        needsComma = true
    }

    /// Bytes as a JSON string of their standard base64, encoded straight into the output.
    mutating func base64<C: Collection<UInt8>>(_ data: C) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        Base64.encode(data, into: &bytes)
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    mutating func optionalString(_ text: String?) {
        if let text { string(text) } else { null() }
    }

    mutating func null() {
        separate()
        bytes.append(contentsOf: [UInt8(ascii: "n"), UInt8(ascii: "u"), UInt8(ascii: "l"), UInt8(ascii: "l")])
        needsComma = true
    }

    mutating func int64(_ value: Int64) {
        separate()
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: JSONText.maximumIntegerLength) { buffer in
            let count = JSONText.writeInteger(value, to: buffer.baseAddress!)
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<count]))
        }
        needsComma = true
    }

    mutating func double(_ value: Double) {
        separate()
        if !value.isFinite {
            bytes.append(contentsOf: value.isNaN ? Array(#""NaN""#.utf8) : value > 0 ? Array(#""Infinity""#.utf8) : Array(#""-Infinity""#.utf8))
        } else {
            DotNetDouble.append(value, to: &bytes)
        }
        needsComma = true
    }

    mutating func optionalDouble(_ value: Double?) {
        if let value { double(value) } else { null() }
    }

    /// Appends bytes that are already a JSON value.
    mutating func raw<C: Collection<UInt8>>(_ json: C) {
        separate()
        bytes.append(contentsOf: json)
        needsComma = true
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }
}
