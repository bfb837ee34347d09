/// A pull reader over JSON bytes, made for the Quix models: it reads members in whatever order
/// they come, matches names case-insensitively (as Newtonsoft.Json does), and never trusts its
/// input. It reads a buffer lent by `read(_:_:)` for the duration of one decode; positions it
/// reports (`position`, ranges, error offsets) are indices of the caller's slice.
struct JSONReader {
    enum Kind { case object, array, string, number, bool, null }

    private let bytes: UnsafeBufferPointer<UInt8>
    /// The index, in the caller's slice, of `bytes[0]`.
    private let base: Int
    private var cursor = 0
    private var depth = 0
    static let maximumDepth = 64

    private init(_ bytes: UnsafeBufferPointer<UInt8>, base: Int) {
        self.bytes = bytes
        self.base = base
    }

    /// Runs `body` with a reader over `slice`.
    static func read<R>(
        _ slice: ArraySlice<UInt8>, _ body: (inout JSONReader) throws(QuixProtocolError) -> R
    ) throws(QuixProtocolError) -> R {
        let result: Result<R, QuixProtocolError> = slice.withUnsafeBufferPointer { buffer in
            var reader = JSONReader(buffer, base: slice.startIndex)
            return Result { () throws(QuixProtocolError) -> R in try body(&reader) }
        }
        return try result.get()
    }

    /// The index of the next byte in the caller's slice.
    var position: Int { base + cursor }

    // MARK: Structure

    /// The kind of the next value, after white space.
    mutating func peekKind() throws(QuixProtocolError) -> Kind {
        skipWhitespace()
        guard cursor < bytes.count else { throw truncated("a value") }
        switch bytes[cursor] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "N"), UInt8(ascii: "I"): return .number
        default: throw unexpected("a value")
        }
    }

    /// Reads an object, calling `member` with each name (the reader is then at the value, which
    /// `member` must read or skip).
    mutating func readObject(_ member: (inout JSONReader, String) throws(QuixProtocolError) -> Void) throws(QuixProtocolError) {
        try expect(UInt8(ascii: "{"), "an object")
        try enter()
        skipWhitespace()
        if try peekByte() == UInt8(ascii: "}") {
            cursor += 1
            depth -= 1
            return
        }
        while true {
            let name = try readString()
            try expect(UInt8(ascii: ":"), "':' after a member name")
            try member(&self, name)
            skipWhitespace()
            let next = try takeByte("',' or '}'")
            if next == UInt8(ascii: "}") { break }
            guard next == UInt8(ascii: ",") else { throw unexpected("',' or '}'", back: 1) }
        }
        depth -= 1
    }

    /// Reads an array, calling `element` once per element (which it must read or skip).
    mutating func readArray(_ element: (inout JSONReader) throws(QuixProtocolError) -> Void) throws(QuixProtocolError) {
        try expect(UInt8(ascii: "["), "an array")
        try enter()
        skipWhitespace()
        if try peekByte() == UInt8(ascii: "]") {
            cursor += 1
            depth -= 1
            return
        }
        while true {
            try element(&self)
            skipWhitespace()
            let next = try takeByte("',' or ']'")
            if next == UInt8(ascii: "]") { break }
            guard next == UInt8(ascii: ",") else { throw unexpected("',' or ']'", back: 1) }
        }
        depth -= 1
    }

    /// Skips one value of any kind, checking its syntax.
    mutating func skipValue() throws(QuixProtocolError) {
        switch try peekKind() {
        case .object: try readObject { reader, _ throws(QuixProtocolError) in try reader.skipValue() }
        case .array: try readArray { reader throws(QuixProtocolError) in try reader.skipValue() }
        case .string: _ = try readStringRange()
        case .number: _ = try readDouble()
        case .bool: _ = try readBool()
        case .null: try readNull()
        }
    }

    /// The byte range of the next value, found by a structural scan (brackets and strings) that
    /// does not decode it: whoever reads the value checks it fully.
    mutating func rangeOfValue() throws(QuixProtocolError) -> Range<Int> {
        skipWhitespace()
        let start = cursor
        guard cursor < bytes.count else { throw truncated("a value") }
        switch bytes[cursor] {
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while cursor < bytes.count {
                switch bytes[cursor] {
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                    guard depth <= Self.maximumDepth else {
                        throw QuixProtocolError(.unexpectedToken, "nesting deeper than \(Self.maximumDepth)", at: base + cursor)
                    }
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        cursor += 1
                        return (base + start)..<(base + cursor)
                    }
                case UInt8(ascii: "\""):
                    _ = try readStringRange()
                    continue
                default: break
                }
                cursor += 1
            }
            throw truncated("the end of a value")
        default:
            try skipValue()
            return (base + start)..<(base + cursor)
        }
    }

    /// Checks that nothing but white space follows.
    mutating func expectEnd() throws(QuixProtocolError) {
        skipWhitespace()
        guard cursor == bytes.count else { throw unexpected("the end of the value") }
    }

    // MARK: Scalars

    /// `true` and consumes `null` if the next value is null.
    mutating func readNullIfPresent() throws(QuixProtocolError) -> Bool {
        skipWhitespace()
        guard cursor < bytes.count, bytes[cursor] == UInt8(ascii: "n") else { return false }
        try readNull()
        return true
    }

    mutating func readNull() throws(QuixProtocolError) {
        try readLiteral("null")
    }

    mutating func readBool() throws(QuixProtocolError) -> Bool {
        skipWhitespace()
        if cursor < bytes.count && bytes[cursor] == UInt8(ascii: "t") {
            try readLiteral("true")
            return true
        }
        try readLiteral("false")
        return false
    }

    mutating func readString() throws(QuixProtocolError) -> String {
        let (range, escaped) = try readStringRange()
        if !escaped {
            if bytes[range].allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes[range], as: UTF8.self) }  // ASCII is valid UTF-8
            guard let text = String(validating: bytes[range], as: UTF8.self) else {
                throw QuixProtocolError(.invalidUTF8, "a string is not valid UTF-8", at: base + range.lowerBound)
            }
            return text
        }
        return try unescape(range)
    }

    /// A string or null.
    mutating func readOptionalString() throws(QuixProtocolError) -> String? {
        try readNullIfPresent() ? nil : readString()
    }

    /// A double, as Newtonsoft.Json reads one: a JSON number, the strings "NaN", "Infinity"
    /// and "-Infinity", or the bare literals NaN, Infinity and -Infinity.
    mutating func readDouble() throws(QuixProtocolError) -> Double {
        skipWhitespace()
        guard cursor < bytes.count else { throw truncated("a number") }
        let first = bytes[cursor]
        if first == UInt8(ascii: "\"") {
            let start = cursor
            let text = try readString()
            switch text {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default:
                guard let value = Double(text) else {
                    throw QuixProtocolError(.wrongType, "expected a number, found the string \"\(text.prefix(40))\"", at: base + start)
                }
                return value
            }
        }
        if first == UInt8(ascii: "N") {
            try readLiteral("NaN")
            return .nan
        }
        if first == UInt8(ascii: "I") {
            try readLiteral("Infinity")
            return .infinity
        }
        if first == UInt8(ascii: "-") && cursor + 1 < bytes.count && bytes[cursor + 1] == UInt8(ascii: "I") {
            cursor += 1
            try readLiteral("Infinity")
            return -.infinity
        }
        return try readNumber()
    }

    /// A double or null.
    mutating func readOptionalDouble() throws(QuixProtocolError) -> Double? {
        try readNullIfPresent() ? nil : readDouble()
    }

    /// A 64-bit integer written as a JSON integer (also accepts an integral number like `5.0`).
    mutating func readInt64() throws(QuixProtocolError) -> Int64 {
        skipWhitespace()
        let start = cursor
        guard cursor < bytes.count else { throw truncated("an integer") }
        var negative = false
        if bytes[cursor] == UInt8(ascii: "-") {
            negative = true
            cursor += 1
        }
        var value: Int64 = 0
        var digits = 0
        while cursor < bytes.count, case let digit = bytes[cursor] &- UInt8(ascii: "0"), digit < 10 {
            let (times10, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (next, overflow2) =
                negative ? times10.subtractingReportingOverflow(Int64(digit)) : times10.addingReportingOverflow(Int64(digit))
            guard !overflow1 && !overflow2 else {
                throw QuixProtocolError(.invalidNumber, "an integer does not fit in 64 bits", at: base + start)
            }
            value = next
            digits += 1
            cursor += 1
        }
        guard digits > 0 else {
            cursor = start
            if (try? peekKind()) == .string {
                throw QuixProtocolError(.wrongType, "expected an integer, found a string", at: base + start)
            }
            throw unexpected("an integer")
        }
        if cursor < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[cursor]) {
            cursor = start
            let double = try readNumber()
            // Integral and within Int64 (a conversion that needs no libm, which nothing links here).
            guard double >= -0x1p63, double < 0x1p63, case let integer = Int64(double), Double(integer) == double else {
                throw QuixProtocolError(.invalidNumber, "expected an integer, found \(double)", at: base + start)
            }
            return integer
        }
        return value
    }

    // MARK: Internals

    private mutating func readNumber() throws(QuixProtocolError) -> Double {
        let start = cursor
        let number = JSONText.scanNumber(bytes, from: cursor)
        cursor = number.end
        switch number.failure {
        case .noDigit: throw unexpected("a digit")
        case .noFractionDigit: throw unexpected("a digit after '.'")
        case .noExponentDigit: throw unexpected("a digit in the exponent")
        case nil: break
        }
        guard let value = JSONText.value(of: number, in: bytes, from: start) else {
            throw QuixProtocolError(.invalidNumber, "not a number", at: base + start)
        }
        return value
    }

    /// The range of a string's content (without quotes) and whether it has escapes.
    private mutating func readStringRange() throws(QuixProtocolError) -> (Range<Int>, escaped: Bool) {
        skipWhitespace()
        guard cursor < bytes.count else { throw truncated("a string") }
        guard bytes[cursor] == UInt8(ascii: "\"") else {
            throw QuixProtocolError(.wrongType, "expected a string, found '\(Character(Unicode.Scalar(bytes[cursor])))'", at: base + cursor)
        }
        cursor += 1
        let start = cursor
        var escaped = false
        while cursor < bytes.count {
            let byte = bytes[cursor]
            if byte == UInt8(ascii: "\"") {
                let range = start..<cursor
                cursor += 1
                return (range, escaped)
            }
            if byte == UInt8(ascii: "\\") {
                escaped = true
                cursor += 2
                continue
            }
            if byte < 0x20 { throw QuixProtocolError(.unexpectedToken, "a control character inside a string", at: base + cursor) }
            cursor += 1
        }
        throw truncated("the end of a string")
    }

    private func unescape(_ range: Range<Int>) throws(QuixProtocolError) -> String {
        var output: [UInt8] = []
        output.reserveCapacity(range.count)
        var index = range.lowerBound
        while index < range.upperBound {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "\\") else {
                output.append(byte)
                index += 1
                continue
            }
            guard index + 1 < range.upperBound else { throw QuixProtocolError(.unexpectedToken, "a dangling escape", at: base + index) }
            let escape = bytes[index + 1]
            index += 2
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): output.append(escape)
            case UInt8(ascii: "b"): output.append(0x08)
            case UInt8(ascii: "f"): output.append(0x0C)
            case UInt8(ascii: "n"): output.append(0x0A)
            case UInt8(ascii: "r"): output.append(0x0D)
            case UInt8(ascii: "t"): output.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4(at: index, limit: range.upperBound)
                index += 4
                if (0xD800..<0xDC00).contains(scalar) {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard index + 6 <= range.upperBound, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u")
                    else { throw QuixProtocolError(.invalidUTF8, "an unpaired surrogate escape", at: base + index) }
                    let low = try hex4(at: index + 2, limit: range.upperBound)
                    guard (0xDC00..<0xE000).contains(low) else {
                        throw QuixProtocolError(.invalidUTF8, "an unpaired surrogate escape", at: base + index)
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    index += 6
                }
                guard let unicode = Unicode.Scalar(scalar) else {
                    throw QuixProtocolError(.invalidUTF8, "an escape that is no Unicode scalar", at: base + index)
                }
                output.append(contentsOf: Array(String(Character(unicode)).utf8))
            default:
                throw QuixProtocolError(.unexpectedToken, "an unknown escape '\\\(Character(Unicode.Scalar(escape)))'", at: base + index - 2)
            }
        }
        guard let text = String(validating: output, as: UTF8.self) else {
            throw QuixProtocolError(.invalidUTF8, "a string is not valid UTF-8", at: base + range.lowerBound)
        }
        return text
    }

    private func hex4(at index: Int, limit: Int) throws(QuixProtocolError) -> UInt32 {
        guard index + 4 <= limit else { throw QuixProtocolError(.unexpectedToken, "a short \\u escape", at: base + index) }
        var value: UInt32 = 0
        for offset in 0..<4 {
            let byte = bytes[index + offset]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw QuixProtocolError(.unexpectedToken, "a non-hex digit in a \\u escape", at: base + index + offset)
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    private mutating func readLiteral(_ literal: StaticString) throws(QuixProtocolError) {
        skipWhitespace()
        let count = literal.utf8CodeUnitCount
        guard cursor + count <= bytes.count else { throw truncated("\(literal)") }
        let matches = literal.withUTF8Buffer { expected in
            expected.indices.allSatisfy { bytes[cursor + $0] == expected[$0] }
        }
        guard matches else { throw unexpected("\(literal)") }
        cursor += count
    }

    private mutating func enter() throws(QuixProtocolError) {
        depth += 1
        guard depth <= Self.maximumDepth else {
            throw QuixProtocolError(.unexpectedToken, "nesting deeper than \(Self.maximumDepth)", at: base + cursor)
        }
    }

    private mutating func expect(_ byte: UInt8, _ what: String) throws(QuixProtocolError) {
        skipWhitespace()
        guard cursor < bytes.count else { throw truncated(what) }
        guard bytes[cursor] == byte else {
            if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                throw QuixProtocolError(.wrongType, "expected \(what), found \(describeNext())", at: base + cursor)
            }
            throw unexpected(what)
        }
        cursor += 1
    }

    private mutating func peekByte() throws(QuixProtocolError) -> UInt8 {
        skipWhitespace()
        guard cursor < bytes.count else { throw truncated("more input") }
        return bytes[cursor]
    }

    private mutating func takeByte(_ what: String) throws(QuixProtocolError) -> UInt8 {
        guard cursor < bytes.count else { throw truncated(what) }
        defer { cursor += 1 }
        return bytes[cursor]
    }

    private mutating func skipWhitespace() {
        while cursor < bytes.count {
            switch bytes[cursor] {
            case 0x20, 0x0A, 0x0D, 0x09: cursor += 1
            default: return
            }
        }
    }

    private func describeNext() -> String {
        guard cursor < bytes.count else { return "the end" }
        switch bytes[cursor] {
        case UInt8(ascii: "\""): return "a string"
        case UInt8(ascii: "{"): return "an object"
        case UInt8(ascii: "["): return "an array"
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return "a boolean"
        case UInt8(ascii: "n"): return "null"
        default: return "a number or '\(Character(Unicode.Scalar(bytes[cursor])))'"
        }
    }

    private func truncated(_ what: String) -> QuixProtocolError {
        QuixProtocolError(.truncated, "the input ended where \(what) was expected", at: base + cursor)
    }

    private func unexpected(_ what: String, back: Int = 0) -> QuixProtocolError {
        let at = cursor - back
        let found = at < bytes.count ? "'\(Character(Unicode.Scalar(bytes[at])))'" : "the end"
        return QuixProtocolError(.unexpectedToken, "expected \(what), found \(found)", at: base + at)
    }
}

extension String {
    /// ASCII case-insensitive equality, for member names (Newtonsoft.Json matches them so).
    @inline(__always)
    func equalsIgnoringCase(_ other: StaticString) -> Bool {
        var utf8 = self.utf8.makeIterator()
        return other.withUTF8Buffer { expected in
            for byte in expected {
                guard let actual = utf8.next(), actual | 0x20 == byte | 0x20 else { return false }
            }
            return utf8.next() == nil
        }
    }
}
