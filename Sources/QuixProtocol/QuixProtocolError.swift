/// Why bytes could not be read as Quix Streams 0.5 data. Every decoding failure is one of
/// these, naming what was wrong and where; decoding never traps on input.
public struct QuixProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }

        /// The input ended inside a value.
        public static let truncated = Code(name: "truncated")
        /// A byte that cannot start or continue the expected JSON or binary element.
        public static let unexpectedToken = Code(name: "unexpectedToken")
        /// A member had the wrong JSON type (a string where an array belongs, ...).
        public static let wrongType = Code(name: "wrongType")
        /// A number did not fit (out of range, not an integer where one is needed).
        public static let invalidNumber = Code(name: "invalidNumber")
        /// Text that is not valid UTF-8.
        public static let invalidUTF8 = Code(name: "invalidUTF8")
        /// Text that is not standard base64.
        public static let invalidBase64 = Code(name: "invalidBase64")
        /// The envelope's S/E offsets do not point at its V value.
        public static let invalidOffsets = Code(name: "invalidOffsets")
        /// A required member is missing.
        public static let missingMember = Code(name: "missingMember")
        /// Columns of one timeseries packet disagree (length, delta runs past the end, ...).
        public static let inconsistentData = Code(name: "inconsistentData")
        /// A split part's header or size is impossible, or a message needs more than 255 parts.
        public static let invalidSplit = Code(name: "invalidSplit")
        /// An enum value (end type, event level) that does not exist.
        public static let unknownEnumValue = Code(name: "unknownEnumValue")
    }

    public var code: Code
    /// What was wrong, in words.
    public var detail: String
    /// Byte offset into the payload where it was found, when known.
    public var offset: Int?

    public init(_ code: Code, _ detail: String, at offset: Int? = nil) {
        self.code = code
        self.detail = detail
        self.offset = offset
    }

    public var description: String {
        "\(code): \(detail)" + (offset.map { " at byte \($0)" } ?? "")
    }
}
