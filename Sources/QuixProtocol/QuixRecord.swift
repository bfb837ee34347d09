import OrderedCollections

/// One decoded Kafka message in a form that reads and writes as one line of JSON, as
/// `quixd consume` prints and `quixd produce` reads. A model's value is its `JT` JSON (binary as
/// base64, non-finite numbers as strings), with the codec and envelope it came in, so that
/// writing the line back re-encodes it the same way:
///
///     {"stream":"car-1","partition":2,"offset":7,"timestamp":1700000000000,"codec":"JT",
///      "envelope":"json","model":"ParameterData","value":{"Timestamps":[...],...}}
///
/// An unknown (model, codec) pair has `"payload"` (base64) instead of `"value"`; a message that
/// is no package has `"raw"` (base64) and no model.
public struct QuixRecord: Sendable {
    public var stream: String
    public var partition: Int32?
    public var offset: Int64?
    /// Kafka timestamp in milliseconds.
    public var timestamp: Int64?
    /// Kafka messages this record was merged from (1 unless split).
    public var parts: Int
    public var message: DecodedMessage
    /// How a model was encoded (which codec carries timeseries data, which envelope).
    public var timeseriesCodec: TimeseriesCodec

    public init(
        stream: String, message: DecodedMessage, timeseriesCodec: TimeseriesCodec = .json, partition: Int32? = nil,
        offset: Int64? = nil, timestamp: Int64? = nil, parts: Int = 1
    ) {
        self.stream = stream
        self.message = message
        self.timeseriesCodec = timeseriesCodec
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.parts = parts
    }

    /// Decodes an assembled Kafka message.
    public init(_ package: PackageAssembler.Assembled) throws(QuixProtocolError) {
        stream = QuixCodec.streamID(fromKey: package.key?[...])
        partition = package.partition
        offset = package.offset
        timestamp = package.timestampMilliseconds
        parts = package.parts
        timeseriesCodec = .json
        switch try TransportPackage.decode(package.value) {
        case .raw:
            message = .raw(Array(package.value))
        case .package(let transport):
            message = try QuixCodec.decode(transport)
            timeseriesCodec =
                transport.format == .binary ? .protobuf : transport.codec == CodecID.compactJSON ? .compactJSON : .json
        }
    }

    /// The Kafka value(s) of this record: one, or the parts of a split package.
    public func kafkaValues(messageID: UInt32) throws(QuixProtocolError) -> [[UInt8]] {
        switch message.modelForm {
        case .raw(let bytes): return [bytes]
        case .frame: preconditionFailure("modelForm has no frames")
        case .unknown(let modelKey, let codec, let payload):
            let package = TransportPackage(
                codec: codec, modelKey: modelKey, payload: payload[...], format: timeseriesCodec == .protobuf ? .binary : .json)
            return try MessageSplit.split(package.encoded(), messageID: messageID)
        case .model(let model):
            return try MessageSplit.split(QuixCodec.encode(model, timeseriesCodec: timeseriesCodec), messageID: messageID)
        }
    }

    // MARK: JSON lines

    public func jsonLine() -> [UInt8] {
        var writer = JSONWriter()
        writer.beginObject()
        writer.key("stream"); writer.string(stream)
        if let partition { writer.key("partition"); writer.int64(Int64(partition)) }
        if let offset { writer.key("offset"); writer.int64(offset) }
        if let timestamp { writer.key("timestamp"); writer.int64(timestamp) }
        if parts > 1 { writer.key("parts"); writer.int64(Int64(parts)) }
        switch message.modelForm {
        case .model(let model):
            let package = QuixCodec.package(model, timeseriesCodec: timeseriesCodec)
            writer.key("codec"); writer.string(package.codec)
            writer.key("envelope"); writer.string(package.format == .binary ? "binary" : "json")
            writer.key("model"); writer.string(model.modelKey)
            writer.key("value"); writer.raw(TypedJSONCodec.encode(model))
        case .unknown(let modelKey, let codec, let payload):
            writer.key("codec"); writer.string(codec)
            writer.key("envelope"); writer.string(timeseriesCodec == .protobuf ? "binary" : "json")
            writer.key("model"); writer.string(modelKey)
            writer.key("payload"); writer.base64(payload)
        case .raw(let bytes):
            writer.key("raw"); writer.base64(bytes)
        case .frame:
            preconditionFailure("modelForm has no frames")
        }
        writer.endObject()
        return writer.bytes
    }

    /// Reads a line written by `jsonLine()` (or by hand: only `stream` and one of `value`, `payload`,
    /// `raw` are needed; `model` is needed with `value` and `payload`).
    public init(jsonLine: ArraySlice<UInt8>) throws(QuixProtocolError) {
        let line = try LineFields(jsonLine)
        let (codec, envelope, modelKey, value, payload, raw) = (line.codec, line.envelope, line.modelKey, line.value, line.payload, line.raw)
        guard let stream = line.stream else { throw QuixProtocolError(.missingMember, "a record without \"stream\"") }
        guard envelope == "json" || envelope == "binary" else {
            throw QuixProtocolError(.unknownEnumValue, "envelope \"\(envelope)\" (json or binary)")
        }
        self.stream = stream
        self.partition = line.partition
        self.offset = line.offset
        self.timestamp = line.timestamp
        self.parts = line.parts
        if let raw {
            message = .raw(raw)
            timeseriesCodec = .json
            return
        }
        guard let modelKey else { throw QuixProtocolError(.missingMember, "a record without \"model\" or \"raw\"") }
        if let payload {
            message = .unknown(modelKey: modelKey, codec: codec ?? "", payload: payload)
            timeseriesCodec = envelope == "binary" ? .protobuf : .json
            return
        }
        guard let value else { throw QuixProtocolError(.missingMember, "a \(modelKey) record without \"value\"") }
        let transport = TransportPackage(codec: CodecID.typedJSON, modelKey: modelKey, payload: value)
        switch try QuixCodec.decode(transport) {
        case .model(let model): message = .model(model)
        default: throw QuixProtocolError(.unknownEnumValue, "model \"\(modelKey)\" has no JSON form; write it with \"payload\"")
        }
        switch (codec ?? CodecID.typedJSON, envelope) {
        case (CodecID.protobuf, _), (_, "binary"): timeseriesCodec = .protobuf
        case (CodecID.compactJSON, _): timeseriesCodec = .compactJSON
        default: timeseriesCodec = .json
        }
    }
}

/// The members of one JSON line, as read.
private struct LineFields {
    var stream: String?
    var codec: String?
    var envelope = "json"
    var modelKey: String?
    var value: ArraySlice<UInt8>?
    var payload: [UInt8]?
    var raw: [UInt8]?
    var partition: Int32?
    var offset: Int64?
    var timestamp: Int64?
    var parts = 1

    init(_ jsonLine: ArraySlice<UInt8>) throws(QuixProtocolError) {
        self = try JSONReader.read(jsonLine) { reader throws(QuixProtocolError) in
            var line = LineFields()
            try reader.readObject { reader, member throws(QuixProtocolError) in
                switch member {
                case "stream": line.stream = try reader.readString()
                case "partition":
                    let start = reader.position
                    let number = try reader.readInt64()
                    guard let narrowed = Int32(exactly: number) else { throw QuixProtocolError(.invalidNumber, "partition \(number)", at: start) }
                    line.partition = narrowed
                case "offset": line.offset = try reader.readInt64()
                case "timestamp": line.timestamp = try reader.readInt64()
                case "parts": line.parts = Int(clamping: try reader.readInt64())
                case "codec": line.codec = try reader.readString()
                case "envelope": line.envelope = try reader.readString()
                case "model": line.modelKey = try reader.readOptionalString()
                case "value": line.value = jsonLine[try reader.rangeOfValue()]
                case "payload":
                    let start = reader.position
                    line.payload = try Base64.decode(Array(try reader.readString().utf8)[...], offset: start + 1)
                case "raw":
                    let start = reader.position
                    line.raw = try Base64.decode(Array(try reader.readString().utf8)[...], offset: start + 1)
                default: try reader.skipValue()
                }
            }
            try reader.expectEnd()
            return line
        }
    }

    private init() {}
}
