import Foundation
import QuixKafka
import QuixState
import Synchronization

/// The state of one input partition: an LMDB environment under
/// `<directory>/<topic>-<partition>/`, a named database per store, and the partition's
/// checkpoint (the next input offset whose effects are not in the state).
///
/// Changes wait in memory, each with the offset of the package that made it, until a checkpoint
/// writes those of packages before its offset, and the offset, in one LMDB write transaction;
/// reads see them at once. A package whose handler throws is rolled back to the savepoint taken
/// before it (`savepoint()`/`rollBack(to:)`).
final class PartitionState: Sendable {
    let partition: TopicPartition
    let environment: StateEnvironment
    private let meta: Database
    private let state: Mutex<Pending>

    static let metaDatabase = "__quix_meta"
    static let checkpointKey = "checkpoint"
    static let changelogKey = "changelog"
    static let storesKey = "stores"
    /// Named databases an environment can hold: the stores and the meta database.
    static let maxStores = 128

    /// One change, in the order it was made.
    enum Change: Sendable {
        case put(store: String, key: [UInt8], value: [UInt8])
        case delete(store: String, key: [UInt8])
        /// Every key of these streams (their key prefixes, `StreamState.prefix(of:)`).
        case deleteStreams(store: String, prefixes: Set<[UInt8]>)
    }

    struct Pending: Sendable {
        /// Changes in the order they were made, with the offset of the package that made each
        /// (offsets never decrease along the list).
        var changes: [(offset: Int64, change: Change)] = []
        /// Changes already written by checkpoints (savepoints count from the first ever made).
        var written = 0
        /// The package changes are made for now.
        var offset: Int64 = 0
        /// The pending value of each changed key (nil: deleted).
        var overlay: [String: [StateKey: [UInt8]?]] = [:]
        /// The key prefixes of streams deleted since the last checkpoint, per store: their keys
        /// that are not in the overlay read as absent.
        var clearedPrefixes: [String: Set<[UInt8]>] = [:]
        var databases: [String: Database] = [:]
        var stores: Set<String> = []
        var storesChanged = false
    }

    /// - Parameter changelogged: with a changelog, commits skip the meta page's fsync (the
    ///   data pages are still synced): a system crash may undo the last checkpoint, and the
    ///   restore on the next assignment replays it from the changelog. That halves the fsyncs.
    init(directory: String, partition: TopicPartition, changelogged: Bool = false) throws {
        self.partition = partition
        var options = StateEnvironment.Options()
        options.maxDatabases = Self.maxStores
        if changelogged { options.sync = .noMetaSync }
        environment = try StateEnvironment(path: directory, options: options)
        meta = try environment.database(named: Self.metaDatabase)
        let stores = try Self.readStores(environment, meta)
        state = Mutex(Pending(stores: stores))
    }

    /// The next input offset whose effects are not in the stored state; nil for a new state.
    var checkpoint: Int64? {
        get throws {
            try environment.read { txn in
                try txn.get(Self.checkpointKey, in: meta).flatMap { Int(stateBytes: $0[...]) }.map(Int64.init)
            }
        }
    }

    /// The changelog offset after the last checkpoint this state holds; nil when it never had one.
    var changelogOffset: Int64? {
        get throws {
            try environment.read { txn in
                try txn.get(Self.changelogKey, in: meta).flatMap { Int(stateBytes: $0[...]) }.map(Int64.init)
            }
        }
    }

    /// The stores (named databases) this partition's state has.
    var stores: Set<String> { state.withLock { $0.stores } }

    var hasPendingChanges: Bool { state.withLock { !$0.changes.isEmpty || $0.storesChanged } }

    /// Whether a package before `offset` changed something not yet checkpointed.
    func hasPendingChanges(before offset: Int64) -> Bool {
        state.withLock { state in state.storesChanged || (state.changes.first.map { $0.offset < offset } ?? false) }
    }

    /// The first pending changes: those of packages before `offset`, made before `savepoint`.
    private static func prefix(_ state: Pending, before offset: Int64, savepoint: Int) -> ArraySlice<(offset: Int64, change: Change)> {
        let limit = savepoint == .max ? state.changes.count : max(0, min(state.changes.count, savepoint - state.written))
        return state.changes[..<limit].prefix { $0.offset < offset }
    }

    // MARK: Reading and changing

    func get(store: String, key: [UInt8]) throws -> [UInt8]? {
        let (pending, cleared, database) = state.withLock { state -> ([UInt8]??, Bool, Database?) in
            let cleared = state.clearedPrefixes[store].map { Self.isUnder(key, $0) } ?? false
            return (state.overlay[store]?[StateKey(key)], cleared, state.databases[store])
        }
        if let pending { return pending }
        if cleared { return nil }
        guard let database = try database ?? existingDatabase(store) else { return nil }
        return try environment.read { txn in try txn.get(key, in: database) }
    }

    /// Keys under `prefix` in `store`, in key order, with pending changes applied.
    func keys(store: String, prefix: [UInt8]) throws -> [[UInt8]] {
        let (overlay, cleared, database) = state.withLock { state in
            (state.overlay[store] ?? [:], state.clearedPrefixes[store] ?? [], state.databases[store])
        }
        var keys = Set<[UInt8]>()
        if let database = try database ?? existingDatabase(store) {
            try environment.read { txn in
                try txn.forEach(in: database, prefix: prefix) { key, _ in
                    let key = Array(key)
                    if !Self.isUnder(key, cleared) { keys.insert(key) }
                    return true
                }
            }
        }
        for (key, value) in overlay where key.bytes.starts(with: prefix) {
            if value == nil { keys.remove(key.bytes) } else { keys.insert(key.bytes) }
        }
        return keys.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// At most `limit` keys of `store` from `lower` on, in key order, with pending changes
    /// applied: reads no more of the store than it returns.
    func keys(store: String, from lower: [UInt8], limit: Int) throws -> [[UInt8]] {
        let (overlay, cleared, database) = state.withLock { state in
            (state.overlay[store] ?? [:], state.clearedPrefixes[store] ?? [], state.databases[store])
        }
        var keys: [[UInt8]] = []
        if let database = try database ?? existingDatabase(store) {
            try environment.read { txn in
                try txn.forEach(in: database, from: lower) { key, _ in
                    let key = Array(key)
                    if overlay[StateKey(key)] == nil, !Self.isUnder(key, cleared) { keys.append(key) }
                    return keys.count < limit
                }
            }
        }
        // The smallest `limit` of both: a stored key among them is among the first `limit` stored.
        for case let (key, .some) in overlay where !key.bytes.lexicographicallyPrecedes(lower) { keys.append(key.bytes) }
        return Array(keys.sorted { $0.lexicographicallyPrecedes($1) }.prefix(limit))
    }

    func put(store: String, key: [UInt8], value: [UInt8]) {
        record(.put(store: store, key: key, value: value))
    }

    func delete(store: String, key: [UInt8]) {
        record(.delete(store: store, key: key))
    }

    /// Deletes every key of the streams with these key prefixes (`StreamState.prefix(of:)`).
    func deleteStreams(store: String, prefixes: Set<[UInt8]>) {
        guard !prefixes.isEmpty else { return }
        record(.deleteStreams(store: store, prefixes: prefixes))
    }

    /// Whether `key` belongs to one of the streams with these key prefixes.
    private static func isUnder(_ key: [UInt8], _ prefixes: Set<[UInt8]>) -> Bool {
        guard !prefixes.isEmpty, key.count >= 2 else { return false }
        let end = 2 + (Int(key[0]) << 8 | Int(key[1]))
        return end <= key.count && prefixes.contains(Array(key[..<end]))
    }

    private func record(_ change: Change) {
        state.withLock { state in
            state.changes.append((state.offset, change))
            Self.apply(change, to: &state)
        }
    }

    /// Changes made from now on belong to the package at `offset` (or, between packages, to the
    /// last one processed).
    func beginPackage(at offset: Int64) {
        state.withLock { $0.offset = offset }
    }

    private static func apply(_ change: Change, to state: inout Pending) {
        switch change {
        case .put(let store, let key, let value):
            state.overlay[store, default: [:]][StateKey(key)] = .some(value)
            if state.stores.insert(store).inserted { state.storesChanged = true }
        case .delete(let store, let key):
            state.overlay[store, default: [:]][StateKey(key)] = .some(nil)
        case .deleteStreams(let store, let prefixes):
            state.overlay[store] = state.overlay[store]?.filter { !isUnder($0.key.bytes, prefixes) }
            state.clearedPrefixes[store, default: []].formUnion(prefixes)
        }
    }

    // MARK: Savepoints

    /// A point to roll back to: the number of changes made so far.
    func savepoint() -> Int { state.withLock { $0.written + $0.changes.count } }

    /// Forgets the changes made after `savepoint`.
    func rollBack(to savepoint: Int) {
        state.withLock { state in
            let kept = savepoint - state.written
            guard state.changes.count > kept, kept >= 0 else { return }
            state.changes.removeSubrange(kept...)
            Self.rebuildOverlay(&state)
        }
    }

    /// The overlay and cleared prefixes of the changes still pending, from scratch.
    private static func rebuildOverlay(_ state: inout Pending) {
        state.overlay.removeAll()
        state.clearedPrefixes.removeAll()
        for (_, change) in state.changes { apply(change, to: &state) }
    }

    // MARK: Checkpoints

    /// The net effect of the pending changes of packages before `offset` (made before `savepoint`),
    /// as changelog records: per changed key its value, or nil for a deleted one (a deleted prefix
    /// expands to the keys stored under it).
    func pendingEffects(before offset: Int64 = .max, savepoint: Int = .max) throws -> [(key: [UInt8], value: [UInt8]?)] {
        let changes = state.withLock { Self.prefix($0, before: offset, savepoint: savepoint).map(\.change) }
        var effects: [String: [StateKey: [UInt8]?]] = [:]
        for change in changes {
            switch change {
            case .put(let store, let key, let value): effects[store, default: [:]][StateKey(key)] = .some(value)
            case .delete(let store, let key): effects[store, default: [:]][StateKey(key)] = .some(nil)
            case .deleteStreams(let store, let prefixes):
                for key in effects[store, default: [:]].keys where Self.isUnder(key.bytes, prefixes) { effects[store]![key] = .some(nil) }
                if let database = try existingDatabase(store) {
                    try environment.read { txn in
                        for prefix in prefixes {
                            try txn.forEach(in: database, prefix: prefix) { key, _ in
                                effects[store, default: [:]][StateKey(Array(key))] = .some(nil)
                                return true
                            }
                        }
                    }
                }
            }
        }
        return effects.flatMap { store, keys in keys.map { (Changelog.recordKey(store: store, key: $0.key.bytes), $0.value) } }
    }

    /// Writes the pending changes of packages before `offset` (made before `savepoint`) and
    /// `offset` as the checkpoint (and the changelog offset after its marker) in one transaction;
    /// later changes stay pending. On failure (a full disk, say) nothing is written and every
    /// change stays. Run it on the state thread (`StateCommitter`): it commits and syncs.
    func checkpoint(offset: Int64, savepoint: Int = .max, changelogOffset: Int64? = nil) throws {
        let (changes, stores, storesChanged) = state.withLock { state in
            (Self.prefix(state, before: offset, savepoint: savepoint).map(\.change), state.stores, state.storesChanged)
        }
        var databases: [String: Database] = [:]
        // Every store the meta database will list exists, even one whose first changes come
        // after this checkpoint's cut.
        for store in Set(changes.map(\.store)).union(storesChanged ? stores : []) { databases[store] = try database(store) }
        try environment.write { txn in
            for change in changes {
                switch change {
                case .put(let store, let key, let value): try txn.put(value, for: key, in: databases[store]!)
                case .delete(let store, let key): _ = try txn.delete(key, in: databases[store]!)
                case .deleteStreams(let store, let prefixes):
                    for prefix in prefixes { _ = try txn.deleteAll(in: databases[store]!, prefix: prefix) }
                }
            }
            if storesChanged { try txn.put(Self.encodeStores(stores), for: Self.storesKey, in: meta) }
            try txn.put(Int(offset).stateBytes, for: Self.checkpointKey, in: meta)
            if let changelogOffset { try txn.put(Int(changelogOffset).stateBytes, for: Self.changelogKey, in: meta) }
        }
        state.withLock { state in
            // The written changes are the first ones still pending: later packages only append,
            // and a rollback never reaches back before the package in hand.
            let count = min(changes.count, state.changes.count)
            state.changes.removeFirst(count)
            state.written += count
            Self.rebuildOverlay(&state)
            state.storesChanged = false
        }
    }

    /// Applies restored changelog records up to their last marker, with that marker's checkpoint
    /// and the changelog offset after it, in one write transaction. The records may span many
    /// markers: what the transaction commits always ends at one. Adds the time spent writing to
    /// `timings.applying` and the commit's to `timings.committing`.
    func applyRestored(_ records: RestoredRecords, timings: inout RestoreTimings) throws {
        guard records.sealedCount > 0 else { return }
        let used = records.sealedStores
        var databases: [Database?] = Array(repeating: nil, count: records.stores.count)
        for index in used { databases[index] = try database(records.stores[index]) }
        let stores = state.withLock { state -> Set<String> in
            state.stores.formUnion(used.map { records.stores[$0] })
            return state.stores
        }
        let clock = ContinuousClock()
        let started = clock.now
        var written = started
        try environment.write { txn in
            try records.forEachSealed { store, key, value in
                if let value { try txn.put(value, for: key, in: databases[store]!) } else { _ = try txn.delete(key, in: databases[store]!) }
            }
            try txn.put(Self.encodeStores(stores), for: Self.storesKey, in: meta)
            try txn.put(Int(records.checkpoint).stateBytes, for: Self.checkpointKey, in: meta)
            try txn.put(Int(records.changelogOffset).stateBytes, for: Self.changelogKey, in: meta)
            written = clock.now
        }
        timings.applying += written - started
        timings.committing += clock.now - written
    }

    /// Deletes everything: every store and the checkpoint (before a rebuild).
    func reset() throws {
        let stores = state.withLock { $0.stores }
        var databases: [Database] = []
        for store in stores { if let database = try existingDatabase(store) { databases.append(database) } }
        try environment.write { txn in
            for database in databases { try txn.clear(database) }
            try txn.clear(meta)
        }
        state.withLock { state in state = Pending(databases: state.databases) }
    }

    /// Drops every pending change (the partition was lost: its work is redone elsewhere).
    func discardPending() {
        state.withLock { state in
            state = Pending(written: state.written + state.changes.count, databases: state.databases, stores: state.stores)
        }
    }

    // MARK: Databases

    private func database(_ store: String) throws(StateError) -> Database {
        if let known = state.withLock({ $0.databases[store] }) { return known }
        let database = try environment.database(named: store)
        state.withLock { $0.databases[store] = database }
        return database
    }

    /// The store's database if it exists on disk (reads never create one).
    private func existingDatabase(_ store: String) throws(StateError) -> Database? {
        do throws(StateError) {
            let database = try environment.database(named: store, create: false)
            state.withLock { $0.databases[store] = database }
            return database
        } catch where error.isNotFound {
            return nil
        }
    }

    private static func readStores(_ environment: StateEnvironment, _ meta: Database) throws -> Set<String> {
        let bytes = try environment.read { txn in try txn.get(storesKey, in: meta) }
        guard let bytes, let text = String(validating: bytes, as: UTF8.self) else { return [] }
        return Set(text.split(separator: "\n").map(String.init))
    }

    private static func encodeStores(_ stores: Set<String>) -> [UInt8] {
        Array(stores.sorted().joined(separator: "\n").utf8)
    }
}

extension PartitionState.Change {
    var store: String {
        switch self {
        case .put(let store, _, _), .delete(let store, _), .deleteStreams(let store, _): store
        }
    }
}

/// A state key's bytes as a dictionary key, hashed in one pass: an array of bytes hashes byte by
/// byte, and the overlay is looked up at every read and write of state.
struct StateKey: Hashable {
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func hash(into hasher: inout Hasher) { bytes.withUnsafeBytes { hasher.combine(bytes: $0) } }
}
