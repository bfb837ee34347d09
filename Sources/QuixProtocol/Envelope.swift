import OrderedCollections

/// A transport package: codec id, model key, metadata and the model payload (SPEC 2).
public struct TransportPackage: Sendable, Hashable {
    public enum Format: Sendable, Hashable {
        /// `{"C":..,"K":..,"V":..,"S":..,"E":..}`, the default.
        case json
        /// The binary envelope (marker byte 0x01), written when the codec setting is Protobuf.
        case binary
    }

    public var codec: String
    public var modelKey: String
    public var metadata: OrderedDictionary<String, String>
    public var payload: ArraySlice<UInt8>
    public var format: Format

    public init(
        codec: String, modelKey: String, payload: ArraySlice<UInt8>, metadata: OrderedDictionary<String, String> = [:],
        format: Format = .json
    ) {
        self.codec = codec
        self.modelKey = modelKey
        self.payload = payload
        self.metadata = metadata
        self.format = format
    }

    /// The envelope bytes, exactly as the reference writes them.
    public func encoded() -> [UInt8] {
        format == .json ? encodedJSON() : encodedBinary()
    }

    private func encodedJSON() -> [UInt8] {
        var writer = JSONWriter(capacity: payload.count + modelKey.utf8.count + 48)
        writer.beginObject()
        writer.key("C"); writer.string(codec)
        writer.key("K"); writer.string(modelKey)
        if !metadata.isEmpty {
            writer.key("M")
            writer.beginObject()
            for (key, value) in metadata { writer.key(key); writer.string(value) }
            writer.endObject()
        }
        writer.key("V")
        let start = writer.bytes.count
        if Self.isJSONContainer(payload) { writer.raw(payload) } else { writer.base64(payload) }
        let end = writer.bytes.count
        writer.key("S"); writer.int64(Int64(start))
        writer.key("E"); writer.int64(Int64(end))
        writer.endObject()
        return writer.bytes
    }

    private func encodedBinary() -> [UInt8] {
        var bytes: [UInt8] = [0x01]
        bytes.reserveCapacity(payload.count + 64)
        Self.appendString(codec, to: &bytes)
        Self.appendString(modelKey, to: &bytes)
        bytes.append(0x01)
        Self.appendInt32(Int32(metadata.count), to: &bytes)
        for (key, value) in metadata {
            Self.appendString(key, to: &bytes)
            Self.appendString(value, to: &bytes)
        }
        Self.appendInt32(Int32(payload.count), to: &bytes)
        bytes.append(contentsOf: payload)
        return bytes
    }

    /// What a Kafka value is, as far as the envelope goes.
    public enum Reading: Sendable {
        case package(TransportPackage)
        /// Not a package; the reference hands such values on as raw events. `reason` says why
        /// (not an envelope at all, or a JSON envelope without V/S/E), `nil` for plain data.
        case raw(reason: QuixProtocolError?)
    }

    /// Reads an envelope. Throws for what the reference drops with an error (bad base64, S/E
    /// that do not point at V, a broken binary envelope); returns `.raw` for what it hands on as
    /// raw data (SPEC 2, 9).
    public static func decode(_ value: ArraySlice<UInt8>) throws(QuixProtocolError) -> Reading {
        guard let first = value.first else { throw QuixProtocolError(.truncated, "an empty value") }
        switch first {
        case UInt8(ascii: "{"): return try decodeJSON(value)
        case 0x01: return .package(try decodeBinary(value))
        default: return .raw(reason: nil)
        }
    }

    private static func decodeJSON(_ value: ArraySlice<UInt8>) throws(QuixProtocolError) -> Reading {
        return try JSONReader.read(value) { reader throws(QuixProtocolError) in
            var codec = ""
            var modelKey = ""
            var metadata: OrderedDictionary<String, String> = [:]
            var valueRange: Range<Int>?
            var start: Int64?
            var end: Int64?
            do throws(QuixProtocolError) {
                try reader.readObject { reader, member throws(QuixProtocolError) in
                    switch member {
                    case "C": codec = try reader.readOptionalString() ?? ""
                    case "K": modelKey = try reader.readOptionalString() ?? ""
                    case "M":
                        if try !reader.readNullIfPresent() {
                            try reader.readObject { reader, key throws(QuixProtocolError) in metadata[key] = try reader.readOptionalString() ?? "" }
                        }
                    case "V": valueRange = try reader.rangeOfValue()
                    case "S": start = try reader.readInt64()
                    case "E": end = try reader.readInt64()
                    default: try reader.skipValue()
                    }
                }
                try reader.expectEnd()
            } catch {
                return .raw(reason: error)  // the reference reads a broken envelope as raw data
            }
            guard let valueRange, let start, let end else {
                let missing = [valueRange == nil ? "V" : nil, start == nil ? "S" : nil, end == nil ? "E" : nil].compactMap { $0 }
                return .raw(reason: QuixProtocolError(.missingMember, "an envelope without \(missing.joined(separator: ", "))"))
            }
            let base = Int64(value.startIndex)
            guard start >= 0, end > start, end <= Int64(value.count),
                Int(base + start) == valueRange.lowerBound, Int(base + end) == valueRange.upperBound
            else {
                throw QuixProtocolError(
                    .invalidOffsets,
                    "S=\(start) E=\(end), but V is at \(valueRange.lowerBound - value.startIndex)..<\(valueRange.upperBound - value.startIndex)")
            }
            var payload = value[valueRange]
            if !isJSONContainer(payload) {
                guard payload.count >= 2, payload.first == UInt8(ascii: "\""), payload.last == UInt8(ascii: "\"") else {
                    throw QuixProtocolError(.wrongType, "V is neither a JSON object or array nor a base64 string", at: Int(start))
                }
                payload = try Base64.decode(payload.dropFirst().dropLast(), offset: Int(start) + 1)[...]
            }
            return .package(TransportPackage(codec: codec, modelKey: modelKey, payload: payload, metadata: metadata, format: .json))
        }
    }

    private static func decodeBinary(_ value: ArraySlice<UInt8>) throws(QuixProtocolError) -> TransportPackage {
        var position = value.startIndex + 1
        func readString(_ what: String) throws(QuixProtocolError) -> String {
            var length = 0
            var shift = 0
            while true {
                guard position < value.endIndex else { throw QuixProtocolError(.truncated, "the binary envelope ends inside the length of \(what)", at: position) }
                let byte = value[position]
                position += 1
                guard shift <= 28 else { throw QuixProtocolError(.invalidNumber, "the length of \(what) is too large", at: position) }
                length |= Int(byte & 0x7F) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            guard length <= value.endIndex - position else {
                throw QuixProtocolError(.truncated, "\(what) of \(length) bytes runs past the end", at: position)
            }
            defer { position += length }
            guard let text = String(validating: value[position..<(position + length)], as: UTF8.self) else {
                throw QuixProtocolError(.invalidUTF8, "\(what) is not valid UTF-8", at: position)
            }
            return text
        }
        func readInt32(_ what: String) throws(QuixProtocolError) -> Int {
            guard value.endIndex - position >= 4 else { throw QuixProtocolError(.truncated, "the binary envelope ends inside \(what)", at: position) }
            var raw: UInt32 = 0
            for index in 0..<4 { raw |= UInt32(value[position + index]) << UInt32(8 * index) }
            position += 4
            let result = Int(Int32(bitPattern: raw))
            guard result >= 0 else { throw QuixProtocolError(.invalidNumber, "\(what) is negative", at: position - 4) }
            return result
        }
        let codec = try readString("the codec id")
        let modelKey = try readString("the model key")
        guard position < value.endIndex else { throw QuixProtocolError(.truncated, "the binary envelope ends before its metadata", at: position) }
        guard value[position] == 0x01 else {
            throw QuixProtocolError(.unexpectedToken, "metadata format \(value[position]) (only 1 exists)", at: position)
        }
        position += 1
        let count = try readInt32("the metadata count")
        guard count <= (value.endIndex - position) / 2 else {
            throw QuixProtocolError(.truncated, "\(count) metadata entries cannot fit", at: position)
        }
        var metadata: OrderedDictionary<String, String> = [:]
        for _ in 0..<count {
            let key = try readString("a metadata key")
            metadata[key] = try readString("a metadata value")
        }
        let length = try readInt32("the payload length")
        guard length == value.endIndex - position else {
            throw QuixProtocolError(
                .inconsistentData, "the payload length says \(length) bytes, \(value.endIndex - position) follow", at: position - 4)
        }
        return TransportPackage(codec: codec, modelKey: modelKey, payload: value[position...], metadata: metadata, format: .binary)
    }

    static func isJSONContainer(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard let first = bytes.first, let last = bytes.last, bytes.count >= 2 else { return false }
        return (first == UInt8(ascii: "{") && last == UInt8(ascii: "}")) || (first == UInt8(ascii: "[") && last == UInt8(ascii: "]"))
    }

    private static func appendString(_ text: String, to bytes: inout [UInt8]) {
        var length = UInt32(text.utf8.count)
        while length >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: length) | 0x80)
            length >>= 7
        }
        bytes.append(UInt8(length))
        bytes.append(contentsOf: text.utf8)
    }

    private static func appendInt32(_ value: Int32, to bytes: inout [UInt8]) {
        let raw = UInt32(bitPattern: value)
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: raw >> UInt32(shift))) }
    }
}
