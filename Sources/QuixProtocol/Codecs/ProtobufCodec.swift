import OrderedCollections

/// Codec `PB-Pd`, timeseries only: the proto3 message `TimeseriesDataRawProto` (SPEC 6.3).
/// Every column carries one `isnull` flag and one value per row; a null cell holds a placeholder.
/// Written as the reference writes it (packed scalars); read in packed or unpacked form.
enum ProtobufCodec {
    static func encode(_ data: TimeseriesData) -> [UInt8] {
        var out = ProtobufWriter()
        if data.epoch != 0 { out.varintField(1, UInt64(bitPattern: data.epoch)) }
        if !data.timestamps.isEmpty {
            out.packed(2) { body in for timestamp in data.timestamps { body.varint(UInt64(bitPattern: timestamp)) } }
        }
        for (name, column) in data.numericValues {
            out.message(3) { column_ in
                column_.stringField(1, name)
                column_.packed(2) { body in for cell in column { body.varint(cell == nil ? 1 : 0) } }
                column_.packed(3) { body in for cell in column { body.fixed64((cell ?? 0).bitPattern) } }
            }
        }
        for (field, columns) in [(UInt64(4), data.stringValues), (6, data.tagValues)] {
            for (name, column) in columns {
                out.message(field) { column_ in
                    column_.stringField(1, name)
                    column_.packed(2) { body in for cell in column { body.varint(cell == nil ? 1 : 0) } }
                    for cell in column { column_.stringField(3, cell ?? "") }
                }
            }
            if field == 4 {
                for (name, column) in data.binaryValues {
                    out.message(5) { column_ in
                        column_.stringField(1, name)
                        column_.packed(2) { body in for cell in column { body.varint(cell == nil ? 1 : 0) } }
                        for cell in column { column_.bytesField(3, cell ?? []) }
                    }
                }
            }
        }
        return out.bytes
    }

    static func decode(_ payload: ArraySlice<UInt8>) throws(QuixProtocolError) -> TimeseriesData {
        var data = TimeseriesData()
        var reader = ProtobufReader(payload)
        while let (field, wireType) = try reader.nextField() {
            switch field {
            case 1: data.epoch = Int64(bitPattern: try reader.varint(wireType))
            case 2: try reader.repeatedVarints(wireType) { data.timestamps.append(Int64(bitPattern: $0)) }
            case 3:
                let (name, nulls, body) = try column(&reader, wireType)
                var values: [Double] = []
                var inner = ProtobufReader(body)
                while let (field, wireType) = try inner.nextField() {
                    if field == 3 { try inner.repeatedFixed64(wireType) { values.append(Double(bitPattern: $0)) } } else { try inner.skip(wireType) }
                }
                data.numericValues[name] = try merge(name, values, nulls)
            case 4, 5, 6:
                let (name, nulls, body) = try column(&reader, wireType)
                var values: [ArraySlice<UInt8>] = []
                var inner = ProtobufReader(body)
                while let (innerField, innerType) = try inner.nextField() {
                    if innerField == 3 { values.append(try inner.lengthDelimited(innerType)) } else { try inner.skip(innerType) }
                }
                if field == 5 {
                    data.binaryValues[name] = try merge(name, values.map { Array($0) }, nulls)
                } else {
                    var strings: [String] = []
                    for value in values {
                        guard let text = String(validating: value, as: UTF8.self) else {
                            throw QuixProtocolError(.invalidUTF8, "a string in column \"\(name)\" is not valid UTF-8", at: value.startIndex)
                        }
                        strings.append(text)
                    }
                    let column = try merge(name, strings, nulls)
                    if field == 4 { data.stringValues[name] = column } else { data.tagValues[name] = column }
                }
            default: try reader.skip(wireType)
            }
        }
        try data.validate()
        return data
    }

    /// Reads a column message's header and null flags; returns the message body for its values.
    private static func column(
        _ reader: inout ProtobufReader, _ wireType: UInt8
    ) throws(QuixProtocolError) -> (String, [Bool], ArraySlice<UInt8>) {
        let body = try reader.lengthDelimited(wireType)
        var inner = ProtobufReader(body)
        var name = ""
        var nulls: [Bool] = []
        while let (field, wireType) = try inner.nextField() {
            switch field {
            case 1:
                let bytes = try inner.lengthDelimited(wireType)
                guard let text = String(validating: bytes, as: UTF8.self) else {
                    throw QuixProtocolError(.invalidUTF8, "a column name is not valid UTF-8", at: bytes.startIndex)
                }
                name = text
            case 2: try inner.repeatedVarints(wireType) { nulls.append($0 != 0) }
            default: try inner.skip(wireType)
            }
        }
        return (name, nulls, body)
    }

    private static func merge<Value>(_ name: String, _ values: [Value], _ nulls: [Bool]) throws(QuixProtocolError) -> [Value?] {
        guard nulls.isEmpty || nulls.count == values.count else {
            throw QuixProtocolError(.inconsistentData, "column \"\(name)\" has \(values.count) values and \(nulls.count) null flags")
        }
        return values.indices.map { nulls.isEmpty || !nulls[$0] ? values[$0] : nil }
    }
}

/// The few protobuf wire primitives `PB-Pd` needs.
struct ProtobufWriter {
    var bytes: [UInt8] = []

    mutating func varint(_ value: UInt64) {
        var value = value
        while value >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: value) | 0x80)
            value >>= 7
        }
        bytes.append(UInt8(value))
    }

    mutating func fixed64(_ value: UInt64) {
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
    }

    mutating func tag(_ field: UInt64, _ wireType: UInt64) { varint(field << 3 | wireType) }

    mutating func varintField(_ field: UInt64, _ value: UInt64) {
        tag(field, 0)
        varint(value)
    }

    mutating func bytesField<C: Collection<UInt8>>(_ field: UInt64, _ value: C) {
        tag(field, 2)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    mutating func stringField(_ field: UInt64, _ value: String) { bytesField(field, Array(value.utf8)) }

    mutating func packed(_ field: UInt64, _ body: (inout ProtobufWriter) -> Void) {
        var inner = ProtobufWriter()
        body(&inner)
        bytesField(field, inner.bytes)
    }

    mutating func message(_ field: UInt64, _ body: (inout ProtobufWriter) -> Void) { packed(field, body) }
}

struct ProtobufReader {
    private let bytes: ArraySlice<UInt8>
    private var position: Int

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    mutating func nextField() throws(QuixProtocolError) -> (UInt64, UInt8)? {
        guard position < bytes.endIndex else { return nil }
        let key = try rawVarint()
        let wireType = UInt8(key & 7)
        guard key >> 3 > 0 else { throw QuixProtocolError(.unexpectedToken, "protobuf field number 0", at: position) }
        return (key >> 3, wireType)
    }

    mutating func varint(_ wireType: UInt8) throws(QuixProtocolError) -> UInt64 {
        guard wireType == 0 else { throw wrongWireType(wireType, expected: 0) }
        return try rawVarint()
    }

    mutating func lengthDelimited(_ wireType: UInt8) throws(QuixProtocolError) -> ArraySlice<UInt8> {
        guard wireType == 2 else { throw wrongWireType(wireType, expected: 2) }
        let length = try rawVarint()
        guard length <= UInt64(bytes.endIndex - position) else {
            throw QuixProtocolError(.truncated, "a protobuf field of \(length) bytes runs past the end", at: position)
        }
        defer { position += Int(length) }
        return bytes[position..<(position + Int(length))]
    }

    mutating func repeatedVarints(_ wireType: UInt8, _ each: (UInt64) -> Void) throws(QuixProtocolError) {
        if wireType == 0 { return each(try rawVarint()) }
        var inner = ProtobufReader(try lengthDelimited(wireType))
        while inner.position < inner.bytes.endIndex { each(try inner.rawVarint()) }
    }

    mutating func repeatedFixed64(_ wireType: UInt8, _ each: (UInt64) -> Void) throws(QuixProtocolError) {
        if wireType == 1 { return each(try rawFixed64()) }
        let body = try lengthDelimited(wireType)
        guard body.count % 8 == 0 else {
            throw QuixProtocolError(.inconsistentData, "packed doubles of \(body.count) bytes", at: body.startIndex)
        }
        var inner = ProtobufReader(body)
        while inner.position < inner.bytes.endIndex { each(try inner.rawFixed64()) }
    }

    mutating func skip(_ wireType: UInt8) throws(QuixProtocolError) {
        switch wireType {
        case 0: _ = try rawVarint()
        case 1: _ = try rawFixed64()
        case 2: _ = try lengthDelimited(wireType)
        case 5:
            guard bytes.endIndex - position >= 4 else { throw QuixProtocolError(.truncated, "a fixed32 runs past the end", at: position) }
            position += 4
        default: throw QuixProtocolError(.unexpectedToken, "protobuf wire type \(wireType)", at: position)
        }
    }

    private mutating func rawVarint() throws(QuixProtocolError) -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < bytes.endIndex else { throw QuixProtocolError(.truncated, "a protobuf varint runs past the end", at: position) }
            let byte = bytes[position]
            position += 1
            guard shift < 64 else { throw QuixProtocolError(.invalidNumber, "a protobuf varint longer than 10 bytes", at: position) }
            value |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return value }
            shift += 7
        }
    }

    private mutating func rawFixed64() throws(QuixProtocolError) -> UInt64 {
        guard bytes.endIndex - position >= 8 else { throw QuixProtocolError(.truncated, "a fixed64 runs past the end", at: position) }
        var value: UInt64 = 0
        for index in 0..<8 { value |= UInt64(bytes[position + index]) << UInt64(8 * index) }
        position += 8
        return value
    }

    private func wrongWireType(_ wireType: UInt8, expected: UInt8) -> QuixProtocolError {
        QuixProtocolError(.wrongType, "protobuf wire type \(wireType) where \(expected) belongs", at: position)
    }
}
