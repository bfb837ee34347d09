import Foundation
import QuixStreams

/// The `json` and `raw` formats of pipeline inputs and outputs (`quix` is the 0.5 protocol).
///
/// - json: one JSON object per message. A row: `timestamp` (ns since the Unix epoch as a
///   number, or an ISO-8601 text; the message's Kafka timestamp when absent), numbers and
///   booleans as numeric columns, texts as string columns, null as a missing cell, and `tags`,
///   an object of texts. An object with a text `event` is an event:
///   `{"timestamp": …, "event": "id", "value": "…", "tags": {…}}`.
/// - raw: the message's bytes as a one-row frame with the binary column `value`, at the
///   message's Kafka timestamp; written back as the `value` column's bytes (or a string
///   column's text), and events as their value's text.
public enum MessageFormats {
    /// The decoder a topic consumer uses for an input format.
    public static func decoder(for format: Pipeline.DataFormat) -> MessageDecoder {
        switch format {
        case .quix: { value, _ in
            // A pipeline reading the Quix format cannot process other data: it is an error, where
            // the library hands it on as an event.
            let message = try QuixCodec.decodeFrame(value)
            switch message {
            case .model, .frame: return message
            case .unknown(let key, let codec, _): throw FormatError("a Quix envelope of unknown model \(key) (codec \(codec))")
            case .raw: throw FormatError("not a Quix 0.5 package: \(String(decoding: value.prefix(40), as: UTF8.self).debugDescription)")
            }
        }
        case .json: { value, timestamp in try decodeJSON(value, kafkaTimestampMilliseconds: timestamp) }
        case .raw: { value, timestamp in
            var data = TimeseriesData(timestamps: [(timestamp ?? 0) * 1_000_000])
            data.binaryValues["value"] = [Array(value)]
            return .model(.timeseries(data))
        }
        }
    }

    // MARK: JSON

    public static func decodeJSON(_ value: ArraySlice<UInt8>, kafkaTimestampMilliseconds: Int64?) throws(FormatError) -> DecodedMessage {
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(value), options: [.fragmentsAllowed])
        } catch {
            throw FormatError("not JSON: \(String(decoding: value.prefix(80), as: UTF8.self))")
        }
        guard let object = parsed as? [String: Any] else { throw FormatError("expected a JSON object, found \(type(of: parsed))") }
        let timestamp: Int64
        switch object["timestamp"] {
        case nil, is NSNull:
            guard let kafka = kafkaTimestampMilliseconds else { throw FormatError("no \"timestamp\" and no Kafka timestamp") }
            timestamp = kafka * 1_000_000
        case let number as NSNumber:
            timestamp = number.int64Value
        case let text as String:
            guard let parsed = Self.timestamp(text) else { throw FormatError("\"timestamp\": \"\(text)\" is not ISO-8601 or ns") }
            timestamp = parsed
        default:
            throw FormatError("\"timestamp\" must be a number of ns or an ISO-8601 text")
        }
        var tags: OrderedDictionary<String, String> = [:]
        if let tagValues = object["tags"] {
            guard let tagObject = tagValues as? [String: Any] else { throw FormatError("\"tags\" must be an object of texts") }
            for key in tagObject.keys.sorted() {
                guard let text = tagObject[key] as? String else { throw FormatError("tag \"\(key)\" must be a text") }
                tags[key] = text
            }
        }
        if let id = object["event"] as? String {
            let value = object["value"].map { $0 as? String ?? "\($0)" } ?? ""
            return .model(.eventData([EventData(id: id, timestamp: timestamp, value: value, tags: tags)]))
        }
        var data = TimeseriesData(timestamps: [timestamp])
        for key in object.keys.sorted() where key != "timestamp" && key != "tags" {
            switch object[key] {
            case is NSNull:
                data.numericValues[key] = [nil]
            case let number as NSNumber:
                data.numericValues[key] = [number.doubleValue]
            case let text as String:
                data.stringValues[key] = [text]
            default:
                throw FormatError("\"\(key)\" must be a number, a boolean, a text or null")
            }
        }
        for (key, value) in tags { data.tagValues[key] = [value] }
        return .model(.timeseries(data))
    }

    /// One JSON object per row.
    public static func encodeJSON(_ frame: TimeseriesFrame) -> [[UInt8]] {
        (0..<frame.rowCount).map { row in
            var object: [String: Any] = ["timestamp": frame.timestamps[row]]
            for (name, column) in frame.numeric { object[name] = column[row].map { $0 as Any } ?? NSNull() }
            for (name, column) in frame.strings { object[name] = column[row].map { $0 as Any } ?? NSNull() }
            for (name, column) in frame.binary { object[name] = column[row].map { Data($0).base64EncodedString() as Any } ?? NSNull() }
            let tags = frame.tags.compactMapValues { $0[row] }
            if !tags.isEmpty { object["tags"] = Dictionary(uniqueKeysWithValues: tags.map { ($0.key, $0.value) }) }
            return serialize(object)
        }
    }

    public static func encodeJSON(_ event: EventData) -> [UInt8] {
        var object: [String: Any] = ["timestamp": event.timestamp, "event": event.id, "value": event.value]
        if !event.tags.isEmpty { object["tags"] = Dictionary(uniqueKeysWithValues: event.tags.map { ($0.key, $0.value) }) }
        return serialize(object)
    }

    private static func serialize(_ object: [String: Any]) -> [UInt8] {
        // Every value is a number, text, null or an object of texts: serialization cannot fail.
        Array((try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8))
    }

    // MARK: Raw

    /// Each row's bytes: the `value` binary column, else the first binary or string column.
    public static func encodeRaw(_ frame: TimeseriesFrame) -> [[UInt8]?] {
        let binary = frame.binary["value"] ?? frame.binary.values.first
        let strings = binary == nil ? frame.strings["value"] ?? frame.strings.values.first : nil
        return (0..<frame.rowCount).map { row in
            if let binary { return binary[row] }
            if let strings { return strings[row].map { Array($0.utf8) } }
            return nil
        }
    }

    /// ns since the epoch from an integer, or from ISO-8601 text (`2026-11-25T10:00:00.123456Z`,
    /// read to the microsecond, the precision a `Date` keeps for today's dates).
    public static func timestamp(_ text: String) -> Int64? {
        if let nanoseconds = Int64(text) { return nanoseconds }
        let date =
            (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text))
            ?? (try? Date.ISO8601FormatStyle().parse(text))
        return date.map { Int64(($0.timeIntervalSince1970 * 1e6).rounded()) * 1_000 }
    }
}

/// A message that is not in the format its input declares.
public struct FormatError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}
