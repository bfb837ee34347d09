/// How timeseries data is written; the reference's process-wide codec setting.
public enum TimeseriesCodec: String, Sendable, Hashable, CaseIterable {
    /// `JT` in a JSON envelope: the default.
    case json
    /// `JT-PaDa-1` in a JSON envelope ("CompactJsonForBetterPerformance").
    case compactJSON
    /// `PB-Pd`, and every envelope binary.
    case protobuf
}

/// What one Kafka message (merged, when split) carries.
public enum DecodedMessage: Sendable, Hashable {
    case model(QuixModel)
    /// Time-series data as a frame (from `QuixCodec.decodeFrame`): epoch folded into the
    /// timestamps, values read straight into the columns.
    case frame(TimeseriesFrame)
    /// A valid envelope whose (model key, codec) pair is unknown. The reference hands its
    /// payload on as a raw event; it is surfaced here, never dropped silently.
    case unknown(modelKey: String, codec: String, payload: [UInt8])
    /// Not a Quix package (plain data, or a JSON envelope without V/S/E): the whole value.
    case raw([UInt8])
}

extension DecodedMessage {
    /// The message with a frame as the `TimeseriesData` model it carries.
    public var modelForm: DecodedMessage {
        if case .frame(let frame) = self { return .model(.timeseries(frame.timeseriesData)) }
        return self
    }
}

/// Reads and writes Kafka keys and values in the Quix Streams 0.5 format.
public enum QuixCodec {
    /// The key of keep-alive messages, which carry nothing and are dropped on read.
    public static let keepAliveKey = "___KA___"
    /// The stream of messages without a key.
    public static let noStreamID = "NO_STREAM_ID"

    /// The stream id of a Kafka key, as the reference reads it: UTF-8, `/` and `\` become `-`.
    public static func streamID(fromKey key: ArraySlice<UInt8>?) -> String {
        guard let key else { return noStreamID }
        guard key.contains(where: { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") }) else {
            return String(decoding: key, as: UTF8.self)  // the usual case: nothing to replace
        }
        return String(decoding: key.map { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") ? UInt8(ascii: "-") : $0 }, as: UTF8.self)
    }

    /// Decodes one whole (merged) Kafka value.
    public static func decode(_ value: ArraySlice<UInt8>) throws(QuixProtocolError) -> DecodedMessage {
        switch try TransportPackage.decode(value) {
        case .raw: return .raw(Array(value))
        case .package(let package): return try decode(package)
        }
    }

    /// Decodes one whole (merged) Kafka value, time-series data as a frame read straight into its
    /// columns: what streams and pipelines work on. Other models come as `decode` gives them.
    public static func decodeFrame(_ value: ArraySlice<UInt8>) throws(QuixProtocolError) -> DecodedMessage {
        let canonical: TimeseriesFrame? = value.withUnsafeBufferPointer { buffer in
            guard let payload = TimeseriesFrameCodec.canonicalPayload(of: buffer, modelKey: "ParameterData")
                ?? TimeseriesFrameCodec.canonicalPayload(of: buffer, modelKey: "TimeseriesData")
            else { return nil }
            return TimeseriesFrameCodec.decodeCanonical(UnsafeBufferPointer(rebasing: buffer[payload]))
        }
        if let canonical { return .frame(canonical) }
        let message = try decode(value)
        if case .model(.timeseries(let data)) = message { return .frame(TimeseriesFrame(data)) }
        return message
    }

    /// Decodes a package's payload by its (model key, codec) pair.
    public static func decode(_ package: TransportPackage) throws(QuixProtocolError) -> DecodedMessage {
        let payload = package.payload
        switch (package.modelKey, package.codec) {
        case (ModelKey.parameterData, CodecID.typedJSON), (ModelKey.timeseriesData, CodecID.typedJSON):
            return .model(.timeseries(try TypedJSONCodec.decodeTimeseries(payload)))
        case (ModelKey.parameterData, CodecID.compactJSON), (ModelKey.timeseriesData, CodecID.compactJSON):
            return .model(.timeseries(try CompactJSONCodec.decode(payload)))
        case (ModelKey.parameterData, CodecID.protobuf), (ModelKey.timeseriesData, CodecID.protobuf):
            return .model(.timeseries(try ProtobufCodec.decode(payload)))
        case (ModelKey.streamProperties, CodecID.typedJSON):
            return .model(.streamProperties(try TypedJSONCodec.decodeStreamProperties(payload)))
        case (ModelKey.parameterDefinitions, CodecID.typedJSON):
            return .model(.parameterDefinitions(try TypedJSONCodec.decodeParameterDefinitions(payload)))
        case (ModelKey.eventData, CodecID.typedJSON), ("List`1", CodecID.typedJSON):
            return .model(.eventData(try TypedJSONCodec.decodeEventData(payload)))
        case (ModelKey.eventDefinitions, CodecID.typedJSON):
            return .model(.eventDefinitions(try TypedJSONCodec.decodeEventDefinitions(payload)))
        case (ModelKey.streamEnd, CodecID.typedJSON):
            return .model(.streamEnd(try TypedJSONCodec.decodeStreamEnd(payload)))
        default:
            return .unknown(modelKey: package.modelKey, codec: package.codec, payload: Array(payload))
        }
    }

    /// The package of a model, as the reference writes it with the given codec setting.
    public static func package(_ model: QuixModel, timeseriesCodec: TimeseriesCodec = .json) -> TransportPackage {
        let format: TransportPackage.Format = timeseriesCodec == .protobuf ? .binary : .json
        switch model {
        case .timeseries(let data) where timeseriesCodec == .compactJSON:
            return TransportPackage(codec: CodecID.compactJSON, modelKey: ModelKey.parameterData, payload: CompactJSONCodec.encode(data)[...])
        case .timeseries(let data) where timeseriesCodec == .protobuf:
            return TransportPackage(
                codec: CodecID.protobuf, modelKey: ModelKey.parameterData, payload: ProtobufCodec.encode(data)[...], format: .binary)
        default:
            return TransportPackage(
                codec: CodecID.typedJSON, modelKey: model.modelKey, payload: TypedJSONCodec.encode(model)[...], format: format)
        }
    }

    /// The envelope bytes of a ParameterData package of a frame's rows (before splitting),
    /// written straight from its columns with the JSON codec.
    public static func encode(_ frame: TimeseriesFrame, timeseriesCodec: TimeseriesCodec = .json) -> [UInt8] {
        guard timeseriesCodec == .json else { return encode(.timeseries(frame.timeseriesData), timeseriesCodec: timeseriesCodec) }
        return TimeseriesFrameCodec.encodeMessage(frame)
    }

    /// The envelope bytes of a model (before splitting).
    public static func encode(_ model: QuixModel, timeseriesCodec: TimeseriesCodec = .json) -> [UInt8] {
        package(model, timeseriesCodec: timeseriesCodec).encoded()
    }
}
