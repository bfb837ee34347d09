/// JSON scalars on raw memory, as Newtonsoft.Json writes them and Quix reads them: what the
/// general reader and writer and the columnar frame codec share.
enum JSONText {
    /// The longest integer text: a sign and 19 digits.
    static let maximumIntegerLength = 20

    /// The most bytes `"text"` can take: the quotes and every byte escaped as `\u00XX`.
    static func maximumStringLength(utf8Count: Int) -> Int { utf8Count * 6 + 2 }

    /// Writes the decimal digits of `value`; returns how many bytes.
    @inline(__always)
    static func writeInteger(_ value: Int64, to output: UnsafeMutablePointer<UInt8>) -> Int {
        if value < 0 {
            output[0] = UInt8(ascii: "-")
            return 1 + writeDigits(value.magnitude, to: output + 1)
        }
        return writeDigits(value.magnitude, to: output)
    }

    /// The number of decimal digits of `value`.
    @inline(__always)
    static func digitCount(_ value: UInt64) -> Int {
        var count = 1
        var rest = value
        while rest >= 10_000 {
            rest /= 10_000
            count += 4
        }
        if rest >= 100 {
            rest /= 100
            count += 2
        }
        return rest >= 10 ? count + 1 : count
    }

    /// Writes the decimal digits of `value` straight into `output`; returns how many. The digits
    /// go in chunks of eight, each split with 32-bit arithmetic into pairs from a table: a
    /// nineteen-digit timestamp costs two 64-bit divisions, not nine.
    @inline(__always)
    static func writeDigits(_ value: UInt64, to output: UnsafeMutablePointer<UInt8>) -> Int {
        if value < 100_000_000 { return writeUpToEight(UInt32(truncatingIfNeeded: value), to: output) }
        let low = UInt32(truncatingIfNeeded: value % 100_000_000)
        let high = value / 100_000_000
        if high < 100_000_000 {
            let count = writeUpToEight(UInt32(truncatingIfNeeded: high), to: output)
            writeEight(low, to: output + count)
            return count + 8
        }
        // At most 20 digits: the top four (below 1845), then two chunks of eight.
        let count = writeUpToEight(UInt32(truncatingIfNeeded: high / 100_000_000), to: output)
        writeEight(UInt32(truncatingIfNeeded: high % 100_000_000), to: output + count)
        writeEight(low, to: output + count + 8)
        return count + 16
    }

    /// The digits of `value` (below 10^8), without leading zeros.
    @inline(__always)
    private static func writeUpToEight(_ value: UInt32, to output: UnsafeMutablePointer<UInt8>) -> Int {
        let count = value < 10_000 ? (value < 100 ? (value < 10 ? 1 : 2) : (value < 1_000 ? 3 : 4))
            : (value < 1_000_000 ? (value < 100_000 ? 5 : 6) : (value < 10_000_000 ? 7 : 8))
        var index = count
        var rest = value
        while rest >= 100 {
            index -= 2
            writePair(rest % 100, to: output + index)
            rest /= 100
        }
        if rest >= 10 {
            writePair(rest, to: output + index - 2)
        } else {
            output[index - 1] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest)
        }
        return count
    }

    /// The eight digits of `value` (below 10^8), with leading zeros.
    @inline(__always)
    private static func writeEight(_ value: UInt32, to output: UnsafeMutablePointer<UInt8>) {
        let high = value / 10_000
        let low = value % 10_000
        writePair(high / 100, to: output)
        writePair(high % 100, to: output + 2)
        writePair(low / 100, to: output + 4)
        writePair(low % 100, to: output + 6)
    }

    @inline(__always)
    private static func writePair(_ pair: UInt32, to output: UnsafeMutablePointer<UInt8>) {
        let digits = twoDigits.utf8Start + Int(pair &* 2)
        output[0] = digits[0]
        output[1] = digits[1]
    }

    /// "00", "01", … "99", one after the other (a static string: no lazy global to check).
    private static let twoDigits: StaticString =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

    /// Writes `"text"` with Newtonsoft's default escaping (`"`, `\`, control characters, and
    /// U+0085, U+2028, U+2029); `output` has room for `maximumStringLength`. Returns how many
    /// bytes were written.
    static func writeString(_ utf8: UnsafeBufferPointer<UInt8>, to output: UnsafeMutablePointer<UInt8>) -> Int {
        guard let source = utf8.baseAddress else {
            output[0] = UInt8(ascii: "\"")
            output[1] = UInt8(ascii: "\"")
            return 2
        }
        output[0] = UInt8(ascii: "\"")
        var count = 1
        var index = 0
        while index < utf8.count {
            // Eight bytes at a time while none needs a look: no control character, quote,
            // backslash or byte of a multi-byte sequence (where U+0085, U+2028, U+2029 hide).
            if utf8.count - index >= 8 {
                let word = UnsafeRawPointer(source + index).loadUnaligned(as: UInt64.self)
                if !needsLook(word) {
                    UnsafeMutableRawPointer(output + count).storeBytes(of: word, as: UInt64.self)
                    index += 8
                    count += 8
                    continue
                }
            }
            let byte = source[index]
            guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == 0xC2 || byte == 0xE2 else {
                output[count] = byte
                count += 1
                index += 1
                continue
            }
            let (escape, length) = Self.escape(utf8, at: index)
            guard let escape else {
                output[count] = byte
                count += 1
                index += 1
                continue
            }
            output[count] = UInt8(ascii: "\\")
            output[count + 1] = escape.first
            count += 2
            if let scalar = escape.scalar {
                for shift in [12, 8, 4, 0] as [UInt32] {
                    output[count] = hexDigits.utf8Start[Int((scalar >> shift) & 0xF)]
                    count += 1
                }
            }
            index += length
        }
        output[count] = UInt8(ascii: "\"")
        return count + 1
    }

    /// Newtonsoft's escape of the character at `index`, if it has one, and its length in bytes.
    private static func escape(_ utf8: UnsafeBufferPointer<UInt8>, at index: Int) -> ((first: UInt8, scalar: UInt32?)?, Int) {
        let byte = utf8[index]
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"): return ((byte, nil), 1)
        case 0x0A: return ((UInt8(ascii: "n"), nil), 1)
        case 0x0D: return ((UInt8(ascii: "r"), nil), 1)
        case 0x09: return ((UInt8(ascii: "t"), nil), 1)
        case 0x08: return ((UInt8(ascii: "b"), nil), 1)
        case 0x0C: return ((UInt8(ascii: "f"), nil), 1)
        case ..<0x20: return ((UInt8(ascii: "u"), UInt32(byte)), 1)
        case 0xC2 where index + 1 < utf8.count && utf8[index + 1] == 0x85: return ((UInt8(ascii: "u"), 0x85), 2)
        case 0xE2 where index + 2 < utf8.count && utf8[index + 1] == 0x80 && (utf8[index + 2] == 0xA8 || utf8[index + 2] == 0xA9):
            return ((UInt8(ascii: "u"), utf8[index + 2] == 0xA8 ? 0x2028 : 0x2029), 3)
        default: return (nil, 1)
        }
    }

    /// Whether any byte of `word` is below 0x20, a quote, a backslash or 0x80 and above.
    @inline(__always)
    private static func needsLook(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ value: UInt64) -> Bool { (value &- ones) & ~value & highs != 0 }
        let below32 = (word &- ones &* 0x20) & ~word & highs
        return word & highs != 0 || below32 != 0 || hasZeroByte(word ^ (ones &* 0x22)) || hasZeroByte(word ^ (ones &* 0x5C))
    }

    private static let hexDigits: StaticString = "0123456789abcdef"

    // MARK: Numbers

    /// A JSON number as scanned: its extent and what its value needs.
    struct Number {
        enum Failure { case noDigit, noFractionDigit, noExponentDigit }

        var end: Int
        var negative = false
        /// The first 19 significant digits.
        var mantissa: UInt64 = 0
        var significant = 0
        /// Digits of the mantissa after the point.
        var fractionDigits = 0
        var hasExponent = false
        var failure: Failure?
    }

    /// Scans the JSON number at `bytes[start]` (`-?digits(.digits)?([eE][+-]?digits)?`).
    @inline(__always)
    static func scanNumber(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Number {
        var number = Number(end: start)
        var cursor = start
        if cursor < bytes.count && bytes[cursor] == UInt8(ascii: "-") {
            number.negative = true
            cursor += 1
        }
        let integerStart = cursor
        while cursor < bytes.count, case let digit = bytes[cursor] &- UInt8(ascii: "0"), digit < 10 {
            if number.significant < 19 { number.mantissa = number.mantissa &* 10 &+ UInt64(digit) }
            if number.mantissa != 0 { number.significant += 1 }
            cursor += 1
        }
        guard cursor > integerStart else {
            number.end = cursor
            number.failure = .noDigit
            return number
        }
        if cursor < bytes.count && bytes[cursor] == UInt8(ascii: ".") {
            cursor += 1
            let fractionStart = cursor
            while cursor < bytes.count, case let digit = bytes[cursor] &- UInt8(ascii: "0"), digit < 10 {
                if number.significant < 19 {
                    number.mantissa = number.mantissa &* 10 &+ UInt64(digit)
                    number.fractionDigits += 1
                }
                if number.mantissa != 0 { number.significant += 1 }
                cursor += 1
            }
            guard cursor > fractionStart else {
                number.end = cursor
                number.failure = .noFractionDigit
                return number
            }
        }
        if cursor < bytes.count && (bytes[cursor] == UInt8(ascii: "e") || bytes[cursor] == UInt8(ascii: "E")) {
            number.hasExponent = true
            cursor += 1
            if cursor < bytes.count && (bytes[cursor] == UInt8(ascii: "+") || bytes[cursor] == UInt8(ascii: "-")) { cursor += 1 }
            let exponentStart = cursor
            while cursor < bytes.count, bytes[cursor] &- UInt8(ascii: "0") < 10 { cursor += 1 }
            guard cursor > exponentStart else {
                number.end = cursor
                number.failure = .noExponentDigit
                return number
            }
        }
        number.end = cursor
        return number
    }

    /// The correctly rounded value of a scanned number (without a failure) at `bytes[start]`;
    /// nil where Swift's parser finds none.
    @inline(__always)
    static func value(of number: Number, in bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Double? {
        // Exact: a mantissa below 2^53 divided by an exact power of ten.
        if !number.hasExponent && number.significant <= 15 && number.fractionDigits <= 22 {
            let value = Double(number.mantissa) / powersOfTen[number.fractionDigits]
            return number.negative ? -value : value
        }
        #if arch(x86_64)
        // Up to 19 digits: the quotient in Float80 (64-bit mantissa, both operands exact) is
        // correctly rounded to a double unless it lies within one Float80 ulp of a halfway
        // point between two doubles; that rare case goes to strtod below.
        if !number.hasExponent && number.significant <= 19 && number.fractionDigits <= 27 {
            let quotient = Float80(number.mantissa) / extendedPowersOfTen[number.fractionDigits]
            let roundingBits = quotient.significandBitPattern & 0x7FF
            if roundingBits < 0x3FF || roundingBits > 0x401 {
                let value = Double(quotient)
                return number.negative ? -value : value
            }
        }
        #endif
        // The rare rest (more digits, exponents, near-halfway quotients): Swift's own parser.
        return Double(String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<number.end]), as: UTF8.self))
    }

    #if arch(x86_64)
    private static let extendedPowersOfTen: [Float80] = (0...27).map { exponent in
        var value: Float80 = 1
        for _ in 0..<exponent { value *= 10 }
        return value
    }
    #endif

    /// 10^0 … 10^22, every one exact. A literal, so the optimizer lays it out statically: no
    /// lazy-initialization check per number read.
    static let powersOfTen: [Double] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
    ]
}
