import Dispatch
import Foundation
import QuixState
import Testing

@Suite struct TransactionTests {
    @Test("put, get and delete across transactions, and after reopening")
    func roundTrip() throws {
        try withTemporaryDirectory { dir in
            do {
                let env = try StateEnvironment(path: dir + "/nested/state")  // creates its parents
                let db = try env.database(named: "counts")
                try env.write { txn throws in
                    try txn.put([1, 2, 3], for: "a", in: db)
                    try txn.put("text value", for: [0x00, 0xFF], in: db)
                    try txn.put([9], for: "gone", in: db)
                    #expect(try txn.get("a", in: db) == [1, 2, 3])  // sees its own change
                }
                try env.write { txn throws in
                    #expect(try txn.delete("gone", in: db))
                    #expect(try !txn.delete("never there", in: db))
                }
                try env.read { txn throws in
                    #expect(try txn.get("a", in: db) == [1, 2, 3])
                    #expect(try txn.get("gone", in: db) == nil)
                    #expect(try txn.count(in: db) == 2)
                }
            }
            // The environment above is closed; this reads the files.
            let env = try StateEnvironment(path: dir + "/nested/state")
            let db = try env.database(named: "counts", create: false)
            try env.read { txn throws in
                #expect(try txn.get("a", in: db) == [1, 2, 3])
                #expect(try txn.get([0x00, 0xFF], in: db) == Array("text value".utf8))
                #expect(try txn.get("gone", in: db) == nil)
                let length = try txn.withValue(for: "a", in: db) { $0.count }
                #expect(length == 3)
                #expect(try txn.withValue(for: "missing", in: db) { $0.count } == nil)
            }
        }
    }

    @Test("abort, a dropped transaction and a throwing write discard their changes")
    func abortDiscards() throws {
        struct Failure: Error {}
        try withTemporaryDirectory { dir in
            let env = try StateEnvironment(path: dir)
            let db = try env.database(named: "s")
            try env.write { try $0.put("kept", for: "k", in: db) }

            let aborted = try WriteTransaction(env)
            try aborted.put("aborted", for: "k", in: db)
            try aborted.put("aborted", for: "new", in: db)
            aborted.abort()

            do {
                let dropped = try WriteTransaction(env)
                try dropped.put("dropped", for: "k", in: db)
            }

            // Both transactions released the write lock: another thread can begin one.
            let began = DispatchSemaphore(value: 0)
            Thread {
                if let next = try? WriteTransaction(env) { next.abort() }
                began.signal()
            }.start()
            try #require(began.wait(timeout: .now() + 10) == .success, "an ended transaction still holds the write lock")

            #expect(throws: Failure.self) {  // the body's own error, rethrown
                try env.write { txn in
                    try txn.put("thrown", for: "k", in: db)
                    throw Failure()
                }
            }

            let committed = try WriteTransaction(env)
            #expect(try committed.get("k", in: db) == Array("kept".utf8))
            #expect(try committed.get("new", in: db) == nil)
            try committed.commit()
        }
    }

    @Test("named databases are independent")
    func namedDatabases() throws {
        try withTemporaryDirectory { dir in
            let env = try StateEnvironment(path: dir)
            let first = try env.database(named: "first"), second = try env.database(named: "second")
            #expect(first != second)
            try env.write { txn throws in
                try txn.put("1", for: "k", in: first)
                try txn.put("2", for: "k", in: second)
                try txn.put("2", for: "only-second", in: second)
            }
            try env.read { txn throws in
                #expect(try txn.get("k", in: first) == Array("1".utf8))
                #expect(try txn.get("k", in: second) == Array("2".utf8))
                #expect(try txn.get("only-second", in: first) == nil)
            }

            try env.write { try $0.clear(second) }
            try env.read { txn throws in
                #expect(try txn.count(in: second) == 0)
                #expect(try txn.count(in: first) == 1)
            }

            try env.drop(second)
            #expect(try env.read { try $0.get("k", in: first) } == Array("1".utf8))
            let error = #expect(throws: StateError.self) { try env.database(named: "second", create: false) }
            #expect(error?.isNotFound == true)
            #expect(try env.database(named: "first", create: false) == first)
        }
    }

    @Test("a database handle is refused by another environment")
    func foreignDatabase() throws {
        try withTemporaryDirectory { dir in
            let one = try StateEnvironment(path: dir + "/one"), other = try StateEnvironment(path: dir + "/other")
            let db = try one.database(named: "s")
            _ = try other.database(named: "s")  // same name, same handle number, different environment
            let error = #expect(throws: StateError.self) { try other.write { try $0.put("v", for: "k", in: db) } }
            #expect(error?.code == .invalid)
        }
    }

    @Test("prefix iteration returns exactly the prefixed keys in order; prefix delete removes exactly those")
    func prefixes() throws {
        try withTemporaryDirectory { dir in
            let env = try StateEnvironment(path: dir)
            let db = try env.database(named: "s")
            // Enough keys to span many pages, with neighbours on both sides of each prefix.
            let streams = ["a", "a/", "a/b/", "a0", "b/", "z/"]
            var all: [[UInt8]] = []
            for stream in streams {
                for i in 0..<300 { all.append(Array("\(stream)\(key(i))".utf8)) }
            }
            let ffPrefix: [UInt8] = [0x01, 0xFF]  // the upper bound of this prefix carries into the first byte
            all += [[0x01, 0xFE, 0x00], [0x01, 0xFF], [0x01, 0xFF, 0x00], [0x01, 0xFF, 0xFF, 0x07], [0x02], [0xFF, 0xFF]]
            try env.write { txn throws in
                for (index, key) in all.shuffled().enumerated() { try txn.put(value(index, size: 40), for: key, in: db) }
            }
            let sorted = all.sorted { $0.lexicographicallyPrecedes($1) }

            func keys(prefix: [UInt8]) throws -> [[UInt8]] {
                try env.read { txn throws in
                    var keys: [[UInt8]] = []
                    try txn.forEach(in: db, prefix: prefix) { key, _ in
                        keys.append(Array(key))
                        return true
                    }
                    return keys
                }
            }
            for prefix in [Array("a/".utf8), Array("a".utf8), Array("z/".utf8), ffPrefix, [0xFF], []] {
                #expect(try keys(prefix: prefix) == sorted.filter { $0.starts(with: prefix) })
            }
            #expect(try keys(prefix: Array("c/".utf8)).isEmpty)

            // A key range, stopped early.
            let range = try env.read { txn throws in
                var keys: [String] = []
                try txn.forEach(in: db, from: Array("a0".utf8), before: Array("b/".utf8)) { key, _ in
                    keys.append(String(decoding: key, as: UTF8.self))
                    return keys.count < 5
                }
                return keys
            }
            #expect(range == (0..<5).map { "a0" + key($0) })

            // Values come with their keys.
            let firstValue = try env.read { txn throws in
                var found: [UInt8]?
                try txn.forEach(in: db, prefix: "b/") { _, value in
                    found = Array(value)
                    return false
                }
                return found
            }
            let expected = try env.read { try $0.get("b/" + key(0), in: db) }
            #expect(firstValue == expected)

            let deleted = try env.write { try $0.deleteAll(in: db, prefix: "a/") }
            #expect(deleted == 600)  // "a/" and "a/b/"
            let deletedFF = try env.write { try $0.deleteAll(in: db, prefix: ffPrefix) }
            #expect(deletedFF == 3)
            let deletedLast = try env.write { try $0.deleteAll(in: db, prefix: "z/") }  // the range ends the database
            #expect(deletedLast == 300)
            let remaining = try keys(prefix: [])
            #expect(remaining == sorted.filter {
                !$0.starts(with: Array("a/".utf8)) && !$0.starts(with: ffPrefix) && !$0.starts(with: Array("z/".utf8))
            })
        }
    }

    @Test("write grows a full map and retries, until maxMapSize")
    func mapGrowth() throws {
        try withTemporaryDirectory { dir in
            var options = smallMap()
            options.maxMapSize = 16 << 20
            let env = try StateEnvironment(path: dir, options: options)
            #expect(env.info().mapSize == 64 << 10)
            let db = try env.database(named: "s")

            // About 4 MB in one transaction, then more in many small ones.
            let values = (0..<4_000).map { value($0, size: 1_000) }
            var attempts = 0
            try env.write { txn in
                attempts += 1
                for (i, value) in values.enumerated() { try txn.put(value, for: key(i), in: db) }
            }
            #expect(attempts > 1)
            for batch in 0..<20 {
                try env.write { txn throws in
                    for i in 0..<100 { try txn.put(value(i, size: 500), for: "b" + key(batch * 100 + i), in: db) }
                }
            }
            let info = env.info()
            #expect(info.mapSize > 4 << 20)
            #expect(info.usedBytes > 4 << 20)
            try env.read { txn throws in
                #expect(try txn.count(in: db) == 6_000)
                for (i, value) in values.enumerated() { #expect(try txn.get(key(i), in: db) == value) }
            }

            // 16 MiB hold no more than about 8 MB of these: past the limit, mapFull, nothing committed.
            let error = #expect(throws: StateError.self) {
                try env.write { txn throws in
                    for i in 0..<20_000 { try txn.put(values[i % values.count], for: "c" + key(i), in: db) }
                }
            }
            #expect(error?.isMapFull == true)
            #expect(env.info().mapSize == 16 << 20)
            #expect(try env.read { try $0.count(in: db) } == 6_000)
            try env.write { try $0.put("still writable", for: "after", in: db) }
        }
    }

    @Test("a second open of the same directory in one process is refused")
    func secondOpenRefused() throws {
        try withTemporaryDirectory { dir in
            do {
                let env = try StateEnvironment(path: dir)
                var readOnly = StateEnvironment.Options()
                readOnly.readOnly = true
                let error = #expect(throws: StateError.self) { try StateEnvironment(path: dir + "/.", options: readOnly) }
                #expect(error?.code == .locked)
                withExtendedLifetime(env) {}
            }
            _ = try StateEnvironment(path: dir)  // the first one is closed
        }
    }
}
