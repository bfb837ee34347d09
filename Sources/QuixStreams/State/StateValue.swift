import Foundation

/// A value a stream's state holds: `Double`, `Int`, `Bool`, `String` and `[UInt8]` directly;
/// any `Codable` type through `StreamState.decode`/`encode`. Stored as a one-byte kind and the
/// value's bytes, so reading a value back as another type is a `typeMismatch` error.
public protocol StateValue: Sendable {
    static var stateKind: StateValueKind { get }
    /// The value's bytes, without the kind.
    var stateBytes: [UInt8] { get }
    /// The value from its bytes; nil if they are not a valid value of this type.
    init?(stateBytes: ArraySlice<UInt8>)
}

/// The kind byte in front of every stored value.
public enum StateValueKind: UInt8, Sendable, CustomStringConvertible {
    case double = 1, int = 2, bool = 3, string = 4, bytes = 5, json = 6

    public var description: String {
        switch self {
        case .double: "Double"
        case .int: "Int"
        case .bool: "Bool"
        case .string: "String"
        case .bytes: "bytes"
        case .json: "JSON (Codable)"
        }
    }
}

extension Double: StateValue {
    public static var stateKind: StateValueKind { .double }
    public var stateBytes: [UInt8] { withUnsafeBytes(of: bitPattern.littleEndian, Array.init) }
    public init?(stateBytes: ArraySlice<UInt8>) {
        guard let bits = UInt64(littleEndianBytes: stateBytes) else { return nil }
        self.init(bitPattern: bits)
    }
}

extension Int: StateValue {
    public static var stateKind: StateValueKind { .int }
    public var stateBytes: [UInt8] { withUnsafeBytes(of: Int64(self).littleEndian, Array.init) }
    public init?(stateBytes: ArraySlice<UInt8>) {
        guard let bits = UInt64(littleEndianBytes: stateBytes) else { return nil }
        self.init(Int64(bitPattern: bits))
    }
}

extension Bool: StateValue {
    public static var stateKind: StateValueKind { .bool }
    public var stateBytes: [UInt8] { [self ? 1 : 0] }
    public init?(stateBytes: ArraySlice<UInt8>) {
        guard stateBytes.count == 1, let byte = stateBytes.first, byte <= 1 else { return nil }
        self = byte == 1
    }
}

extension String: StateValue {
    public static var stateKind: StateValueKind { .string }
    public var stateBytes: [UInt8] { Array(utf8) }
    public init?(stateBytes: ArraySlice<UInt8>) { self.init(validating: stateBytes, as: UTF8.self) }
}

extension Array: StateValue where Element == UInt8 {
    public static var stateKind: StateValueKind { .bytes }
    public var stateBytes: [UInt8] { self }
    public init?(stateBytes: ArraySlice<UInt8>) { self = Array(stateBytes) }
}

extension UInt64 {
    fileprivate init?(littleEndianBytes bytes: ArraySlice<UInt8>) {
        guard bytes.count == 8 else { return nil }
        var value: UInt64 = 0
        for (index, byte) in bytes.enumerated() { value |= UInt64(byte) << (8 * index) }
        self = value
    }
}

/// A stored value: its kind and its bytes.
enum StoredValue {
    static func encode<Value: StateValue>(_ value: Value) -> [UInt8] {
        [Value.stateKind.rawValue] + value.stateBytes
    }

    static func encodeJSON<Value: Encodable>(_ value: Value) throws -> [UInt8] {
        [StateValueKind.json.rawValue] + Array(try JSONEncoder().encode(value))
    }

    /// The kind byte and the payload, or nil for an empty (invalid) record.
    static func split(_ bytes: [UInt8]) -> (kind: UInt8, payload: ArraySlice<UInt8>)? {
        guard let kind = bytes.first else { return nil }
        return (kind, bytes.dropFirst())
    }
}
