import QuixState
import QuixStreams
import Synchronization

/// One value of a table row.
public enum TableCell: Sendable, Hashable {
    case number(Double)
    case text(String)

    /// The cell as a table key: a number in its shortest text (`17`, `2.5`).
    public var keyText: String {
        switch self {
        case .number(let value): EventTemplate.format(value)
        case .text(let text): text
        }
    }
}

/// A table's rows by key, as a pipeline's `lookup` stages read them: all in memory, and with a
/// state directory also in LMDB with the offsets they were read up to, so a restart reads only
/// what came after (Kafka Streams keeps its global stores so too).
public final class LookupTable: Sendable {
    public let name: String
    private let rows = Mutex([String: [String: TableCell]]())
    private let store: Store?

    /// The LMDB environment of a table: its rows, and the next offset to read per partition.
    private struct Store: @unchecked Sendable {
        let environment: StateEnvironment
        let rows: Database
        let offsets: Database
    }

    /// A table kept in memory only, or also in LMDB at `directory` (loaded from it).
    public init(name: String, directory: String?) throws {
        self.name = name
        guard let directory else {
            store = nil
            return
        }
        let environment = try StateEnvironment(path: directory)
        let store = Store(environment: environment, rows: try environment.database(named: "rows"), offsets: try environment.database(named: "offsets"))
        self.store = store
        var loaded: [String: [String: TableCell]] = [:]
        try store.environment.read { transaction in
            try transaction.forEach(in: store.rows) { key, value in
                loaded[String(decoding: key, as: UTF8.self)] = TableRowCoding.decode(value)
                return true
            }
        }
        rows.withLock { $0 = loaded }
    }

    /// The row under `key`, or nil.
    public func row(_ key: String) -> [String: TableCell]? { rows.withLock { $0[key] } }

    public var count: Int { rows.withLock { $0.count } }

    /// The offsets stored with the rows (the next to read per partition), empty in memory.
    public func storedOffsets() throws -> [Int32: Int64] {
        guard let store else { return [:] }
        var offsets: [Int32: Int64] = [:]
        try store.environment.read { transaction in
            try transaction.forEach(in: store.offsets) { key, value in
                guard key.count == 4, value.count == 8 else { return true }
                offsets[key.loadUnaligned(as: Int32.self)] = value.loadUnaligned(as: Int64.self)
                return true
            }
        }
        return offsets
    }

    /// Applies updates (nil deletes a row) and, stored with them in one transaction, the next
    /// offset to read of each partition they came from. Blocks on the disk: call it from the
    /// table's reader thread, not the cooperative pool.
    @available(*, noasync)
    public func apply(_ updates: [(key: String, row: [String: TableCell]?)], offsets: [Int32: Int64]) throws {
        if let store {
            try store.environment.write { transaction in
                for (key, row) in updates {
                    if let row {
                        try transaction.put(TableRowCoding.encode(row), for: Array(key.utf8), in: store.rows)
                    } else {
                        _ = try transaction.delete(Array(key.utf8), in: store.rows)
                    }
                }
                for (partition, offset) in offsets {
                    try transaction.put(withUnsafeBytes(of: offset) { Array($0) }, for: withUnsafeBytes(of: partition) { Array($0) }, in: store.offsets)
                }
            }
        }
        rows.withLock { rows in
            for (key, row) in updates { rows[key] = row }
        }
    }
}

/// A table row in LMDB: per cell, the name's length (2 bytes) and UTF-8, then `n` and the
/// Double's 8 bytes, or `s`, the text's length (4 bytes) and UTF-8.
enum TableRowCoding {
    static func encode(_ row: [String: TableCell]) -> [UInt8] {
        var bytes: [UInt8] = []
        for (name, cell) in row.sorted(by: { $0.key < $1.key }) {
            let utf8 = Array(name.utf8.prefix(Int(UInt16.max)))
            append(UInt16(utf8.count), to: &bytes)
            bytes += utf8
            switch cell {
            case .number(let value):
                bytes.append(UInt8(ascii: "n"))
                append(value.bitPattern, to: &bytes)
            case .text(let text):
                bytes.append(UInt8(ascii: "s"))
                append(UInt32(text.utf8.count), to: &bytes)
                bytes += text.utf8
            }
        }
        return bytes
    }

    /// The row, or nil when the bytes are not one (a row this version did not write).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> [String: TableCell]? {
        var row: [String: TableCell] = [:]
        var at = 0
        func take(_ count: Int) -> UnsafeRawBufferPointer? {
            guard at + count <= bytes.count else { return nil }
            defer { at += count }
            return UnsafeRawBufferPointer(rebasing: bytes[at..<at + count])
        }
        while at < bytes.count {
            guard let length = take(2)?.loadUnaligned(as: UInt16.self), let name = take(Int(length)), let kind = take(1)?.first else { return nil }
            switch kind {
            case UInt8(ascii: "n"):
                guard let bits = take(8)?.loadUnaligned(as: UInt64.self) else { return nil }
                row[String(decoding: name, as: UTF8.self)] = .number(Double(bitPattern: bits))
            case UInt8(ascii: "s"):
                guard let count = take(4)?.loadUnaligned(as: UInt32.self), let text = take(Int(count)) else { return nil }
                row[String(decoding: name, as: UTF8.self)] = .text(String(decoding: text, as: UTF8.self))
            default:
                return nil
            }
        }
        return row
    }

    private static func append<T: FixedWidthInteger>(_ value: T, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
    }
}

extension TimeseriesFrame {
    /// Row `row`'s cells that have a value: numbers, texts and tags (tables and joins keep rows so).
    func cells(at row: Int) -> [String: TableCell] {
        var cells: [String: TableCell] = [:]
        for (name, column) in numeric { if let value = column[row] { cells[name] = .number(value) } }
        for (name, column) in strings { if let text = column[row] { cells[name] = .text(text) } }
        for (name, column) in tags { if let text = column[row] { cells[name] = .text(text) } }
        return cells
    }
}
