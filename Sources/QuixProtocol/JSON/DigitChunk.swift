/// Eight bytes of text read as one little-endian `UInt64` (the first byte lowest), tested and
/// converted as decimal digits all at once (SWAR), for the readers' numbers.
enum DigitChunk {
    /// Whether all eight bytes are ASCII digits.
    @inline(__always)
    static func isEightDigits(_ chunk: UInt64) -> Bool {
        let highNibbles: UInt64 = 0xF0F0_F0F0_F0F0_F0F0
        return (chunk & highNibbles) | (((chunk &+ 0x0606_0606_0606_0606) & highNibbles) >> 4) == 0x3333_3333_3333_3333
    }

    /// The value of eight ASCII digits (the first in the lowest byte): pairs, then quads, then
    /// the whole, each step one multiplication.
    @inline(__always)
    static func eightDigits(_ chunk: UInt64) -> UInt64 {
        var value = chunk & 0x0F0F_0F0F_0F0F_0F0F
        value = (value &* (10 << 8 + 1)) >> 8
        value = ((value & 0x00FF_00FF_00FF_00FF) &* (100 << 16 + 1)) >> 16
        return ((value & 0x0000_FFFF_0000_FFFF) &* (10_000 << 32 + 1)) >> 32
    }

    /// How many bytes at the start of `chunk` are ASCII digits (0 … 8).
    ///
    /// Below 0x30, `byte - 0x30` sets the byte's high bit; above 0x39, `byte + 0x46` does (or,
    /// from 0xBA on, the subtraction does). Borrows and carries only move towards later bytes,
    /// and digits make none, so the first byte that is no digit is found exactly.
    @inline(__always)
    static func leadingDigits(_ chunk: UInt64) -> Int {
        let notDigit = ((chunk &- 0x3030_3030_3030_3030) | (chunk &+ 0x4646_4646_4646_4646)) & 0x8080_8080_8080_8080
        return notDigit.trailingZeroBitCount / 8
    }

    /// The value of the first `count` (1 … 7) bytes of `chunk`, which are digits: shifted to
    /// the high end, the bytes before them read as leading zeros.
    @inline(__always)
    static func value(_ chunk: UInt64, digits count: Int) -> UInt64 {
        eightDigits(chunk &<< UInt64(8 * (8 - count)))
    }
}
