/// .NET's round-trip ("R") text of a finite double, as Newtonsoft writes it: the shortest digits
/// that read back to the same value, fixed-point when the decimal exponent is in -5 < e < 15,
/// scientific (`1E-05`, `1.5E+20`) otherwise, and `.0` added when neither `.` nor `E` appears.
///
/// The digits come from Swift's own shortest round-trip conversion (the one `description`
/// uses), written into a stack buffer through `TextOutputStream._writeASCII` instead of a
/// `String`: no allocation, whatever the number of digits.
enum DotNetDouble {
    /// The longest text written, `-2.2250738585072014E-308` and the like, with room to spare.
    static let maximumLength = 32

    /// Writes the text of a finite `value` at `output` (room for `maximumLength` bytes);
    /// returns the number of bytes written.
    static func write(_ value: Double, to output: UnsafeMutablePointer<UInt8>) -> Int {
        // Integral values of moderate size (the common case for telemetry): digits and ".0".
        if value.magnitude < 1e15, case let (integer, exact) = rounded(value.magnitude), exact {
            var count = 0
            if value.sign == .minus {
                output[0] = UInt8(ascii: "-")
                count = 1
            }
            count += JSONText.writeDigits(integer, to: output + count)
            output[count] = UInt8(ascii: ".")
            output[count + 1] = UInt8(ascii: "0")
            return count + 2
        }
        if let count = writeShortDecimal(value, to: output) { return count }
        var swift = SwiftDigits()
        value.magnitude.write(to: &swift)
        return swift.withDigits { digits, exponent in
            var count = 0
            if value.sign == .minus {
                output[0] = UInt8(ascii: "-")
                count = 1
            }
            return count + format(digits, exponent: exponent, to: output + count)
        }
    }

    /// The most decimals the short path tries. A computed value (`0.1 + 0.2`) has none that
    /// reads back, and trying all fifteen before Swift's shortest digits cost more than those.
    private static let maximumShortDecimals = 6

    /// Values with a few decimals (most telemetry): `m / 10^k` for the smallest `k` (up to
    /// `maximumShortDecimals`) at which the rounded `m` reads back as `value`; nil when there is
    /// none below 2^51 (where at most one such `m` exists: the doubles around `value` are closer
    /// together than half of `10^-k`).
    /// Both `m` and `10^k` are exact, so the division is correctly rounded, as parsing the text
    /// is. Fixed-point range only.
    ///
    /// Three decimals are tried first. If some `k` ≤ 3 reads back, so does 3, with `m` ending in
    /// `3 - k` zeros: stripping them gives the smallest `k`. If 3 does not, no fewer do. So a
    /// value of up to three decimals costs one division, not one per decimal.
    @inline(__always)
    private static func writeShortDecimal(_ value: Double, to output: UnsafeMutablePointer<UInt8>) -> Int? {
        let magnitude = value.magnitude
        guard magnitude >= 1e-4 && magnitude < 1e15 else { return nil }
        func written(_ digits: UInt64, decimals: Int) -> Int {
            var count = 0
            if value.sign == .minus {
                output[0] = UInt8(ascii: "-")
                count = 1
            }
            return count + writeFixed(digits, decimals: decimals, to: output + count)
        }
        var decimals = 1
        var scale = 10.0  // 10^decimals, exact up to 10^22
        if magnitude * 1000 < 0x1p51 {
            var (digits, _) = rounded(magnitude * 1000)
            guard Double(digits) / 1000 != magnitude else {
                decimals = 3
                while decimals > 1 && digits % 10 == 0 {
                    digits /= 10
                    decimals -= 1
                }
                return written(digits, decimals: decimals)
            }
            decimals = 4
            scale = 10_000
        }
        while decimals <= maximumShortDecimals {
            let scaled = magnitude * scale
            guard scaled < 0x1p51 else { return nil }
            // Below 2^51, `scaled` is within a quarter of the integer `value` is a tenth power
            // of, if it is one: the nearest integer is the only candidate.
            let (digits, _) = rounded(scaled)
            if Double(digits) / scale == magnitude { return written(digits, decimals: decimals) }
            decimals += 1
            scale *= 10
        }
        return nil
    }

    /// The integer nearest to `value` (0 ≤ value < 2^51) and whether it is `value`, by the
    /// 2^52 trick: the sum's significand bits are the rounded integer. No conversion checks.
    @inline(__always)
    private static func rounded(_ value: Double) -> (UInt64, exact: Bool) {
        let shifted = value + 0x1p52
        return (shifted.bitPattern & 0x000F_FFFF_FFFF_FFFF, shifted - 0x1p52 == value)
    }

    /// `digits` with a point `decimals` places from the right (`0.` and zeros before it when
    /// it has fewer digits than that), written straight into `output`.
    @inline(__always)
    private static func writeFixed(_ digits: UInt64, decimals: Int, to output: UnsafeMutablePointer<UInt8>) -> Int {
        let length = JSONText.digitCount(digits)
        if length > decimals {
            // `123456` with 2 decimals: the digits, then the last two moved right for the point.
            _ = JSONText.writeDigits(digits, to: output)
            var index = length
            while index > length - decimals {
                output[index] = output[index - 1]
                index -= 1
            }
            output[length - decimals] = UInt8(ascii: ".")
            return length + 1
        }
        output[0] = UInt8(ascii: "0")
        output[1] = UInt8(ascii: ".")
        let zeros = decimals - length
        for index in 0..<zeros { output[2 + index] = UInt8(ascii: "0") }
        return 2 + zeros + JSONText.writeDigits(digits, to: output + 2 + zeros)
    }

    /// Appends the text of a finite `value`.
    static func append(_ value: Double, to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maximumLength) { buffer in
            let count = write(value, to: buffer.baseAddress!)
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[..<count]))
        }
    }

    /// .NET's layout of significant `digits` (no leading or trailing zeros) whose first digit
    /// has the decimal exponent `exponent`.
    private static func format(_ digits: UnsafeBufferPointer<UInt8>, exponent: Int, to output: UnsafeMutablePointer<UInt8>) -> Int {
        var count = 0
        func put(_ byte: UInt8) {
            output[count] = byte
            count += 1
        }
        func put(_ bytes: UnsafeBufferPointer<UInt8>) {
            (output + count).update(from: bytes.baseAddress!, count: bytes.count)
            count += bytes.count
        }
        if exponent > -5 && exponent < 15 {
            if exponent < 0 {
                put(UInt8(ascii: "0"))
                put(UInt8(ascii: "."))
                for _ in 0..<(-exponent - 1) { put(UInt8(ascii: "0")) }
                put(digits)
            } else if digits.count <= exponent + 1 {
                put(digits)
                for _ in 0..<(exponent + 1 - digits.count) { put(UInt8(ascii: "0")) }
                put(UInt8(ascii: "."))
                put(UInt8(ascii: "0"))
            } else {
                put(UnsafeBufferPointer(rebasing: digits[..<(exponent + 1)]))
                put(UInt8(ascii: "."))
                put(UnsafeBufferPointer(rebasing: digits[(exponent + 1)...]))
            }
        } else {
            put(digits[0])
            if digits.count > 1 {
                put(UInt8(ascii: "."))
                put(UnsafeBufferPointer(rebasing: digits[1...]))
            }
            put(UInt8(ascii: "E"))
            put(exponent < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            let magnitude = exponent.magnitude
            if magnitude >= 100 { put(UInt8(ascii: "0") + UInt8(magnitude / 100)) }
            put(UInt8(ascii: "0") + UInt8(magnitude / 10 % 10))
            put(UInt8(ascii: "0") + UInt8(magnitude % 10))
        }
        return count
    }
}

/// Receives Swift's shortest round-trip text of a positive double (`12.345`, `1e-05`,
/// `1.2345678901234568e+17`) in a fixed buffer, and reads it as significant digits and the
/// decimal exponent of the first one.
private struct SwiftDigits: TextOutputStream {
    private var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var count = 0

    mutating func write(_ string: String) {
        var string = string
        string.withUTF8 { _writeASCII($0) }
    }

    /// What `Double.write(to:)` calls, with the ASCII text of the number.
    mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) {
        let room = MemoryLayout.size(ofValue: storage) - count
        let taken = min(room, buffer.count)
        withUnsafeMutableBytes(of: &storage) { bytes in
            for index in 0..<taken { bytes[count + index] = buffer[index] }
        }
        count += taken
    }

    /// Calls `body` with the significant digits (no leading or trailing zeros) and the decimal
    /// exponent of the first digit.
    mutating func withDigits<R>(_ body: (UnsafeBufferPointer<UInt8>, Int) -> R) -> R {
        let length = count
        return withUnsafeMutableBytes(of: &storage) { raw in
            let text = raw.bindMemory(to: UInt8.self)
            var digitCount = 0  // digits are compacted in place, in front of what is read
            var pointPosition: Int?
            var exponent = 0
            var index = 0
            while index < length {
                let byte = text[index]
                if byte == UInt8(ascii: ".") {
                    pointPosition = digitCount
                } else if byte == UInt8(ascii: "e") {
                    var negative = false
                    index += 1
                    if text[index] == UInt8(ascii: "-") { negative = true }
                    if text[index] == UInt8(ascii: "-") || text[index] == UInt8(ascii: "+") { index += 1 }
                    while index < length {
                        exponent = exponent * 10 + Int(text[index] &- UInt8(ascii: "0"))
                        index += 1
                    }
                    if negative { exponent = -exponent }
                    break
                } else {
                    text[digitCount] = byte
                    digitCount += 1
                }
                index += 1
            }
            var point = pointPosition ?? digitCount
            var first = 0
            while first < digitCount - 1 && text[first] == UInt8(ascii: "0") {
                first += 1
                point -= 1
            }
            var last = digitCount
            while last > first + 1 && text[last - 1] == UInt8(ascii: "0") { last -= 1 }
            return body(UnsafeBufferPointer(rebasing: text[first..<last]), point + exponent - 1)
        }
    }
}
