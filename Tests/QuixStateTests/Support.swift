import Foundation
import QuixState

#if canImport(Glibc)
import Glibc
#endif

/// Runs `body` with a fresh directory path (not yet created) and removes it afterwards.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("quixstate-\(UUID().uuidString)").path
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// Options with a small map, so tests exercise growth.
func smallMap(_ bytes: Int = 64 << 10) -> StateEnvironment.Options {
    var options = StateEnvironment.Options()
    options.mapSize = bytes
    return options
}

/// A value of `size` bytes that differs per `seed`.
func value(_ seed: Int, size: Int = 100) -> [UInt8] {
    (0..<size).map { UInt8(truncatingIfNeeded: seed &* 31 &+ $0) }
}

func key(_ i: Int) -> String { String(format: "k%06d", i) }

let isRoot = getuid() == 0

/// tmpfs mounts, for a full or a read-only file system. Needs root (CAP_SYS_ADMIN).
enum Tmpfs {
    /// Whether mounting works here; tried once.
    static let isAvailable: Bool = isRoot && ((try? withMount(size: 64 << 10, readOnly: false) { _ in true }) ?? false)

    /// Mounts a tmpfs of `size` bytes on a new directory for the duration of `body`.
    static func withMount<R>(size: Int, readOnly: Bool, _ body: (String) throws -> R) throws -> R {
        try withTemporaryDirectory { path in
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            guard mount("tmpfs", path, "tmpfs", readOnly ? UInt(MS_RDONLY) : 0, "size=\(size)") == 0 else {
                throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EPERM)
            }
            defer { umount2(path, Int32(MNT_DETACH)) }
            return try body(path)
        }
    }
}

/// An LMDB command line tool from lmdb-utils, when installed.
func lmdbTool(_ name: String) -> URL? {
    let url = URL(fileURLWithPath: "/usr/bin/\(name)")
    return FileManager.default.isExecutableFile(atPath: url.path) ? url : nil
}

/// `mdb_load` input in the `bytevalue` format, header included.
func mdbLoadInput(mapSize: Int, entries: some Sequence<(String, [UInt8])>) -> Data {
    var text = Data("VERSION=3\nformat=bytevalue\ntype=btree\nmapsize=\(mapSize)\nHEADER=END\n".utf8)
    for (key, value) in entries {
        for bytes in [Array(key.utf8), value] {
            text.append(UInt8(ascii: " "))
            for byte in bytes { text.append(contentsOf: [hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]]) }
            text.append(UInt8(ascii: "\n"))
        }
    }
    return text
}

private let hexDigits = Array("0123456789abcdef".utf8)
