import Foundation
#if canImport(Glibc)
import Glibc
#endif
import QuixKafka
import QuixStreams
import Synchronization
import Testing

/// Writes `rows` one-row packages with values 1...rows on each stream, then flushes.
private func produce(_ cluster: MockCluster, _ topic: String, streams: [String], rows: ClosedRange<Int>, close: Bool = false) async throws {
    let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer(topic)
    for id in streams {
        let stream = try producer.getOrCreateStream(id)
        for row in rows { try await stream.addTimestamp(nanoseconds: Int64(row)).addValue("v", Double(row)).publish() }
        if close { try await stream.close() }
    }
    try await producer.close()
}

/// Runs a stateful consumer that adds every value of `v` to the state key "sum" until
/// `packages` packages and errors were handled, then closes it; returns how many were.
private func runSums(
    _ cluster: MockCluster, _ topic: String, group: String, state: StateOptions, packages: Int,
    handler: (@Sendable (StreamConsumer, TimeseriesFrame) throws -> Void)? = nil
) async throws -> Int {
    let handled = try await runUntil(cluster, topic, group: group, state: state, commit: CommitOptions(everyPackages: 1, interval: nil), handler: handler) {
        $0.packages + $0.errors >= packages
    }
    return handled.packages + handled.errors
}

/// What a summing consumer handled: packages, errors reported, and errors since the last package.
private struct Handled: Sendable {
    var packages = 0
    var errors = 0
    var errorsSince = 0
}

/// Runs a stateful consumer that adds every value of `v` to the state key "sum" until `done`
/// holds or 60 s passed, then closes it; returns what it handled.
private func runUntil(
    _ cluster: MockCluster, _ topic: String, group: String, state: StateOptions,
    commit: CommitOptions = CommitOptions(everyPackages: nil, interval: .seconds(1)),
    handler: (@Sendable (StreamConsumer, TimeseriesFrame) throws -> Void)? = nil, _ done: (Handled) async throws -> Bool
) async throws -> Handled {
    let client = KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" }
    let consumer = try TopicConsumer(client: client, topic: topic, group: group, startFrom: .earliest, commit: commit, state: state)
    let handled = Mutex(Handled())
    consumer.onStreamReceived { stream in
        stream.onFrameReceived { stream, frame in
            try stream.state().update("sum", default: 0.0) { $0 += frame["v"]!.sum() ?? 0 }
            try handler?(stream, frame)
            handled.withLock {
                $0.packages += 1
                $0.errorsSince = 0
            }
        }
    }
    consumer.onError { _, _ in
        handled.withLock {
            $0.errors += 1
            $0.errorsSince += 1
        }
    }
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await consumer.run() }
        let deadline = ContinuousClock.now + .seconds(60)
        while try await !done(handled.withLock { $0 }) && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        await consumer.close()
        try await group.waitForAll()
    }
    return handled.withLock { $0 }
}

/// Every stored "sum" under `directory`, by stream.
private func storedSums(_ directory: String) throws -> [String: Double] {
    var sums: [String: Double] = [:]
    for path in try StateInspector.partitions(under: directory) {
        for entry in try StateInspector.entries(at: path) where entry.key == "sum" {
            if case .double(let value) = entry.value { sums[entry.streamID] = value }
        }
    }
    return sums
}

private func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID().uuidString)").path
}

@Suite("per-stream state", .serialized, .timeLimit(.minutes(3)))
struct StateTests {
    @Test("a restart resumes at the state's checkpoint, even in a group that committed nothing")
    func resumesAtCheckpoint() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("sums", partitions: 2)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let streams = ["a", "b", "c"]
        try await produce(cluster, "sums", streams: streams, rows: 1...10)
        let state = StateOptions(directory: directory, name: "sums-state", changelog: false)
        #expect(try await runSums(cluster, "sums", group: "first", state: state, packages: 30) == 30)
        #expect(try storedSums(directory) == ["a": 55, "b": 55, "c": 55])

        try await produce(cluster, "sums", streams: streams, rows: 11...12)
        // Another group has no committed offset: without the state's checkpoint it would start
        // at the beginning and count the first 30 rows twice.
        let handled = try await runSums(cluster, "sums", group: "second", state: state, packages: 6)
        try await Task.sleep(for: .milliseconds(500))
        #expect(handled == 6)
        #expect(try storedSums(directory) == ["a": 78, "b": 78, "c": 78])
    }

    @Test("a handler that throws leaves no state change behind")
    func rollsBack() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("rollback", partitions: 1)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await produce(cluster, "rollback", streams: ["s"], rows: 1...5)
        struct Refused: Error {}
        _ = try await runSums(cluster, "rollback", group: "g", state: StateOptions(directory: directory, changelog: false), packages: 5) { _, frame in
            if frame["v"]![0] == 3 { throw Refused() }  // after the sum was updated
        }
        #expect(try storedSums(directory) == ["s": 12], "1 + 2 + 4 + 5: the failed package's change was rolled back")
    }

    @Test("typed values: a type mismatch and a missing state directory are clear errors; Codable values round-trip")
    func typedValues() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("typed", partitions: 1)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await produce(cluster, "typed", streams: ["s"], rows: 1...1)
        struct Position: Codable, Equatable { var lat: Double, lon: Double }
        let results = Mutex([String]())
        _ = try await runSums(cluster, "typed", group: "g", state: StateOptions(directory: directory, changelog: false), packages: 1) { stream, _ in
            let state = try stream.state("typed")
            state.set("count", 3)
            state.set("name", "car")
            state.set("blob", [UInt8]([1, 2]))
            try state.encode(Position(lat: 1.5, lon: -2), for: "where")
            do throws(StreamStateError) {
                _ = try state.get("count", as: String.self)
            } catch {
                results.withLock { $0.append("\(error.code): \(error.detail)") }
            }
            results.withLock { $0.append("position \(try! state.decode("where", as: Position.self) == Position(lat: 1.5, lon: -2))") }
            results.withLock { $0.append("keys \(try! state.keys())") }
        }
        #expect(results.withLock { $0 } == [
            #"typeMismatch: state "typed" of stream "s", key "count" holds a Int, read as String"#, "position true",
            #"keys ["blob", "count", "name", "where"]"#,
        ])

        let plain = try TopicConsumer(client: KafkaStreamingClient(brokers: cluster.bootstrapServers), topic: "typed", group: nil, startFrom: .earliest)
        let missing = Mutex<StreamStateError?>(nil)
        plain.onStreamReceived { stream in
            do throws(StreamStateError) { _ = try stream.state() } catch { missing.withLock { $0 = error } }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await plain.run() }
            while missing.withLock({ $0 }) == nil { try await Task.sleep(for: .milliseconds(20)) }
            await plain.close()
            try await group.waitForAll()
        }
        #expect(missing.withLock { $0?.code } == .notConfigured)
    }

    @Test("a state directory that cannot be written stops the consumer with an error naming it")
    func unwritableDirectory() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("unwritable", partitions: 1)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-directory-\(UUID().uuidString)")
        try Data("x".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let consumer = try TopicConsumer(
            client: KafkaStreamingClient(brokers: cluster.bootstrapServers), topic: "unwritable", group: "g", startFrom: .earliest,
            state: StateOptions(directory: file.path, changelog: false))
        let error = await #expect(throws: StreamStateError.self) { try await consumer.run() }
        #expect(error?.code == .storage)
        #expect(error?.description.contains(file.path) == true, "\(String(describing: error))")
    }

    @Test("with clearOnStreamEnd, a stream's state is deleted when it ends; others keep theirs")
    func clearOnStreamEnd() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("ending", partitions: 1)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await produce(cluster, "ending", streams: ["ends"], rows: 1...3, close: true)
        try await produce(cluster, "ending", streams: ["stays"], rows: 1...3)
        _ = try await runSums(cluster, "ending", group: "g", state: StateOptions(directory: directory, clearOnStreamEnd: true, changelog: false), packages: 6)
        #expect(try storedSums(directory) == ["stays": 6])
    }

    @Test("a replica with an empty directory restores from the changelog and continues the sums exactly")
    func restoresFromChangelog() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("moving", partitions: 2)
        try cluster.createTopic("moving-state-moving-changelog", partitions: 2)
        let first = temporaryDirectory(), second = temporaryDirectory()
        defer { for directory in [first, second] { try? FileManager.default.removeItem(atPath: directory) } }
        let streams = ["a", "b", "c"]
        try await produce(cluster, "moving", streams: streams, rows: 1...10)
        #expect(try await runSums(cluster, "moving", group: "g", state: StateOptions(directory: first, name: "moving-state"), packages: 30) == 30)
        try await produce(cluster, "moving", streams: streams, rows: 11...12)
        // The second replica has its own, empty directory (another pod's PVC).
        let handled = try await runSums(cluster, "moving", group: "g", state: StateOptions(directory: second, name: "moving-state"), packages: 6)
        try await Task.sleep(for: .milliseconds(500))
        #expect(handled == 6)
        #expect(try storedSums(second) == ["a": 78, "b": 78, "c": 78])
    }

    @Test("a state ahead of the group's offset (its member's commits were refused) is committed by the next member, with no message left to process")
    func commitsRestoredCheckpoint() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("ahead", partitions: 1)
        try cluster.createTopic("ahead-state-ahead-changelog", partitions: 1)
        let first = temporaryDirectory(), second = temporaryDirectory()
        defer { for directory in [first, second] { try? FileManager.default.removeItem(atPath: directory) } }
        try await produce(cluster, "ahead", streams: ["a"], rows: 1...10)
        let input = [TopicPartition("ahead", 0)]
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: "g"))
        func committed() async throws -> Int64? { try await probe.committed(input).first?.offset }
        let end = try await probe.watermarks(input[0]).high

        // The first member's offset commits are all refused: its state and changelog reach the
        // end of the input, the group's offset does not (as when a member loses the group
        // between its state checkpoint and its commit).
        cluster.pushRequestErrors(.offsetCommit, Array(repeating: .topicAuthorizationFailed, count: 1_000))
        // A checkpoint after the last package writes the state, then its commit is refused.
        _ = try await runUntil(cluster, "ahead", group: "g", state: StateOptions(directory: first, name: "ahead-state")) {
            $0.packages == 10 && $0.errorsSince > 0
        }
        cluster.clearRequestErrors(.offsetCommit)
        #expect(try StateInspector.partitions(under: first).map { try StateInspector.partition(at: $0).checkpoint } == [end])
        #expect(try await committed() != end, "the first member's commits were refused")

        // The second member restores the state at the end of the input: no message comes, yet
        // it commits where its state resumes.
        _ = try await runUntil(cluster, "ahead", group: "g", state: StateOptions(directory: second, name: "ahead-state")) { _ in
            try await committed() == end
        }
        #expect(try await committed() == end)
        await probe.close()
        #expect(try storedSums(second) == ["a": 55])
    }

    @Test("a restore applies the changelog up to its last checkpoint marker, not what follows it")
    func restoreStopsAtLastMarker() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("marked", partitions: 1)
        try cluster.createTopic("m-marked-changelog", partitions: 1)
        try await produce(cluster, "marked", streams: ["s"], rows: 1...10)  // the properties at 0, values 1...10 at 1...10
        // A changelog as a replica left it: sum 3 (rows 1 and 2) checkpointed at input offset 3,
        // then a change whose checkpoint never completed.
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        let key = [0, 7] + Array("default".utf8) + [0, 1] + Array("s".utf8) + Array("sum".utf8)
        for (key, value) in [
            (key, [1] + Array(3.0.bitPattern.littleEndianBytes)),
            ([0xFF, 0xFF] + Array("checkpoint".utf8), [0, 0, 0, 0, 0, 0, 0, 3]),
            (key, [1] + Array(999.0.bitPattern.littleEndianBytes)),
        ] as [([UInt8], [UInt8])] {
            try await producer.send(OutgoingMessage(topic: "m-marked-changelog", key: key, value: value, partition: 0))
        }
        try await producer.flush()
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let handled = try await runSums(cluster, "marked", group: "g", state: StateOptions(directory: directory, name: "m"), packages: 8)
        try await Task.sleep(for: .milliseconds(500))
        #expect(handled == 8, "rows 3...10 only")
        #expect(try storedSums(directory) == ["s": 55])
    }

    @Test("a corrupt environment stops the consumer (fail), or is moved aside and rebuilt from the changelog (rebuild)")
    func corruptEnvironment() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("damaged", partitions: 1)
        try cluster.createTopic("d-damaged-changelog", partitions: 1)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await produce(cluster, "damaged", streams: ["a", "b"], rows: 1...10)
        _ = try await runSums(cluster, "damaged", group: "g", state: StateOptions(directory: directory, name: "d"), packages: 20)
        let environment = directory + "/d/damaged-0"
        try Data((0..<8_192).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(to: URL(fileURLWithPath: environment + "/data.mdb"))
        try await produce(cluster, "damaged", streams: ["a", "b"], rows: 11...12)

        let failing = try TopicConsumer(
            client: KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" },
            topic: "damaged", group: "g", startFrom: .earliest,
            state: StateOptions(directory: directory, name: "d"))
        let error = await #expect(throws: StreamStateError.self) { try await failing.run() }
        #expect(error?.description.contains("is corrupt") == true && error?.description.contains(environment) == true, "\(String(describing: error))")

        let handled = try await runSums(
            cluster, "damaged", group: "g", state: StateOptions(directory: directory, name: "d", onStateMismatch: .rebuild), packages: 4)
        try await Task.sleep(for: .milliseconds(500))
        #expect(handled == 4)
        #expect(try storedSums(directory + "/d/damaged-0") == ["a": 78, "b": 78], "rebuilt from the changelog, then the two new rows")
        let aside = try FileManager.default.contentsOfDirectory(atPath: directory + "/d").filter { $0.hasPrefix("damaged-0.corrupt-") }
        #expect(aside.count == 1, "the corrupt environment is kept beside it")
    }

    @Test("a checkpoint older than the partition's oldest message stops the consumer, saying how many messages it missed")
    func agedOutInput() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("aged", partitions: 1)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await produce(cluster, "aged", streams: ["s"], rows: 1...5)
        _ = try await runSums(cluster, "aged", group: "g", state: StateOptions(directory: directory, changelog: false), packages: 5)
        // The mock keeps about 5 MB per partition: with 7 MB more, the oldest messages, the
        // checkpoint's included, go, as retention would delete them.
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        let filler = [UInt8](repeating: 0x2E, count: 10_000)
        for _ in 0..<700 { try await producer.send(OutgoingMessage(topic: "aged", key: Array("s".utf8), value: filler)) }
        try await producer.flush()
        let low = try await KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
            .watermarks(TopicPartition("aged", 0)).low
        try #require(low > 6, "the mock kept every message (low watermark \(low)): nothing aged out")

        let consumer = try TopicConsumer(
            client: KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" },
            topic: "aged", group: "g", startFrom: .earliest, state: StateOptions(directory: directory, changelog: false))
        let error = await #expect(throws: StreamStateError.self) { try await consumer.run() }
        #expect(error?.description.contains("was checkpointed at offset 6, but the partition now starts at \(low)") == true, "\(String(describing: error))")
        #expect(error?.description.contains("\(low - 6) messages were deleted") == true)
    }

    @Test("a changelog shorter than the local state stops the consumer, saying what it found")
    func mismatchFails() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let cluster = try MockCluster(brokers: 1)
            try cluster.createTopic("short", partitions: 1)
            try cluster.createTopic("s-short-changelog", partitions: 1)
            try await produce(cluster, "short", streams: ["s"], rows: 1...3)
            _ = try await runSums(cluster, "short", group: "g", state: StateOptions(directory: directory, name: "s"), packages: 3)
        }
        // Another cluster: the changelog is empty (deleted and recreated, say).
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("short", partitions: 1)
        try cluster.createTopic("s-short-changelog", partitions: 1)
        try await produce(cluster, "short", streams: ["s"], rows: 1...3)
        let consumer = try TopicConsumer(
            client: KafkaStreamingClient(brokers: cluster.bootstrapServers), topic: "short", group: "g", startFrom: .earliest,
            state: StateOptions(directory: directory, name: "s"))
        let error = await #expect(throws: StreamStateError.self) { try await consumer.run() }
        #expect(error?.description.contains("but the changelog ends or restarts at 0") == true, "\(String(describing: error))")
        #expect(error?.description.contains("rebuild") == true)
    }

    @Test("a stream idle longer than closeIdleStreamsAfter ends as Terminated, and its state is cleared")
    func idleStreams() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("idle", partitions: 1)
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await produce(cluster, "idle", streams: ["quiet"], rows: 1...3)
        let closed = Mutex([String]())
        do {
            let consumer = try TopicConsumer(
                client: KafkaStreamingClient(brokers: cluster.bootstrapServers), topic: "idle", group: "g", startFrom: .earliest,
                commit: CommitOptions(everyPackages: 1, interval: nil),
                state: StateOptions(directory: directory, clearOnStreamEnd: true, changelog: false), closeIdleStreamsAfter: .seconds(1))
            let summed = Mutex(0)
            consumer.onStreamReceived { stream in
                stream.onFrameReceived { stream, frame in
                    try stream.state().update("sum", default: 0.0) { $0 += frame["v"]!.sum() ?? 0 }
                    summed.withLock { $0 += 1 }
                }
                stream.onStreamClosed { stream, type in closed.withLock { $0.append("\(stream.streamID) \(type.rawValue)") } }
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await consumer.run() }
                let clock = ContinuousClock()
                let deadline = clock.now + .seconds(30)
                while closed.withLock({ $0 }).isEmpty && clock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
                #expect(summed.withLock { $0 } == 3)
                try await Task.sleep(for: .milliseconds(300))  // the clearing is checkpointed with the next commit
                await consumer.close()
                try await group.waitForAll()
            }
        }
        #expect(closed.withLock { $0 } == ["quiet Terminated"])
        #expect(try storedSums(directory).isEmpty, "the idle stream's state was cleared")
    }

    @Test(
        "a disk that fills: checkpoints fail and say so, nothing is committed or lost, and they resume when space returns",
        .enabled(if: canMountTmpfs, "needs root to mount a small tmpfs"))
    func diskFull() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("big", partitions: 1)
        try await produce(cluster, "big", streams: ["s"], rows: 1...60)
        let mountPoint = temporaryDirectory()
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        try #require(mount("tmpfs", mountPoint, "tmpfs", 0, "size=2m") == 0)
        defer {
            umount2(mountPoint, Int32(MNT_DETACH))
            try? FileManager.default.removeItem(atPath: mountPoint)
        }
        let filler = mountPoint + "/filler"
        try Data(count: 1_000_000).write(to: URL(fileURLWithPath: filler))

        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" }
        let consumer = try TopicConsumer(
            client: client, topic: "big", group: "g", startFrom: .earliest, commit: CommitOptions(everyPackages: 10, interval: .milliseconds(500)),
            state: StateOptions(directory: mountPoint + "/state", changelog: false))
        let errors = Mutex([String]())
        let handled = Mutex(0)
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { stream, frame in
                let row = Int(frame["v"]![0]!)
                try stream.state().set("row-\(row)", String(repeating: "\(row % 10)", count: 20_000))
                handled.withLock { $0 += 1 }
            }
        }
        consumer.onError { error, context in errors.withLock { $0.append("\(context): \(error)") } }
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: "g"))
        let partition = TopicPartition("big", 0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            let clock = ContinuousClock()
            var deadline = clock.now + .seconds(60)
            // The first failed checkpoint pauses the partition: processing stops until it succeeds.
            while errors.withLock({ $0 }).isEmpty && clock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            let refused = errors.withLock { $0 }
            #expect(refused.contains { $0.contains("state checkpoint") && $0.contains("diskFull") }, "\(refused)")
            #expect(consumer.checkpointProblems().keys.contains(partition), "the failing partition is reported (readiness)")
            let stuck = try await probe.committed([partition]).first?.offset ?? -1
            #expect(stuck < 61, "offsets past the failed checkpoint were committed: \(stuck)")
            // Space returns: the pending changes are written at the next commit.
            try FileManager.default.removeItem(atPath: filler)
            deadline = clock.now + .seconds(30)
            while try await probe.committed([partition]).first?.offset != 61 && clock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(try await probe.committed([partition]).first?.offset == 61)
            #expect(handled.withLock { $0 } == 60, "the partition resumed once its checkpoint succeeded")
            #expect(consumer.checkpointProblems().isEmpty)
            await consumer.close()
            try await group.waitForAll()
        }
        let entries = try StateInspector.partitions(under: mountPoint + "/state").flatMap { try StateInspector.entries(at: $0) }
        #expect(entries.count == 60, "every row's value reached the state")
        #expect(entries.allSatisfy { entry in
            guard case .string(let value) = entry.value, let row = Int(entry.key.dropFirst(4)) else { return false }
            return value == String(repeating: "\(row % 10)", count: 20_000)
        })
    }
}

/// Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN); tried once.
private let canMountTmpfs: Bool = {
    guard getuid() == 0 else { return false }
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("tmpfs-probe-\(UUID().uuidString)").path
    guard (try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)) != nil else { return false }
    defer { try? FileManager.default.removeItem(atPath: path) }
    guard mount("tmpfs", path, "tmpfs", 0, "size=64k") == 0 else { return false }
    umount2(path, Int32(MNT_DETACH))
    return true
}()


extension UInt64 {
    fileprivate var littleEndianBytes: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: self >> (8 * $0)) } }
}