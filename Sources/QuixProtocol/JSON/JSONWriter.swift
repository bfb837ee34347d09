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
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var runStart = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard let escape = Self.escape(byte, utf8, index) else { continue }
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<index]))
                bytes.append(contentsOf: escape.bytes)
                runStart = index + escape.length
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
        }
        bytes.append(UInt8(ascii: "\""))
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
        Self.appendInteger(value, to: &bytes)
        needsComma = true
    }

    /// The decimal digits of `value`, formatted on the stack and appended at once.
    @inline(__always)
    static func appendInteger(_ value: Int64, to bytes: inout [UInt8]) {
        var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes: a sign and 20 digits fit
        withUnsafeMutableBytes(of: &scratch) { buffer in
            var magnitude = value.magnitude
            var index = buffer.count
            repeat {
                index -= 1
                buffer[index] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                index -= 1
                buffer[index] = UInt8(ascii: "-")
            }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[index...]))
        }
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

    /// Newtonsoft's default escaping: `"`, `\`, control characters, and U+0085, U+2028, U+2029.
    private static func escape(_ byte: UInt8, _ utf8: UnsafeBufferPointer<UInt8>, _ index: Int) -> (bytes: [UInt8], length: Int)? {
        switch byte {
        case UInt8(ascii: "\""): return (Array(#"\""#.utf8), 1)
        case UInt8(ascii: "\\"): return (Array(#"\\"#.utf8), 1)
        case 0x0A: return (Array(#"\n"#.utf8), 1)
        case 0x0D: return (Array(#"\r"#.utf8), 1)
        case 0x09: return (Array(#"\t"#.utf8), 1)
        case 0x08: return (Array(#"\b"#.utf8), 1)
        case 0x0C: return (Array(#"\f"#.utf8), 1)
        case ..<0x20: return (unicodeEscape(UInt32(byte)), 1)
        case 0xC2 where index + 1 < utf8.count && utf8[index + 1] == 0x85: return (unicodeEscape(0x85), 2)
        case 0xE2 where index + 2 < utf8.count && utf8[index + 1] == 0x80 && (utf8[index + 2] == 0xA8 || utf8[index + 2] == 0xA9):
            return (unicodeEscape(utf8[index + 2] == 0xA8 ? 0x2028 : 0x2029), 3)
        default: return nil
        }
    }

    private static func unicodeEscape(_ scalar: UInt32) -> [UInt8] {
        let hex = Array("0123456789abcdef".utf8)
        return Array(#"\u"#.utf8) + [12, 8, 4, 0].map { hex[Int((scalar >> $0) & 0xF)] }
    }
}

/// .NET's round-trip ("R") text of a finite double, as Newtonsoft writes it: the shortest digits
/// that read back to the same value, fixed-point when the decimal exponent is in -5 < e < 15,
/// scientific (`1E-05`, `1.5E+20`) otherwise, and `.0` added when neither `.` nor `E` appears.
enum DotNetDouble {
    static func append(_ value: Double, to bytes: inout [UInt8]) {
        // Fast path: integral values of moderate size (the common case for telemetry).
        if value == value.rounded(.towardZero) && value.magnitude < 1e15 {
            if value == 0 {
                bytes.append(contentsOf: (value.sign == .minus ? "-0.0" : "0.0").utf8)
                return
            }
            JSONWriter.appendInteger(Int64(value), to: &bytes)
            bytes.append(UInt8(ascii: "."))
            bytes.append(UInt8(ascii: "0"))
            return
        }
        if appendShortDecimal(value, to: &bytes) { return }
        let (negative, digits, exponent) = shortestDigits(value)
        if negative { bytes.append(UInt8(ascii: "-")) }
        if exponent > -5 && exponent < 15 {
            if exponent < 0 {
                bytes.append(contentsOf: [UInt8(ascii: "0"), UInt8(ascii: ".")])
                bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: -exponent - 1))
                bytes.append(contentsOf: digits)
            } else if digits.count <= exponent + 1 {
                bytes.append(contentsOf: digits)
                bytes.append(contentsOf: repeatElement(UInt8(ascii: "0"), count: exponent + 1 - digits.count))
                bytes.append(contentsOf: [UInt8(ascii: "."), UInt8(ascii: "0")])
            } else {
                bytes.append(contentsOf: digits[..<(exponent + 1)])
                bytes.append(UInt8(ascii: "."))
                bytes.append(contentsOf: digits[(exponent + 1)...])
            }
        } else {
            bytes.append(digits[0])
            if digits.count > 1 {
                bytes.append(UInt8(ascii: "."))
                bytes.append(contentsOf: digits[1...])
            }
            bytes.append(UInt8(ascii: "E"))
            bytes.append(exponent < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            let magnitude = String(abs(exponent))
            if magnitude.count < 2 { bytes.append(UInt8(ascii: "0")) }
            bytes.append(contentsOf: magnitude.utf8)
        }
    }

    /// Fast path for values with a few decimals (most telemetry): the smallest `k` for which
    /// `round(value × 10^k) / 10^k` reads back as `value` (both exact below 2^53 and 10^22, so the
    /// division is correctly rounded, as parsing the text is). Fixed-point range only.
    private static func appendShortDecimal(_ value: Double, to bytes: inout [UInt8]) -> Bool {
        let magnitude = value.magnitude
        guard magnitude >= 1e-4 && magnitude < 1e15 else { return false }
        for decimals in 1...15 {
            let scaled = (magnitude * powersOfTen[decimals]).rounded()
            guard scaled < 9_007_199_254_740_992 else { return false }
            guard scaled / powersOfTen[decimals] == magnitude else { continue }
            var digits = UInt64(scaled)
            var scratch: (UInt64, UInt64, UInt64) = (0, 0, 0)  // up to 24 characters, written backwards
            let count = withUnsafeMutableBytes(of: &scratch) { buffer -> Int in
                var index = buffer.count
                var written = 0
                while digits > 0 || written <= decimals {
                    index -= 1
                    buffer[index] = UInt8(ascii: "0") + UInt8(digits % 10)
                    digits /= 10
                    written += 1
                    if written == decimals {
                        index -= 1
                        buffer[index] = UInt8(ascii: ".")
                    }
                }
                return buffer.count - index
            }
            if value < 0 { bytes.append(UInt8(ascii: "-")) }
            withUnsafeBytes(of: &scratch) { bytes.append(contentsOf: $0[($0.count - count)...]) }
            return true
        }
        return false
    }

    private static let powersOfTen: [Double] = (0...22).map { exponent in
        var value = 1.0
        for _ in 0..<exponent { value *= 10 }
        return value
    }

    /// The shortest round-trip significant digits (no leading or trailing zeros) and the decimal
    /// exponent of the first digit, from Swift's own shortest round-trip description.
    static func shortestDigits(_ value: Double) -> (negative: Bool, digits: [UInt8], exponent: Int) {
        var text = Array(value.magnitude.description.utf8)
        var exponent = 0
        if let e = text.firstIndex(of: UInt8(ascii: "e")) {
            exponent = Int(String(decoding: text[(e + 1)...], as: UTF8.self))!
            text.removeSubrange(e...)
        }
        let point = text.firstIndex(of: UInt8(ascii: ".")) ?? text.count
        var digits = text.filter { $0 != UInt8(ascii: ".") }
        var firstDigitExponent = exponent + point - 1
        while digits.first == UInt8(ascii: "0") && digits.count > 1 {
            digits.removeFirst()
            firstDigitExponent -= 1
        }
        while digits.last == UInt8(ascii: "0") && digits.count > 1 { digits.removeLast() }
        return (value.sign == .minus, digits, firstDigitExponent)
    }
}
