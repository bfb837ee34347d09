import Foundation
import QuixState
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite struct ErrorTests {
    @Test(
        "a directory without write permission gives notWritable",
        .enabled(if: !isRoot || Tmpfs.isAvailable, "as root only a read-only mount refuses writes, and mounting failed"))
    func notWritable() throws {
        func expectNotWritable(_ dir: String) {
            for path in [dir, dir + "/sub/state"] {  // the lock file, then the directory, cannot be created
                let error = #expect(throws: StateError.self) { try StateEnvironment(path: path) }
                #expect(error?.code == .notWritable)
                #expect(error?.path == path)
                #expect(error?.description.contains(path) == true)
            }
        }
        if isRoot {
            try Tmpfs.withMount(size: 64 << 10, readOnly: true) { expectNotWritable($0) }
        } else {
            try withTemporaryDirectory { dir in
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                chmod(dir, 0o555)
                defer { chmod(dir, 0o755) }
                expectNotWritable(dir)
            }
        }
    }

    @Test("a read-only environment creates nothing and refuses writes")
    func readOnly() throws {
        try withTemporaryDirectory { dir in
            var readOnly = StateEnvironment.Options()
            readOnly.readOnly = true
            let missing = #expect(throws: StateError.self) { try StateEnvironment(path: dir, options: readOnly) }
            #expect(missing?.isNotFound == true)
            #expect(!FileManager.default.fileExists(atPath: dir))

            do {
                let env = try StateEnvironment(path: dir)
                let db = try env.database(named: "s")
                try env.write { try $0.put("v", for: "k", in: db) }
            }
            let env = try StateEnvironment(path: dir, options: readOnly)
            #expect(env.isReadOnly)
            let db = try env.database(named: "s")
            #expect(try env.read { try $0.get("k", in: db) } == Array("v".utf8))
            let write = #expect(throws: StateError.self) { try env.write { try $0.put("w", for: "k", in: db) } }
            #expect(write?.code == .notWritable)
            let create = #expect(throws: StateError.self) { try env.database(named: "new") }
            #expect(create?.isNotFound == true)
        }
    }

    @Test("a damaged data file gives corrupt, naming the path, in both modes")
    func corruptDataFile() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let garbage = (0..<8_192).map { _ in UInt8.random(in: 0...255) }
            try Data(garbage).write(to: URL(fileURLWithPath: dir + "/data.mdb"))
            for readOnly in [false, true, false] {  // a failed open leaves nothing registered or locked
                var options = StateEnvironment.Options()
                options.readOnly = readOnly
                let error = #expect(throws: StateError.self) { try StateEnvironment(path: dir, options: options) }
                #expect(error?.code == .corrupt)
                #expect(error?.description.contains(dir) == true)
            }
        }
    }

    @Test("bad keys and options are rejected, not crashed on")
    func invalidArguments() throws {
        try withTemporaryDirectory { dir in
            var options = StateEnvironment.Options()
            options.maxMapSize = options.mapSize - 1
            #expect(throws: StateError.self) { try StateEnvironment(path: dir, options: options) }
            options = StateEnvironment.Options()
            options.maxDatabases = 0
            #expect(throws: StateError.self) { try StateEnvironment(path: dir, options: options) }

            let env = try StateEnvironment(path: dir)
            let db = try env.database(named: "s")
            for badKey in [[], [UInt8](repeating: 1, count: 512)] {
                let error = #expect(throws: StateError.self) { try env.write { try $0.put("v", for: badKey, in: db) } }
                #expect(error?.code == .invalid)
            }
            try env.write { try $0.put("v", for: [UInt8](repeating: 1, count: 511), in: db) }
        }
    }

    @Test(
        "a full disk gives diskFull; committed data stays readable",
        .enabled(if: Tmpfs.isAvailable, "needs to mount a 1 MiB tmpfs (root)"))
    func diskFull() throws {
        try Tmpfs.withMount(size: 1 << 20, readOnly: false) { dir in
            let env = try StateEnvironment(path: dir, options: smallMap())
            let db = try env.database(named: "s")
            var committed = 0
            var failure: StateError?
            while failure == nil && committed < 10_000 {
                do {
                    try env.write { txn in
                        for i in committed..<committed + 50 { try txn.put(value(i, size: 1_000), for: key(i), in: db) }
                    }
                    committed += 50
                } catch let error as StateError {
                    failure = error
                }
            }
            #expect(failure?.code == .diskFull, "\(String(describing: failure))")
            #expect(committed > 100)
            try env.read { txn throws in
                #expect(try txn.count(in: db) == committed)
                for i in 0..<committed { #expect(try txn.get(key(i), in: db) == value(i, size: 1_000)) }
            }
        }
    }
}
