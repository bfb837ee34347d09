/// Standard base64 with padding (RFC 4648 §4), as .NET's Convert writes and reads it.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    static func encode<C: Collection<UInt8>>(_ data: C, into output: inout [UInt8]) {
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: encodedLength(data.count)))
        output.withUnsafeMutableBufferPointer { output in
            let target = output.baseAddress! + start
            if data.withContiguousStorageIfAvailable({ _ = write($0, to: target) }) == nil {
                _ = Array(data).withUnsafeBufferPointer { write($0, to: target) }
            }
        }
    }

    static func encode<C: Collection<UInt8>>(_ data: C) -> [UInt8] {
        var output: [UInt8] = []
        encode(data, into: &output)
        return output
    }

    /// The length of the base64 text of `count` bytes.
    static func encodedLength(_ count: Int) -> Int { (count + 2) / 3 * 4 }

    /// Writes the base64 text of `data` at `output` (room for `encodedLength`); returns its length.
    static func write(_ data: UnsafeBufferPointer<UInt8>, to output: UnsafeMutablePointer<UInt8>) -> Int {
        var count = 0
        var index = 0
        alphabet.withUnsafeBufferPointer { alphabet in
            while index < data.count {
                let remaining = data.count - index
                let group = UInt32(data[index]) << 16 | (remaining > 1 ? UInt32(data[index + 1]) << 8 : 0) | (remaining > 2 ? UInt32(data[index + 2]) : 0)
                output[count] = alphabet[Int(group >> 18 & 63)]
                output[count + 1] = alphabet[Int(group >> 12 & 63)]
                output[count + 2] = remaining > 1 ? alphabet[Int(group >> 6 & 63)] : UInt8(ascii: "=")
                output[count + 3] = remaining > 2 ? alphabet[Int(group & 63)] : UInt8(ascii: "=")
                count += 4
                index += 3
            }
        }
        return count
    }

    /// Decodes base64 text; `offset` is where the text starts in its payload, for errors.
    static func decode(_ text: ArraySlice<UInt8>, offset: Int? = nil) throws(QuixProtocolError) -> [UInt8] {
        try text.withUnsafeBufferPointer { (text) throws(QuixProtocolError) -> [UInt8] in try decode(text, offset: offset) }
    }

    /// Decodes base64 text; `offset` is where the text starts in its payload, for errors.
    static func decode(_ text: UnsafeBufferPointer<UInt8>, offset: Int? = nil) throws(QuixProtocolError) -> [UInt8] {
        guard text.count % 4 == 0 else {
            throw QuixProtocolError(.invalidBase64, "base64 text of \(text.count) characters (not a multiple of 4)", at: offset)
        }
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        var index = 0
        while index < text.count {
            var group: UInt32 = 0
            var padding = 0
            for position in 0..<4 {
                let byte = text[index + position]
                if byte == UInt8(ascii: "=") && position >= 2 && index + 4 == text.count {
                    padding += 1
                    group <<= 6
                    continue
                }
                let value = values[Int(byte)]
                guard value != 0xFF, padding == 0 else {
                    throw QuixProtocolError(
                        .invalidBase64, "'\(Character(Unicode.Scalar(byte)))' is not base64", at: offset.map { $0 + index + position })
                }
                group = group << 6 | UInt32(value)
            }
            output.append(UInt8(group >> 16 & 0xFF))
            if padding < 2 { output.append(UInt8(group >> 8 & 0xFF)) }
            if padding < 1 { output.append(UInt8(group & 0xFF)) }
            index += 4
        }
        return output
    }
}
