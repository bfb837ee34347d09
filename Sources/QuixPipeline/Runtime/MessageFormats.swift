import Foundation
import QuixStreams

/// The `json` and `raw` formats of pipeline inputs and outputs (`quix` is the 0.5 protocol).
///
/// - json: one JSON object per message (`JSONRowCodec`). A row: `timestamp` (ns since the Unix
///   epoch as a number, or an ISO-8601 text; the message's Kafka timestamp when absent), numbers
///   and booleans as numeric columns, texts as string columns, null as a missing cell, and
///   `tags`, an object of texts. An object with a text `event` is an event:
///   `{"event": "id", "tags": {…}, "timestamp": …, "value": "…"}`.
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
            case .unknown(let key, let codec, _): throw PipelineError(.malformedMessage, "a Quix envelope of unknown model \(key) (codec \(codec))")
            case .raw: throw PipelineError(.malformedMessage, "not a Quix 0.5 package: \(String(decoding: value.prefix(40), as: UTF8.self).debugDescription)")
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

    /// A `json` message (`JSONRowCodec`): a one-row frame or an event; a `timestamp` text is
    /// read as ISO-8601.
    public static func decodeJSON(_ value: ArraySlice<UInt8>, kafkaTimestampMilliseconds: Int64?) throws(PipelineError) -> DecodedMessage {
        do {
            return try JSONRowCodec.decode(value, kafkaTimestampMilliseconds: kafkaTimestampMilliseconds, parseTimestamp: timestamp)
        } catch {
            switch error.code {
            case .truncated, .unexpectedToken, .invalidUTF8:
                throw PipelineError(.malformedMessage, "not JSON (\(error)): \(String(decoding: value.prefix(80), as: UTF8.self))")
            default:
                throw PipelineError(.malformedMessage, error.detail)
            }
        }
    }

    /// One JSON object per row.
    public static func encodeJSON(_ frame: TimeseriesFrame) -> [[UInt8]] { JSONRowCodec.encode(frame) }

    public static func encodeJSON(_ event: EventData) -> [UInt8] { JSONRowCodec.encode(event) }

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
