import Dispatch
import Foundation
import QuixState
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Readers beside writers: other threads of this process, and other processes (the lmdb-utils
/// tools `mdb_load` and `mdb_dump` stand in for a second quixd or an inspection tool).
@Suite struct SharingTests {
    @Test("the map does not grow under an open read transaction of another thread")
    func growthWaitsForReaders() throws {
        try withTemporaryDirectory { dir in
            let env = try StateEnvironment(path: dir, options: smallMap())
            let db = try env.database(named: "s")
            try env.write { try $0.put(value(0), for: key(0), in: db) }

            let lent = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
            let seen = Observed()
            Thread {
                let result = try? env.read { txn throws in
                    try txn.withValue(for: key(0), in: db) { buffer in
                        lent.signal()
                        // The writer needs a bigger map now; it must wait for this transaction,
                        // whose buffer points into the current map.
                        Thread.sleep(forTimeInterval: 0.5)
                        return Observation(mapSize: env.info().mapSize, intact: Array(buffer) == value(0),
                                           count: try txn.count(in: db))
                    }
                }
                seen.value.withLock { $0 = result ?? nil }
                done.signal()
            }.start()

            lent.wait()
            try env.write { txn throws in
                for i in 1...1_000 { try txn.put(value(i, size: 1_000), for: key(i), in: db) }
            }
            done.wait()
            let observed = try #require(seen.value.withLock { $0 })
            #expect(observed.mapSize == 64 << 10)
            #expect(observed.intact)
            #expect(observed.count == 1)
            #expect(env.info().mapSize > 64 << 10)
            #expect(try env.read { try $0.count(in: db) } == 1_001)
        }
    }

    struct Observation: Sendable {
        var mapSize: Int, intact: Bool, count: Int
    }

    final class Observed: Sendable {
        let value = Mutex<Observation?>(nil)
    }

    @Test(
        "a read-only environment reads beside a writing process, and follows its map growth",
        .enabled(if: lmdbTool("mdb_load") != nil, "needs mdb_load from lmdb-utils"))
    func readOnlyBesideWriterProcess() throws {
        try withTemporaryDirectory { dir in
            do {
                let env = try StateEnvironment(path: dir, options: smallMap())
                let db = try env.database(named: "s")
                try env.write { txn in for i in 0..<10 { try txn.put(value(i), for: key(i), in: db) } }
            }
            var options = StateEnvironment.Options()
            options.readOnly = true
            let reader = try StateEnvironment(path: dir, options: options)
            let db = try reader.database(named: "s", create: false)
            let mapBefore = reader.info().mapSize

            // The writer: about 2 MB more, in a map it sets to 8 MiB.
            let entries = (10..<2_010).map { (key($0), value($0, size: 1_000)) }
            func expected(_ i: Int) -> [UInt8] { i < 10 ? value(i) : entries[i - 10].1 }
            let loader = Process()
            loader.executableURL = lmdbTool("mdb_load")
            loader.arguments = ["-s", "s", dir]
            let input = Pipe()
            loader.standardInput = input
            try loader.run()
            signal(SIGPIPE, SIG_IGN)  // a failing mdb_load must fail the write below, not kill the tests
            try input.fileHandleForWriting.write(contentsOf: mdbLoadInput(mapSize: 8 << 20, entries: entries))

            // mdb_load commits every 100 entries while it runs: reads go on, each seeing whole commits.
            try reader.read { txn in
                let count = try txn.count(in: db)
                #expect(count >= 10 && (count - 10) % 100 == 0)
                for i in 0..<count { #expect(try txn.get(key(i), in: db) == expected(i)) }
                #expect(try txn.get(key(count), in: db) == nil)
            }

            try input.fileHandleForWriting.write(contentsOf: Data("DATA=END\n".utf8))
            try input.fileHandleForWriting.close()
            loader.waitUntilExit()
            #expect(loader.terminationStatus == 0)

            try reader.read { txn throws in
                #expect(try txn.count(in: db) == 2_010)
                for i in 0..<2_010 { #expect(try txn.get(key(i), in: db) == expected(i)) }
            }
            #expect(mapBefore < 1 << 20)
            #expect(reader.info().mapSize == 8 << 20)
        }
    }

    @Test(
        "opening clears reader slots of crashed processes",
        .enabled(if: lmdbTool("mdb_dump") != nil, "needs mdb_dump from lmdb-utils"))
    func staleReaders() throws {
        try withTemporaryDirectory { dir in
            do {
                let env = try StateEnvironment(path: dir)
                let db = try env.database(named: "s")
                try env.write { txn in for i in 0..<2_000 { try txn.put(value(i, size: 1_000), for: key(i), in: db) } }
            }
            // Each mdb_dump opens a read transaction, then blocks writing 4 MB into a pipe nobody reads.
            func startReader() throws -> Process {
                let dump = Process()
                dump.executableURL = lmdbTool("mdb_dump")
                dump.arguments = ["-s", "s", dir]
                let output = Pipe()
                dump.standardOutput = output
                try dump.run()
                _ = try output.fileHandleForReading.read(upToCount: 1)  // it has begun its transaction
                return dump
            }
            let alive = try startReader()  // keeps the lock file in use, so the next open does not reset it
            defer {
                kill(alive.processIdentifier, SIGKILL)
                alive.waitUntilExit()
            }
            let crashed = try startReader()
            kill(crashed.processIdentifier, SIGKILL)
            crashed.waitUntilExit()

            let env = try StateEnvironment(path: dir)
            #expect(env.staleReadersCleared == 1)
        }
    }
}
