internal import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only snapshot of an environment. Dropping it ends it.
///
/// Any thread may use and end it (the environment runs with `MDB_NOTLS`), but keep it short:
/// while it is open LMDB cannot reuse the pages it sees, and the map cannot grow.
public struct ReadTransaction: ~Copyable {
    let handle: TransactionHandle

    @available(*, noasync)
    public init(_ environment: StateEnvironment) throws(StateError) {
        handle = try environment.begin(readOnly: true)
    }

    deinit { handle.abort() }

    /// A copy of the value stored under `key`, or `nil`.
    public func get(_ key: some StateBytes, in database: Database) throws(StateError) -> [UInt8]? {
        try handle.value(for: key, in: database).map { Array($0) }
    }

    /// Lends the value stored under `key` to `body` without copying it; `nil` when there is none.
    /// The buffer points into the map and is valid only inside `body`. Rethrows `body`'s errors.
    public func withValue<R>(
        for key: some StateBytes, in database: Database, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        try handle.value(for: key, in: database).map(body)
    }

    /// The number of entries in `database`.
    public func count(in database: Database) throws(StateError) -> Int { try handle.count(in: database) }

    /// Calls `body` for each entry with `lower <= key < upper` (`upper == nil`: to the end), in key
    /// order, until it returns `false`. The buffers are valid only inside `body`. Rethrows `body`'s errors.
    public func forEach(
        in database: Database, from lower: [UInt8] = [], before upper: [UInt8]? = nil,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try handle.forEach(in: database, from: lower, before: upper, body)
    }

    /// Calls `body` for each entry whose key starts with `prefix`, in key order, until it returns
    /// `false`. The buffers are valid only inside `body`. Rethrows `body`'s errors.
    public func forEach(
        in database: Database, prefix: some StateBytes,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        let (lower, upper) = keyRange(prefix: prefix)
        try handle.forEach(in: database, from: lower, before: upper, body)
    }
}

/// A write transaction: end it with `commit()` or `abort()`; dropping it aborts.
///
/// `noasync` because LMDB binds a write transaction to the thread that began it (its lock is a
/// mutex). Only one is open per environment at a time; a second one, in any thread or process,
/// waits. `StateEnvironment.write(_:)` also grows the map when it fills.
public struct WriteTransaction: ~Copyable {
    let handle: TransactionHandle

    @available(*, noasync)
    public init(_ environment: StateEnvironment) throws(StateError) {
        handle = try environment.begin(readOnly: false)
    }

    /// Makes the changes durable (as `SyncMode` allows) and visible to new transactions.
    @available(*, noasync)
    public consuming func commit() throws(StateError) {
        let handle = self.handle
        discard self
        try handle.commit()
    }

    /// Discards the changes.
    @available(*, noasync)
    public consuming func abort() {
        let handle = self.handle
        discard self
        handle.abort()
    }

    deinit { handle.abort() }

    /// A copy of the value stored under `key`, or `nil`; sees this transaction's changes.
    public func get(_ key: some StateBytes, in database: Database) throws(StateError) -> [UInt8]? {
        try handle.value(for: key, in: database).map { Array($0) }
    }

    /// Lends the value stored under `key` to `body` without copying it; `nil` when there is none.
    /// The buffer is valid only inside `body`. Rethrows `body`'s errors.
    public func withValue<R>(
        for key: some StateBytes, in database: Database, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R? {
        try handle.value(for: key, in: database).map(body)
    }

    /// Stores `value` under `key` (1 to 511 bytes), replacing any value there.
    public func put(_ value: some StateBytes, for key: some StateBytes, in database: Database) throws(StateError) {
        try handle.put(value, for: key, in: database)
    }

    /// Removes `key`; `false` when it was not there.
    @discardableResult
    public func delete(_ key: some StateBytes, in database: Database) throws(StateError) -> Bool {
        try handle.delete(key, in: database)
    }

    /// Removes every key that starts with `prefix` (one stream's state); returns how many.
    @discardableResult
    public func deleteAll(in database: Database, prefix: some StateBytes) throws(StateError) -> Int {
        let (lower, upper) = keyRange(prefix: prefix)
        return try handle.deleteAll(in: database, from: lower, before: upper)
    }

    /// Removes every entry of `database`; the database itself stays.
    public func clear(_ database: Database) throws(StateError) {
        try handle.check(mdb_drop(handle.txn, handle.dbi(database), 0), "clear '\(database.name)'")
    }

    /// The number of entries in `database`.
    public func count(in database: Database) throws(StateError) -> Int { try handle.count(in: database) }

    /// Calls `body` for each entry with `lower <= key < upper` (`upper == nil`: to the end), in key
    /// order, until it returns `false`. The buffers are valid only inside `body`. Rethrows `body`'s errors.
    public func forEach(
        in database: Database, from lower: [UInt8] = [], before upper: [UInt8]? = nil,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        try handle.forEach(in: database, from: lower, before: upper, body)
    }

    /// Calls `body` for each entry whose key starts with `prefix`, in key order, until it returns
    /// `false`. The buffers are valid only inside `body`. Rethrows `body`'s errors.
    public func forEach(
        in database: Database, prefix: some StateBytes,
        _ body: (_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        let (lower, upper) = keyRange(prefix: prefix)
        try handle.forEach(in: database, from: lower, before: upper, body)
    }
}

/// The keys starting with `prefix` are exactly those in `lower..<upper`: `upper` is the prefix with
/// trailing 0xFF bytes dropped and the last byte incremented (`nil`, unbounded, if nothing is left).
private func keyRange(prefix: some StateBytes) -> (lower: [UInt8], upper: [UInt8]?) {
    let lower = prefix.withStateBytes { Array($0) }
    var upper = lower
    while let last = upper.popLast() {
        if last != 0xFF {
            upper.append(last + 1)
            return (lower, upper)
        }
    }
    return (lower, nil)
}

/// One open `MDB_txn` and a retain of its environment, which must outlive it. Trivially destroyed
/// (hence `Unmanaged`) so the transactions can `discard self`; `commit()` or `abort()` ends it
/// exactly once.
struct TransactionHandle {
    let txn: OpaquePointer
    let retainedEnvironment: Unmanaged<StateEnvironment>

    var environment: StateEnvironment { retainedEnvironment.takeUnretainedValue() }

    /// Commits; `mdb_txn_commit` frees the transaction whether it succeeds or not.
    func commit() throws(StateError) {
        let status = mdb_txn_commit(txn)
        finish()
        try StateError.check(status, path: environment.path, "commit")
    }

    func abort() {
        mdb_txn_abort(txn)
        finish()
    }

    private func finish() {
        environment.gate.leave()
        retainedEnvironment.release()
    }

    func check(_ status: Int32, _ operation: @autoclosure () -> String) throws(StateError) {
        try StateError.check(status, path: environment.path, operation())
    }

    func dbi(_ database: Database) throws(StateError) -> MDB_dbi {
        guard database.environment == ObjectIdentifier(environment) else {
            throw StateError(code: .invalid, lmdbCode: EINVAL, path: environment.path,
                             detail: "Database '\(database.name)' belongs to another environment")
        }
        return database.dbi
    }

    /// The value stored under `key`, pointing into the map: valid until the transaction ends or
    /// (in a write transaction) changes something.
    func value(for key: some StateBytes, in database: Database) throws(StateError) -> UnsafeRawBufferPointer? {
        let dbi = try dbi(database)
        var value = MDB_val()
        let status = key.withStateBytes { key in
            var key = MDB_val(key)
            return mdb_get(txn, dbi, &key, &value)
        }
        if status == MDB_NOTFOUND { return nil }
        try check(status, "get from '\(database.name)'")
        return value.bytes
    }

    func put(_ value: some StateBytes, for key: some StateBytes, in database: Database) throws(StateError) {
        let dbi = try dbi(database)
        let status = key.withStateBytes { key in
            value.withStateBytes { value in
                var key = MDB_val(key), value = MDB_val(value)
                return mdb_put(txn, dbi, &key, &value, 0)
            }
        }
        try check(status, "put into '\(database.name)'")
    }

    func delete(_ key: some StateBytes, in database: Database) throws(StateError) -> Bool {
        let dbi = try dbi(database)
        let status = key.withStateBytes { key in
            var key = MDB_val(key)
            return mdb_del(txn, dbi, &key, nil)
        }
        if status == MDB_NOTFOUND { return false }
        try check(status, "delete from '\(database.name)'")
        return true
    }

    func count(in database: Database) throws(StateError) -> Int {
        var stat = MDB_stat()
        try check(mdb_stat(txn, dbi(database), &stat), "count '\(database.name)'")
        return stat.ms_entries
    }

    func forEach(
        in database: Database, from lower: [UInt8], before upper: [UInt8]?,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Bool
    ) throws {
        let status = try walk(dbi(database), from: lower, before: upper) { _, key, value in
            try body(key.bytes, value.bytes)
        }
        try check(status, "iterate '\(database.name)'")
    }

    func deleteAll(in database: Database, from lower: [UInt8], before upper: [UInt8]?) throws(StateError) -> Int {
        var deleted = 0
        let status = try walk(dbi(database), from: lower, before: upper) { cursor, _, _ throws(StateError) in
            // Leaves the cursor on the next entry, which the following MDB_NEXT returns.
            try check(mdb_cursor_del(cursor, 0), "delete from '\(database.name)'")
            deleted += 1
            return true
        }
        try check(status, "delete from '\(database.name)'")
        return deleted
    }

    /// Visits the entries with `lower <= key < upper` through one cursor, until `visit` returns
    /// `false`. Returns LMDB's status: `visit`'s errors are the only ones it throws.
    private func walk<E: Error>(
        _ dbi: MDB_dbi, from lower: [UInt8], before upper: [UInt8]?,
        _ visit: (_ cursor: OpaquePointer, _ key: MDB_val, _ value: MDB_val) throws(E) -> Bool
    ) throws(E) -> Int32 {
        var cursor: OpaquePointer?
        let status = mdb_cursor_open(txn, dbi, &cursor)
        guard status == MDB_SUCCESS, let cursor else { return status }
        defer { mdb_cursor_close(cursor) }  // before the transaction ends, which the caller guarantees

        return try withBytes(of: lower) { lower throws(E) in
            try withBytes(of: upper ?? []) { upperBytes throws(E) in
                var upperBound = MDB_val(upperBytes)
                var key = MDB_val(lower), value = MDB_val()
                // MDB_SET_RANGE rejects an empty key; an empty lower bound is the first key.
                var status = mdb_cursor_get(cursor, &key, &value, lower.isEmpty ? MDB_FIRST : MDB_SET_RANGE)
                while status == MDB_SUCCESS, upper == nil || mdb_cmp(txn, dbi, &key, &upperBound) < 0 {
                    guard try visit(cursor, key, value) else { return MDB_SUCCESS }
                    status = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)
                }
                return status == MDB_NOTFOUND ? MDB_SUCCESS : status
            }
        }
    }
}

/// `Array.withUnsafeBytes` for bodies with a typed error (the standard library's rethrows `any Error`).
private func withBytes<R, E: Error>(
    of bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(E) -> R
) throws(E) -> R {
    try bytes.withUnsafeBytes { bytes in Result { () throws(E) in try body(bytes) } }.get()
}

extension MDB_val {
    /// Points at `bytes`; LMDB only reads through the pointer of a key or a value it stores.
    init(_ bytes: UnsafeRawBufferPointer) {
        self.init(mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
    }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: mv_data, count: mv_size) }
}
