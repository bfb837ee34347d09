internal import CLMDB

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from the state store. LMDB and system errors keep their raw code, so callers switch on
/// codes instead of matching message text.
public struct StateError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. New codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }

        /// The environment directory or a named database does not exist.
        public static let notFound = Code(name: "notFound")
        /// The map reached `maxMapSize` (or could not grow); the transaction was not committed.
        public static let mapFull = Code(name: "mapFull")
        /// The environment is already open in this process, or a lock is held elsewhere.
        public static let locked = Code(name: "locked")
        /// The data file is damaged, not an LMDB file, or from an incompatible LMDB version.
        public static let corrupt = Code(name: "corrupt")
        /// No permission, a read-only file system, or a write to a read-only environment.
        public static let notWritable = Code(name: "notWritable")
        /// The volume or the quota is full.
        public static let diskFull = Code(name: "diskFull")
        /// An argument was rejected: key size, a stale or foreign database, a bad option.
        public static let invalid = Code(name: "invalid")
        /// All reader slots are in use.
        public static let readersFull = Code(name: "readersFull")
        /// Any other LMDB or system error; see `lmdbCode`.
        public static let other = Code(name: "other")
    }

    public var code: Code
    /// The LMDB return code or `errno` value, unchanged.
    public var lmdbCode: Int32
    /// The environment directory involved.
    public var path: String
    /// What failed, LMDB's message, and what to do about it.
    public var detail: String

    public init(code: Code, lmdbCode: Int32, path: String, detail: String) {
        self.code = code
        self.lmdbCode = lmdbCode
        self.path = path
        self.detail = detail
    }

    public var description: String { "\(code): \(detail) [\(path), code \(lmdbCode)]" }

    public var isMapFull: Bool { code == .mapFull }
    public var isNotFound: Bool { code == .notFound }

    /// The error for an LMDB return code (or `errno`); `operation` says what we were doing.
    init(lmdbCode status: Int32, path: String, operation: String) {
        var code = Self.code(for: status)
        var message = String(cString: mdb_strerror(status))
        if status == EIO && Self.volumeIsFull(path) {
            code = .diskFull
            message += " (a short write: the volume is full)"
        }
        let advice = Self.advice(for: status, code: code)
        self.init(code: code, lmdbCode: status, path: path,
                  detail: "\(operation): \(message)" + (advice.isEmpty ? "" : ". \(advice)"))
    }

    /// LMDB turns a short write into `EIO`; on a volume with (almost) no space left that was ENOSPC.
    private static func volumeIsFull(_ path: String) -> Bool {
        var volume = statvfs()
        return statvfs(path, &volume) == 0 && Int(volume.f_bavail) * Int(volume.f_frsize) < 256 << 10
    }

    /// Throws for any status but `MDB_SUCCESS`.
    static func check(_ status: Int32, path: String, _ operation: @autoclosure () -> String) throws(StateError) {
        if status != MDB_SUCCESS { throw StateError(lmdbCode: status, path: path, operation: operation()) }
    }

    private static func code(for status: Int32) -> Code {
        switch status {
        case MDB_NOTFOUND, ENOENT: .notFound
        case MDB_MAP_FULL: .mapFull
        case EAGAIN, EBUSY: .locked
        case MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_PANIC, MDB_INVALID, MDB_VERSION_MISMATCH: .corrupt
        case EACCES, EROFS, EPERM: .notWritable
        case ENOSPC, EDQUOT: .diskFull
        case EINVAL, ENOTDIR, MDB_BAD_VALSIZE, MDB_BAD_DBI, MDB_BAD_TXN, MDB_BAD_RSLOT, MDB_INCOMPATIBLE,
             MDB_DBS_FULL:
            .invalid
        case MDB_READERS_FULL: .readersFull
        default: .other
        }
    }

    private static func advice(for status: Int32, code: Code) -> String {
        switch status {
        case MDB_INVALID: return "The data file is not an LMDB file or its header is damaged; "
            + "delete the directory to rebuild the state from the changelog"
        case MDB_VERSION_MISMATCH: return "The data file was written by an incompatible LMDB version"
        case MDB_BAD_VALSIZE: return "Keys must be 1 to 511 bytes long"
        case MDB_DBS_FULL: return "Raise Options.maxDatabases"
        case MDB_BAD_TXN: return "The transaction failed earlier (rethrow errors from put instead of ignoring them)"
        case ENOTDIR: return "The path exists but is not a directory"
        default: break
        }
        switch code {
        case .corrupt: return "The data file is damaged; delete the directory to rebuild the state from the changelog"
        case .notWritable: return "Check the directory's owner and permissions, that the file system is mounted "
            + "read-write, and that the environment was not opened read-only"
        case .diskFull: return "Free space on the volume or raise its quota; committed data is intact"
        case .readersFull: return "End long-running read transactions or raise Options.maxReaders"
        case .locked: return "Another process or environment holds the lock"
        default: return ""
        }
    }
}
