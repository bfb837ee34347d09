import Foundation
import QuixState

/// Read-only access to the state directories topic consumers write (`quixd state`). It opens
/// environments read-only, so it is safe while the consumer that owns them runs (in another
/// process).
public enum StateInspector {
    /// One partition's state environment.
    public struct Partition: Sendable, Hashable {
        public var path: String
        /// The next input offset whose effects are not in the state.
        public var checkpoint: Int64?
        public var stores: [String]
        /// Entries per store.
        public var entries: [String: Int]
    }

    /// One stored key of one stream.
    public struct Entry: Sendable, Hashable {
        public var partition: String
        public var store: String
        public var streamID: String
        public var key: String
        public var value: Value
    }

    /// A stored value, decoded by its kind byte.
    public enum Value: Sendable, Hashable, CustomStringConvertible {
        case double(Double), int(Int), bool(Bool), string(String), bytes([UInt8]), json(String)
        /// Bytes that are not a valid record of this library (shown, not hidden).
        case invalid([UInt8])

        public var description: String {
            switch self {
            case .double(let value): "\(value)"
            case .int(let value): "\(value)"
            case .bool(let value): "\(value)"
            case .string(let value): value
            case .bytes(let value): "0x" + value.map { String(format: "%02x", $0) }.joined()
            case .json(let value): value
            case .invalid(let value): "invalid record 0x" + value.map { String(format: "%02x", $0) }.joined()
            }
        }

        /// The value as a JSON fragment.
        public var json: Any {
            switch self {
            case .double(let value): value.isFinite ? value : "\(value)"
            case .int(let value): value
            case .bool(let value): value
            case .string(let value): value
            case .bytes(let value): Data(value).base64EncodedString()
            case .json(let value): (try? JSONSerialization.jsonObject(with: Data(value.utf8), options: .fragmentsAllowed)) ?? value
            case .invalid(let value): ["invalid": Data(value).base64EncodedString()]
            }
        }

        init(record: [UInt8]) {
            guard let (kind, payload) = StoredValue.split(record), let known = StateValueKind(rawValue: kind) else {
                self = .invalid(record)
                return
            }
            let decoded: Value? =
                switch known {
                case .double: Double(stateBytes: payload).map(Value.double)
                case .int: Int(stateBytes: payload).map(Value.int)
                case .bool: Bool(stateBytes: payload).map(Value.bool)
                case .string: String(stateBytes: payload).map(Value.string)
                case .bytes: .bytes(Array(payload))
                case .json: String(validating: payload, as: UTF8.self).map(Value.json)
                }
            self = decoded ?? .invalid(record)
        }
    }

    /// The state environments at or under `directory` (directories holding a `data.mdb`), sorted.
    public static func partitions(under directory: String) throws -> [String] {
        let manager = FileManager.default
        var isDirectory: ObjCBool = false
        guard manager.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw StreamStateError(.storage, "\(directory) is not a directory")
        }
        var found: [String] = []
        if manager.fileExists(atPath: directory + "/data.mdb") { found.append(directory) }
        let enumerator = manager.enumerator(atPath: directory)
        while let relative = enumerator?.nextObject() as? String {
            if (relative as NSString).lastPathComponent == "data.mdb" {
                found.append((directory as NSString).appendingPathComponent((relative as NSString).deletingLastPathComponent))
            }
        }
        return found.sorted()
    }

    /// The checkpoint, stores and entry counts of one environment.
    public static func partition(at path: String) throws -> Partition {
        try partition(try open(path))
    }

    private static func partition(_ environment: StateEnvironment) throws -> Partition {
        let path = environment.path
        let meta = try environment.database(named: PartitionState.metaDatabase, create: false)
        var checkpoint: Int64?
        var stores: [String] = []
        try environment.read { txn in
            checkpoint = try txn.get(PartitionState.checkpointKey, in: meta).flatMap { Int(stateBytes: $0[...]) }.map(Int64.init)
            if let text = try txn.get(PartitionState.storesKey, in: meta).flatMap({ String(validating: $0, as: UTF8.self) }) {
                stores = text.split(separator: "\n").map(String.init)
            }
        }
        var entries: [String: Int] = [:]
        for store in stores {
            let database = try environment.database(named: store, create: false)
            entries[store] = try environment.read { txn in try txn.count(in: database) }
        }
        return Partition(path: path, checkpoint: checkpoint, stores: stores, entries: entries)
    }

    /// The entries of one environment, optionally of one stream and one store, in key order.
    public static func entries(at path: String, stream: String? = nil, store: String? = nil) throws -> [Entry] {
        let environment = try open(path)
        let stores = try partition(environment).stores.filter { store == nil || $0 == store }
        let prefix = stream.map { StreamState.prefix(of: $0) } ?? []
        var entries: [Entry] = []
        for name in stores {
            let database = try environment.database(named: name, create: false)
            try environment.read { txn in
                try txn.forEach(in: database, prefix: prefix) { key, value in
                    let key = Array(key)
                    guard key.count >= 2 else { return true }
                    let length = Int(key[0]) << 8 | Int(key[1])
                    guard key.count >= 2 + length else { return true }
                    entries.append(
                        Entry(
                            partition: path, store: name, streamID: String(decoding: key[2..<(2 + length)], as: UTF8.self),
                            key: String(decoding: key[(2 + length)...], as: UTF8.self), value: Value(record: Array(value))))
                    return true
                }
            }
        }
        return entries
    }

    private static func open(_ path: String) throws -> StateEnvironment {
        var options = StateEnvironment.Options()
        options.readOnly = true
        options.maxDatabases = PartitionState.maxStores
        return try StateEnvironment(path: path, options: options)
    }
}
