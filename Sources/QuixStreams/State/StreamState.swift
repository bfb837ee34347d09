import Foundation
import QuixState

/// Why a state operation failed.
public struct StreamStateError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }
        /// The value was stored as another type.
        public static let typeMismatch = Code(name: "typeMismatch")
        /// The stored bytes are not a valid value of their kind.
        public static let corrupt = Code(name: "corrupt")
        /// The topic consumer has no state directory.
        public static let notConfigured = Code(name: "notConfigured")
        /// The state store failed (see `underlying`).
        public static let storage = Code(name: "storage")
    }

    public var code: Code
    public var detail: String
    public var underlying: StateError?

    init(_ code: Code, _ detail: String, underlying: StateError? = nil) {
        self.code = code
        self.detail = detail
        self.underlying = underlying
    }

    public var description: String { "\(code): \(detail)" + (underlying.map { " (\($0))" } ?? "") }
}

/// The state of one stream in one store: a dictionary of keys to numbers, strings, bytes,
/// booleans or Codable values, kept in the partition's LMDB environment and checkpointed with
/// the offsets of the packages that changed it.
///
///     let sums = try stream.state("sums")
///     try sums.update("gForceX", default: 0.0) { $0 += value }
///
/// Changes are visible at once and durable at the next checkpoint (a commit of the topic
/// consumer). Changes made by a package whose handler throws are rolled back.
public struct StreamState: Sendable {
    let partition: PartitionState
    public let store: String
    public let streamID: String
    /// Keys are the stream id's length (2 bytes), the stream id, then the key: a stream's keys
    /// share a prefix no other stream's keys start with.
    let prefix: [UInt8]

    init(partition: PartitionState, store: String, streamID: String) {
        self.partition = partition
        self.store = store
        self.streamID = streamID
        prefix = Self.prefix(of: streamID)
    }

    /// The bytes every key of `streamID` starts with.
    static func prefix(of streamID: String) -> [UInt8] {
        let length = streamID.utf8.count
        var prefix: [UInt8] = []
        prefix.reserveCapacity(2 + length)
        prefix.append(UInt8(length >> 8))
        prefix.append(UInt8(length & 0xFF))
        prefix.append(contentsOf: streamID.utf8)
        return prefix
    }

    /// The bytes of `key` in this stream's store, in one allocation.
    private func storedKey(_ key: String) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(prefix.count + key.utf8.count)
        bytes.append(contentsOf: prefix)
        bytes.append(contentsOf: key.utf8)
        return bytes
    }

    /// The value under `key`, or nil.
    public func get<Value: StateValue>(_ key: String, as type: Value.Type = Value.self) throws(StreamStateError) -> Value? {
        guard let (kind, payload) = try stored(key) else { return nil }
        guard kind == Value.stateKind.rawValue else { throw mismatch(key, kind, Value.stateKind) }
        guard let value = Value(stateBytes: payload) else {
            throw StreamStateError(.corrupt, "\(location(key)): not a valid \(Value.stateKind)")
        }
        return value
    }

    /// The value under `key`, or `defaultValue`.
    public func get<Value: StateValue>(_ key: String, default defaultValue: Value) throws(StreamStateError) -> Value {
        try get(key, as: Value.self) ?? defaultValue
    }

    public func set<Value: StateValue>(_ key: String, _ value: Value) {
        partition.put(store: store, key: storedKey(key), value: StoredValue.encode(value))
    }

    /// Reads the value (or `defaultValue`), changes it, stores it and returns it.
    @discardableResult
    public func update<Value: StateValue>(
        _ key: String, default defaultValue: Value, _ change: (inout Value) throws -> Void
    ) throws -> Value {
        var value = try get(key, default: defaultValue)
        try change(&value)
        set(key, value)
        return value
    }

    /// A Codable value stored as JSON, or nil.
    public func decode<Value: Decodable>(_ key: String, as type: Value.Type) throws -> Value? {
        guard let (kind, payload) = try stored(key) else { return nil }
        guard kind == StateValueKind.json.rawValue else { throw mismatch(key, kind, .json) }
        return try JSONDecoder().decode(Value.self, from: Data(payload))
    }

    /// Stores a Codable value as JSON.
    public func encode<Value: Encodable>(_ value: Value, for key: String) throws {
        partition.put(store: store, key: storedKey(key), value: try StoredValue.encodeJSON(value))
    }

    public func delete(_ key: String) {
        partition.delete(store: store, key: storedKey(key))
    }

    /// Deletes every key of this stream in this store.
    public func clear() {
        partition.deleteStreams(store: store, prefixes: [prefix])
    }

    /// This stream's keys in this store, in byte order.
    public func keys() throws(StreamStateError) -> [String] {
        do {
            return try partition.keys(store: store, prefix: prefix).map { String(decoding: $0.dropFirst(prefix.count), as: UTF8.self) }
        } catch {
            throw storageError(error, "list the keys")
        }
    }

    private func stored(_ key: String) throws(StreamStateError) -> (kind: UInt8, payload: ArraySlice<UInt8>)? {
        let bytes: [UInt8]?
        do {
            bytes = try partition.get(store: store, key: storedKey(key))
        } catch {
            throw storageError(error, "read \(location(key))")
        }
        guard let bytes else { return nil }
        guard let split = StoredValue.split(bytes) else { throw StreamStateError(.corrupt, "\(location(key)): an empty record") }
        return split
    }

    private func mismatch(_ key: String, _ kind: UInt8, _ expected: StateValueKind) -> StreamStateError {
        let found = StateValueKind(rawValue: kind).map(\.description) ?? "unknown kind \(kind)"
        return StreamStateError(.typeMismatch, "\(location(key)) holds a \(found), read as \(expected)")
    }

    private func location(_ key: String) -> String {
        "state \"\(store)\" of stream \"\(streamID)\", key \"\(key)\""
    }

    private func storageError(_ error: any Error, _ action: String) -> StreamStateError {
        StreamStateError(.storage, "could not \(action)", underlying: error as? StateError)
    }
}
