import Foundation
import QuixProtocol

/// Test fixtures shared by the test targets (never a product).
///
/// The golden vectors made by the real quixstreams 0.5.7 (`scripts/make-vectors.sh`), kept in the
/// repository as test fixtures (`Tests/Fixtures/vectors`), or where `QUIX_VECTORS` points.
public enum Vectors {
    public static let directory: URL = {
        if let path = ProcessInfo.processInfo.environment["QUIX_VECTORS"] { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Tests/Fixtures/vectors")
    }()

    public static let files = [
        "basic", "timeseries_variants", "buffer_packet_size", "buffer_time_span", "buffer_timeout", "buffer_default",
        "events", "multi_stream", "close_types", "split", "codec_json_explicit", "codec_compact_json", "codec_protobuf",
    ]

    /// One captured Kafka message.
    public struct Record {
        public var file: String
        public var partition: Int32
        public var offset: Int64
        public var key: [UInt8]?
        public var value: [UInt8]
    }

    /// A message after merging split parts: its value and the parts it came from.
    public struct Message {
        public var record: Record
        public var value: [UInt8]
        public var parts: [[UInt8]]
    }

    public static func records(_ file: String) throws -> [Record] {
        let text = try String(contentsOf: directory.appendingPathComponent("\(file).jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { line in
            let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let key = (json["key_b64"] as? String).flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) }
            return Record(
                file: file, partition: Int32(json["partition"] as! Int), offset: Int64(json["offset"] as! Int), key: key,
                value: [UInt8](Data(base64Encoded: json["value_b64"] as! String)!))
        }
    }

    /// The messages of a file, split parts merged, in capture order.
    public static func messages(_ file: String) throws -> [Message] {
        var merger = SplitMerger()
        var parts: [UInt32: [[UInt8]]] = [:]
        var messages: [Message] = []
        for record in try records(file) {
            if let header = MessageSplit.header(of: record.value[...]) { parts[header.messageID, default: []].append(record.value) }
            switch try merger.add(record.value[...], partition: record.partition, key: record.key, offset: record.offset) {
            case .whole: messages.append(Message(record: record, value: record.value, parts: [record.value]))
            case .pending: break
            case .merged(let bytes, _, _):
                let id = MessageSplit.header(of: record.value[...])!.messageID
                messages.append(Message(record: record, value: bytes, parts: parts.removeValue(forKey: id)!))
            }
        }
        return messages
    }

    /// The models of a file, with their stream ids, in order.
    public static func models(_ file: String) throws -> [(stream: String, model: QuixModel)] {
        try messages(file).map { message in
            guard case .model(let model) = try QuixCodec.decode(message.value[...]) else {
                throw QuixProtocolError(.wrongType, "\(file) offset \(message.record.offset) is no model")
            }
            return (QuixCodec.streamID(fromKey: message.record.key?[...]), model)
        }
    }

    /// The cases of `consumer_acceptance.json`: name → (key, values).
    public static func acceptanceCases() throws -> [String: (key: [UInt8]?, values: [[UInt8]])] {
        struct Case: Decodable {
            var key: String?
            var values_b64: [String]
        }
        let data = try Data(contentsOf: directory.appendingPathComponent("consumer_acceptance.json"))
        let decoder = JSONDecoder()
        decoder.allowsJSON5 = true  // Python wrote NaN into the recorded callbacks
        return try decoder.decode([String: Case].self, from: data).mapValues { entry in
            (entry.key.map { Array($0.utf8) }, entry.values_b64.map { [UInt8](Data(base64Encoded: $0)!) })
        }
    }
}
