import OrderedCollections

/// quixd's `json` message format: one flat JSON object per message, read with the project's own
/// JSON reader (bounded depth, never trusting its input) and written with its writer.
///
/// A row: `timestamp` (ns since the Unix epoch as an integer, or a text the caller parses; the
/// Kafka timestamp when absent or null), numbers and booleans as numeric cells, texts as string
/// cells, null as a missing cell, and `tags`, an object of texts. An object with a text `event`
/// is an event: `{"event": "id", "tags": {…}, "timestamp": …, "value": …}`, whose value is the
/// text, or the JSON text of any other value. Members are written in name order.
public enum JSONRowCodec {
    private enum Cell {
        case null
        case number(Double, text: Range<Int>)
        case text(String)
        /// An object or array (only an event's value may be one).
        case json(Range<Int>)
    }

    /// A one-row frame, or an event.
    /// - Parameter parseTimestamp: reads a `timestamp` given as text (ISO-8601, say).
    public static func decode(
        _ value: ArraySlice<UInt8>, kafkaTimestampMilliseconds: Int64?, parseTimestamp: (String) -> Int64?
    ) throws(QuixProtocolError) -> DecodedMessage {
        var timestamp: Int64?
        var tags: [String: String] = [:]
        var cells: [String: Cell] = [:]
        try JSONReader.read(value) { reader throws(QuixProtocolError) in
            guard try reader.peekKind() == .object else {
                throw QuixProtocolError(.wrongType, "expected a JSON object, found \(try reader.peekKind())", at: reader.position)
            }
            try reader.readObject { reader, name throws(QuixProtocolError) in
                switch name {
                case "timestamp": timestamp = try readTimestamp(&reader, parseTimestamp)
                case "tags": tags = try readTags(&reader)
                default: cells[name] = try readCell(&reader)
                }
            }
            try reader.expectEnd()
        }
        guard let timestamp = timestamp ?? kafkaTimestampMilliseconds.map({ $0 * 1_000_000 }) else {
            throw QuixProtocolError(.missingMember, "no \"timestamp\" and no Kafka timestamp")
        }
        let sortedTags = OrderedDictionary(uniqueKeysWithValues: tags.sorted { $0.key < $1.key })
        if case .text(let id) = cells["event"] {
            let text: String
            switch cells["value"] {
            case nil, .null: text = ""
            case .text(let value): text = value
            case .number(_, let range), .json(let range): text = String(decoding: value[range], as: UTF8.self)
            }
            return .model(.eventData([EventData(id: id, timestamp: timestamp, value: text, tags: sortedTags)]))
        }
        var frame = TimeseriesFrame(timestamps: [timestamp])
        for (name, cell) in cells.sorted(by: { $0.key < $1.key }) {
            switch cell {
            case .null: frame[name] = NumericColumn([nil])
            case .number(let number, _): frame[name] = NumericColumn(values: [number])
            case .text(let text): frame.setStrings(name, [text])
            case .json: throw QuixProtocolError(.wrongType, "\"\(name)\" must be a number, a boolean, a text or null")
            }
        }
        for (name, tag) in sortedTags { frame.setTags(name, [tag]) }
        return .frame(frame)
    }

    private static func readTimestamp(_ reader: inout JSONReader, _ parse: (String) -> Int64?) throws(QuixProtocolError) -> Int64? {
        switch try reader.peekKind() {
        case .null:
            try reader.readNull()
            return nil
        case .number:
            return try reader.readInt64()
        case .string:
            let start = reader.position
            let text = try reader.readString()
            guard let parsed = parse(text) else {
                throw QuixProtocolError(.wrongType, "\"timestamp\": \"\(text.prefix(40))\" is not ISO-8601 or ns", at: start)
            }
            return parsed
        default:
            throw QuixProtocolError(.wrongType, "\"timestamp\" must be a number of ns or an ISO-8601 text", at: reader.position)
        }
    }

    private static func readTags(_ reader: inout JSONReader) throws(QuixProtocolError) -> [String: String] {
        guard try reader.peekKind() == .object else {
            throw QuixProtocolError(.wrongType, "\"tags\" must be an object of texts", at: reader.position)
        }
        var tags: [String: String] = [:]
        try reader.readObject { reader, name throws(QuixProtocolError) in
            guard try reader.peekKind() == .string else {
                throw QuixProtocolError(.wrongType, "tag \"\(name)\" must be a text", at: reader.position)
            }
            tags[name] = try reader.readString()
        }
        return tags
    }

    private static func readCell(_ reader: inout JSONReader) throws(QuixProtocolError) -> Cell {
        switch try reader.peekKind() {
        case .null:
            try reader.readNull()
            return .null
        case .bool:
            let start = reader.position
            let flag = try reader.readBool()
            return .number(flag ? 1 : 0, text: start..<reader.position)
        case .number:
            let start = reader.position
            let number = try reader.readDouble()
            return .number(number, text: start..<reader.position)
        case .string:
            return .text(try reader.readString())
        case .object, .array:
            return .json(try reader.rangeOfValue())
        }
    }

    // MARK: Writing

    private enum Member {
        case timestamp, tags
        case numeric(NumericColumn)
        case strings([String?])
        case binary([[UInt8]?])
    }

    /// One JSON object per row; binary cells as base64 texts, missing cells as null.
    public static func encode(_ frame: TimeseriesFrame) -> [[UInt8]] {
        var members: [(name: String, member: Member)] = [("timestamp", .timestamp)]
        if !frame.tags.isEmpty { members.append(("tags", .tags)) }
        for (name, column) in frame.numeric where name != "timestamp" && name != "tags" { members.append((name, .numeric(column))) }
        for (name, column) in frame.strings where name != "timestamp" && name != "tags" { members.append((name, .strings(column))) }
        for (name, column) in frame.binary where name != "timestamp" && name != "tags" { members.append((name, .binary(column))) }
        members.sort { $0.name < $1.name }
        let sortedTags = frame.tags.sorted { $0.key < $1.key }
        return (0..<frame.rowCount).map { row in
            var writer = JSONWriter(capacity: 32 * members.count)
            writer.beginObject()
            for (name, member) in members {
                switch member {
                case .timestamp:
                    writer.key("timestamp")
                    writer.int64(frame.timestamps[row])
                case .tags:
                    let present = sortedTags.filter { $0.value[row] != nil }
                    guard !present.isEmpty else { continue }
                    writer.key("tags")
                    writer.beginObject()
                    for (tag, column) in present {
                        writer.key(tag)
                        writer.string(column[row]!)
                    }
                    writer.endObject()
                case .numeric(let column):
                    writer.key(name)
                    writer.optionalDouble(column[row])
                case .strings(let column):
                    writer.key(name)
                    writer.optionalString(column[row])
                case .binary(let column):
                    writer.key(name)
                    if let bytes = column[row] { writer.base64(bytes) } else { writer.null() }
                }
            }
            writer.endObject()
            return writer.bytes
        }
    }

    /// `{"event": id, "tags": {…}, "timestamp": ns, "value": text}` (tags only when there are some).
    public static func encode(_ event: EventData) -> [UInt8] {
        var writer = JSONWriter(capacity: 64 + event.value.utf8.count)
        writer.beginObject()
        writer.key("event")
        writer.string(event.id)
        if !event.tags.isEmpty {
            writer.key("tags")
            writer.beginObject()
            for (name, value) in event.tags.sorted(by: { $0.key < $1.key }) {
                writer.key(name)
                writer.string(value)
            }
            writer.endObject()
        }
        writer.key("timestamp")
        writer.int64(event.timestamp)
        writer.key("value")
        writer.string(event.value)
        writer.endObject()
        return writer.bytes
    }
}
