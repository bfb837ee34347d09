internal import CLMDB
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One LMDB environment: a directory holding `data.mdb` and `lock.mdb`, with named databases in it.
/// Closed when the last reference (including open transactions) goes away.
///
/// Open a directory at most once per process and share the instance; a second open is refused
/// with `.locked` (LMDB would take over the first one's locks). Other processes may open it too,
/// for example read-only for inspection while the daemon writes.
///
/// `@unchecked Sendable`: `MDB_env` is thread-safe for transactions (with `MDB_NOTLS` a read
/// transaction may run on any thread, writers are serialized by LMDB's own lock), the named-database
/// table is guarded by `databaseLock`, and the one call that is not thread-safe,
/// `mdb_env_set_mapsize`, runs only through `gate` with no transaction open.
public final class StateEnvironment: @unchecked Sendable {
    /// How a commit reaches the disk.
    public enum SyncMode: Sendable, Hashable {
        /// Flush data and meta page on every commit: a committed transaction survives a system crash.
        case durable
        /// Skip the meta page flush: a system crash may undo the last commit, never corrupts.
        case noMetaSync
        /// Leave flushing to the OS (or `sync()`): a system crash may undo recent commits.
        case noSync
    }

    public struct Options: Sendable, Hashable {
        /// Initial map size in bytes; `write(_:)` doubles it when it fills. Ignored read-only.
        public var mapSize = 64 << 20
        /// `write(_:)` grows the map up to this size, then throws `.mapFull`.
        public var maxMapSize = 1 << 40
        /// How many named databases the environment can hold.
        public var maxDatabases = 16
        /// Read transactions open at the same time, over all processes (fixed by the first opener).
        public var maxReaders = 126
        /// Open without creating anything and refuse writes; works beside a writer in another process.
        public var readOnly = false
        public var sync = SyncMode.durable

        public init() {}
    }

    /// Sizes from the environment's current meta page.
    public struct Info: Sendable, Hashable {
        /// Size of the memory map in bytes: the data file can grow to this size before the map must grow.
        public var mapSize: Int
        public var pageSize: Int
        /// Pages in use, including free pages kept for reuse.
        public var usedPages: Int
        public var usedBytes: Int { usedPages * pageSize }
        public var maxReaders: Int
    }

    /// The directory of the environment, as given.
    public let path: String
    public let isReadOnly: Bool
    /// Reader slots of crashed processes that opening cleared (`mdb_reader_check`).
    public let staleReadersCleared: Int

    let handle: OpaquePointer
    let gate = TransactionGate()
    private let maxMapSize: Int
    private let directory: DirectoryID
    /// Serializes `mdb_dbi_open` and `mdb_drop`, which LMDB requires for the shared handle table.
    private let databaseLock = Mutex(())

    /// Opens the environment in directory `path`, creating the directory (with its parents) unless
    /// `options.readOnly`.
    public init(path: String, options: Options = Options()) throws(StateError) {
        try options.validate(path: path)
        if !options.readOnly {
            try StateError.check(createDirectory(path), path: path, "create the directory")
        }
        let directory = try DirectoryID.register(path)
        var created: OpaquePointer?
        let status = mdb_env_create(&created)
        guard status == MDB_SUCCESS, let env = created else {
            DirectoryID.unregister(directory)
            throw StateError(lmdbCode: status, path: path, operation: "create the environment")
        }
        var stale: Int32 = 0
        do throws(StateError) {
            try StateError.check(mdb_env_set_maxdbs(env, MDB_dbi(options.maxDatabases)), path: path, "set maxDatabases")
            try StateError.check(mdb_env_set_maxreaders(env, UInt32(options.maxReaders)), path: path, "set maxReaders")
            var flags = UInt32(MDB_NOTLS)
            if options.readOnly {
                flags |= UInt32(MDB_RDONLY)  // and keep the map size the writer recorded
            } else {
                try StateError.check(mdb_env_set_mapsize(env, options.mapSize), path: path, "set mapSize")
                switch options.sync {
                case .durable: break
                case .noMetaSync: flags |= UInt32(MDB_NOMETASYNC)
                case .noSync: flags |= UInt32(MDB_NOSYNC)
                }
            }
            try StateError.check(mdb_env_open(env, path, flags, 0o644), path: path, "open the environment")
            try StateError.check(mdb_reader_check(env, &stale), path: path, "clear stale readers")
        } catch {
            mdb_env_close(env)  // also after a failed mdb_env_open
            DirectoryID.unregister(directory)
            throw error
        }
        self.path = path
        self.isReadOnly = options.readOnly
        self.staleReadersCleared = Int(stale)
        self.handle = env
        self.maxMapSize = options.maxMapSize
        self.directory = directory
    }

    deinit {
        mdb_env_close(handle)  // no transaction is open: each one retains the environment
        DirectoryID.unregister(directory)
    }

    /// The named database `name`, created first if `create` and the environment is writable
    /// (`.notFound` otherwise). Do not call it inside a transaction of this environment.
    @available(*, noasync)
    public func database(named name: String, create: Bool = true) throws(StateError) -> Database {
        try databaseLock.withLock { _ throws(StateError) -> Database in
            if create && !isReadOnly {
                return try write({ txn throws(StateError) in try txn.handle.openDatabase(name, create: true) },
                                 wrap: { $0 })
            }
            let handle = try begin(readOnly: true)
            let database: Database
            do throws(StateError) {
                database = try handle.openDatabase(name, create: false)
            } catch {
                handle.abort()
                throw error
            }
            try handle.commit()  // keeps the handle open for the environment, also for a read transaction
            return database
        }
    }

    /// Deletes `database` and everything in it. Its handle, and every copy of it, becomes invalid.
    /// Do not call it inside a transaction of this environment.
    @available(*, noasync)
    public func drop(_ database: Database) throws(StateError) {
        try databaseLock.withLock { _ throws(StateError) in
            // By name: when a full map makes `write` retry, the first attempt's mdb_drop has
            // closed the handle already.
            try write({ txn throws(StateError) in
                let reopened = try txn.handle.openDatabase(database.name, create: false)
                try txn.handle.check(mdb_drop(txn.handle.txn, reopened.dbi, 1), "drop '\(database.name)'")
            }, wrap: { $0 })
        }
    }

    /// Runs `body` in a read transaction. Rethrows `body`'s errors.
    @available(*, noasync)
    public func read<R>(_ body: (borrowing ReadTransaction) throws -> R) throws -> R {
        let txn = try ReadTransaction(self)
        return try body(txn)
    }

    /// Runs `body` in a write transaction and commits it; an error from `body` aborts it and is
    /// rethrown. When the map fills (in `body` or in the commit) the transaction is aborted, the map
    /// doubled, and `body` run again; past `Options.maxMapSize` this throws `.mapFull`. So `body`
    /// must have no other side effects, and must rethrow the `StateError`s of `put`.
    @available(*, noasync)
    public func write<R>(_ body: (borrowing WriteTransaction) throws -> R) throws -> R {
        try write(body, wrap: { $0 })
    }

    /// `write` for a body with a typed error; `wrap` makes this layer's errors that type.
    private func write<R, E: Error>(
        _ body: (borrowing WriteTransaction) throws(E) -> R, wrap: (StateError) -> E
    ) throws(E) -> R {
        while true {
            var mapSize = 0
            do {
                return try attemptWrite(body, wrap: wrap, mapSize: &mapSize)
            } catch where (error as? StateError)?.isMapFull == true {}
            do throws(StateError) { try grow(beyond: mapSize) } catch { throw wrap(error) }
        }
    }

    /// Sizes of the map and the data in it.
    public func info() -> Info {
        gate.enter()  // both calls read the meta page inside the map
        defer { gate.leave() }
        var info = MDB_envinfo(), stat = MDB_stat()
        _ = mdb_env_info(handle, &info)  // both fail only for NULL arguments
        _ = mdb_env_stat(handle, &stat)
        return Info(mapSize: info.me_mapsize, pageSize: Int(stat.ms_psize), usedPages: info.me_last_pgno + 1,
                    maxReaders: Int(info.me_maxreaders))
    }

    /// Flushes committed data to disk; needed only with `SyncMode.noSync` or `.noMetaSync`.
    @available(*, noasync)
    public func sync() throws(StateError) {
        gate.enter()
        defer { gate.leave() }
        try StateError.check(mdb_env_sync(handle, 1), path: path, "sync")
    }

    /// Begins a transaction; the caller ends it through the handle.
    func begin(readOnly: Bool) throws(StateError) -> TransactionHandle {
        while true {
            gate.enter()
            var txn: OpaquePointer?
            let status = mdb_txn_begin(handle, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
            if status == MDB_SUCCESS, let txn {
                return TransactionHandle(txn: txn, retainedEnvironment: .passRetained(self))
            }
            gate.leave()
            guard status == MDB_MAP_RESIZED else {
                throw StateError(lmdbCode: status, path: path,
                                 operation: readOnly ? "begin a read transaction" : "begin a write transaction")
            }
            // Another process grew the map past ours: adopt its size (0 = the size in the meta page).
            let adopted = gate.whenIdle(timeout: Self.remapTimeout) { mdb_env_set_mapsize(handle, 0) }
            try StateError.check(adopted ?? MDB_MAP_RESIZED, path: path, "adopt the map size grown by another process")
        }
    }

    /// One attempt of `write`; returns only after the transaction has ended, so the map can grow.
    private func attemptWrite<R, E: Error>(
        _ body: (borrowing WriteTransaction) throws(E) -> R, wrap: (StateError) -> E, mapSize: inout Int
    ) throws(E) -> R {
        let txn: WriteTransaction
        do throws(StateError) { txn = try WriteTransaction(self) } catch { throw wrap(error) }
        var info = MDB_envinfo()
        _ = mdb_env_info(handle, &info)
        mapSize = info.me_mapsize
        let result = try body(txn)
        do throws(StateError) { try txn.commit() } catch { throw wrap(error) }
        return result
    }

    /// Doubles the map (up to `maxMapSize`) unless it has grown past `failedSize` since.
    private func grow(beyond failedSize: Int) throws(StateError) {
        guard failedSize < maxMapSize else {
            throw StateError(code: .mapFull, lmdbCode: MDB_MAP_FULL, path: path,
                             detail: "The map is full at Options.maxMapSize (\(maxMapSize) bytes); raise it")
        }
        let newSize = failedSize > maxMapSize / 2 ? maxMapSize : failedSize * 2
        let status = gate.whenIdle(timeout: Self.remapTimeout) { () -> Int32 in
            var info = MDB_envinfo()
            _ = mdb_env_info(handle, &info)
            return info.me_mapsize > failedSize ? MDB_SUCCESS : mdb_env_set_mapsize(handle, newSize)
        }
        guard let status else {
            throw StateError(code: .mapFull, lmdbCode: MDB_MAP_FULL, path: path,
                             detail: "The map is full and could not grow: other transactions of this process "
                                 + "stayed open for \(Self.remapTimeout)")
        }
        try StateError.check(status, path: path, "grow the map to \(newSize) bytes")
    }

    /// How long a remap waits for the process's open transactions to end.
    private static let remapTimeout = Duration.seconds(10)
}

extension StateEnvironment.Options {
    fileprivate func validate(path: String) throws(StateError) {
        func invalid(_ detail: String) -> StateError {
            StateError(code: .invalid, lmdbCode: EINVAL, path: path, detail: detail)
        }
        guard mapSize > 0 else { throw invalid("Options.mapSize must be positive, not \(mapSize)") }
        guard maxMapSize >= mapSize else {
            throw invalid("Options.maxMapSize (\(maxMapSize)) must be at least mapSize (\(mapSize))")
        }
        guard (1...32_767).contains(maxDatabases) else {
            throw invalid("Options.maxDatabases must be in 1...32767, not \(maxDatabases)")
        }
        guard (1...65_535).contains(maxReaders) else {
            throw invalid("Options.maxReaders must be in 1...65535, not \(maxReaders)")
        }
    }
}

extension TransactionHandle {
    /// Opens (or with `create`, creates) the named database. The handle becomes the environment's
    /// when this transaction commits; an abort closes it.
    fileprivate func openDatabase(_ name: String, create: Bool) throws(StateError) -> Database {
        var dbi: MDB_dbi = 0
        let status = mdb_dbi_open(txn, name, create ? UInt32(MDB_CREATE) : 0, &dbi)
        if status == MDB_NOTFOUND {
            throw StateError(code: .notFound, lmdbCode: status, path: environment.path,
                             detail: "There is no database named '\(name)'")
        }
        try check(status, "open database '\(name)'")
        return Database(name: name, dbi: dbi, environment: ObjectIdentifier(environment))
    }
}

/// Identifies a directory by device and inode, whatever path names it.
private struct DirectoryID: Hashable, Sendable {
    let device: UInt64
    let inode: UInt64

    /// Environment directories open in this process. LMDB must not open one twice in a process:
    /// the second open takes over the first one's POSIX locks, then re-initializes the reader table
    /// and the writer mutex in `lock.mdb` under the first.
    private static let open = Mutex(Set<DirectoryID>())

    static func register(_ path: String) throws(StateError) -> DirectoryID {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw StateError(lmdbCode: errno, path: path, operation: "open the environment")
        }
        let id = DirectoryID(device: UInt64(truncatingIfNeeded: info.st_dev),
                             inode: UInt64(truncatingIfNeeded: info.st_ino))
        guard open.withLock({ $0.insert(id).inserted }) else {
            throw StateError(code: .locked, lmdbCode: EBUSY, path: path,
                             detail: "The environment is already open in this process; share that StateEnvironment")
        }
        return id
    }

    static func unregister(_ id: DirectoryID) {
        _ = open.withLock { $0.remove(id) }
    }
}

/// `mkdir -p`: 0 or the `errno` of the first directory that could not be created.
private func createDirectory(_ path: String) -> Int32 {
    if mkdir(path, 0o755) == 0 { return 0 }
    switch errno {
    case EEXIST:
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR ? 0 : ENOTDIR
    case ENOENT:
        var parent = path
        while parent.hasSuffix("/") { parent.removeLast() }
        guard let slash = parent.lastIndex(of: "/"), slash != parent.startIndex else { return ENOENT }
        let status = createDirectory(String(parent[..<slash]))
        guard status == 0 else { return status }
        return mkdir(path, 0o755) == 0 || errno == EEXIST ? 0 : errno
    case let error:
        return error
    }
}
