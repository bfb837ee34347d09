/// Standard base64 with padding (RFC 4648 §4), as .NET's Convert writes and reads it.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    static func encode<C: Collection<UInt8>>(_ data: C, into output: inout [UInt8]) {
        output.reserveCapacity(output.count + (data.count + 2) / 3 * 4)
        var iterator = data.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = iterator.next()
            let group = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            output.append(alphabet[Int(group >> 18 & 63)])
            output.append(alphabet[Int(group >> 12 & 63)])
            output.append(second == nil ? UInt8(ascii: "=") : alphabet[Int(group >> 6 & 63)])
            output.append(third == nil ? UInt8(ascii: "=") : alphabet[Int(group & 63)])
        }
    }

    static func encode<C: Collection<UInt8>>(_ data: C) -> [UInt8] {
        var output: [UInt8] = []
        encode(data, into: &output)
        return output
    }

    /// Decodes base64 text; `offset` is where the text starts in its payload, for errors.
    static func decode(_ text: ArraySlice<UInt8>, offset: Int? = nil) throws(QuixProtocolError) -> [UInt8] {
        guard text.count % 4 == 0 else {
            throw QuixProtocolError(.invalidBase64, "base64 text of \(text.count) characters (not a multiple of 4)", at: offset)
        }
        var output: [UInt8] = []
        output.reserveCapacity(text.count / 4 * 3)
        var index = text.startIndex
        while index < text.endIndex {
            var group: UInt32 = 0
            var padding = 0
            for position in 0..<4 {
                let byte = text[index + position]
                if byte == UInt8(ascii: "=") && position >= 2 && index + 4 == text.endIndex {
                    padding += 1
                    group <<= 6
                    continue
                }
                let value = values[Int(byte)]
                guard value != 0xFF, padding == 0 else {
                    throw QuixProtocolError(
                        .invalidBase64, "'\(Character(Unicode.Scalar(byte)))' is not base64",
                        at: offset.map { $0 + index - text.startIndex + position })
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
