import Foundation
import Glibc
import QuixKafka
import QuixStreams
import Synchronization
import Testing

/// `quixd broker` as a child process, its bootstrap servers read from its first line.
final class BrokerProcess: Sendable {
    let process: Process
    let bootstrapServers: String

    init(_ arguments: [String]) async throws {
        process = Process()
        process.executableURL = try quixd()
        process.arguments = ["broker"] + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        let printed = Mutex(Data())
        output.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            printed.withLock { $0.append(data) }
        }
        try process.run()
        let deadline = ContinuousClock.now + .seconds(20)
        while !printed.withLock({ $0.contains(UInt8(ascii: "\n")) }) {
            try #require(process.isRunning && ContinuousClock.now < deadline, "quixd broker printed no bootstrap servers")
            try await Task.sleep(for: .milliseconds(20))
        }
        bootstrapServers = String(decoding: printed.withLock { $0 }, as: UTF8.self).split(separator: "\n")[0].trimmingCharacters(in: .whitespaces)
    }

    deinit { if process.isRunning { process.terminate() } }
}

/// The partitions of `topic` on `brokers`, or nil when it does not exist.
private func partitionCount(_ brokers: String, _ topic: String) async throws -> Int? {
    try await KafkaAdmin(settings: AdminSettings(bootstrapServers: [brokers])).metadata(topic: topic).first?.partitions.count
}

/// One-row packages of `speed` on each stream, 100 ms of data time apart from `first` on.
private func produceSpeeds(_ brokers: String, streams: Int, rows: Range<Int>, speed: (Int, Int) -> Double) async throws {
    let producer = try KafkaStreamingClient(brokers: brokers).topicProducer("telemetry")
    for stream in 0..<streams {
        let handle = try producer.getOrCreateStream("car-\(stream)")
        for row in rows { try await handle.addTimestamp(nanoseconds: Int64(row) * 100_000_000).addValue("speed", speed(stream, row)).publish() }
    }
    try await producer.close()
}

/// The odometer (trip-stats' running distance) of every stream in a state directory.
private func odometers(_ stateDirectory: String) throws -> [String: Double] {
    var found: [String: Double] = [:]
    for path in try StateInspector.partitions(under: stateDirectory + "/trip-stats") {
        for entry in try StateInspector.entries(at: path, store: "odometer") {
            if case .double(let value) = entry.value { found[entry.streamID] = value }
        }
    }
    return found
}

private func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("quixd-changelog-\(UUID().uuidString)").path
}

@Suite("quixd and the changelog topic: created where it can be, a clear error at once where not", .serialized, .timeLimit(.minutes(4)))
struct ChangelogTopicDaemonTests {
    let tripStats = repository.appendingPathComponent("pipelines/trip-stats.yaml").path

    @Test("quixd run without brokers: its embedded development broker creates the changelog, with the input's partitions")
    func embeddedBroker() async throws {
        let state = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let daemon = try DaemonProcess(["--state-dir", state, "--http", "off", tripStats])
        try await daemon.waitForLog("partitions assigned")
        #expect(daemon.log.contains(#"how="asked the development broker" partitions=4 pipeline=trip-stats topic=trip-stats-telemetry-changelog"#), "state and Kafka lines carry the pipeline: \(daemon.log)")
        let bootstrap = try #require(daemon.log.firstMatch(of: /mock cluster\) at (127\.0\.0\.1:\d+)/)?.1)
        #expect(try await partitionCount(String(bootstrap), "trip-stats-telemetry-changelog") == 4)
        #expect(try await daemon.terminate() == 0, "\(daemon.log)")
    }

    @Test("the user story: quixd broker --topic telemetry --topic trip-stats --partitions 8, then quixd run trip-stats: 8 changelog partitions, and a new replica restores from all of them")
    func userStory() async throws {
        let broker = try await BrokerProcess(["--topic", "telemetry", "--topic", "trip-stats", "--partitions", "8"])
        let brokers = broker.bootstrapServers
        let (first, second) = (temporaryDirectory(), temporaryDirectory())
        defer { for directory in [first, second] { try? FileManager.default.removeItem(atPath: directory) } }
        let streams = 16
        let speed = { (stream: Int, row: Int) in Double(60 + stream + row % 7) }
        try await produceSpeeds(brokers, streams: streams, rows: 0..<20, speed: speed)
        let arguments = ["--brokers", brokers, "--http", "off", "--set", "kafka.properties={session.timeout.ms: 6000}", tripStats]

        let daemon = try DaemonProcess(["--state-dir", first] + arguments)
        try await daemon.waitForLog("partitions assigned")
        #expect(daemon.log.contains(#"partitions="[0, 1, 2, 3, 4, 5, 6, 7]""#), "\(daemon.log)")
        #expect(daemon.log.contains(#"how="asked the development broker" partitions=8 pipeline=trip-stats topic=trip-stats-telemetry-changelog"#), "\(daemon.log)")
        #expect(try await partitionCount(brokers, "trip-stats-telemetry-changelog") == 8)
        try await Task.sleep(for: .seconds(3))  // a checkpoint or two (every 1 s) after the last row
        #expect(try await daemon.terminate() == 0, "\(daemon.log)")

        // A new replica with an empty directory (another pod's volume): it restores all 8 partitions.
        try await produceSpeeds(brokers, streams: streams, rows: 20..<25, speed: speed)
        let started = ContinuousClock.now
        let replica = try DaemonProcess(["--state-dir", second] + arguments)
        try await replica.waitForLog("partitions assigned")
        print("measured: the new replica was assigned (restored) after \(ContinuousClock.now - started)")
        #expect(replica.log.contains("state restored from the changelog"), "\(replica.log)")
        #expect(!replica.log.contains("no record for"), "\(replica.log)")
        try await Task.sleep(for: .seconds(3))
        #expect(try await replica.terminate() == 0, "\(replica.log)")
        let expected = Dictionary(uniqueKeysWithValues: (0..<streams).map { stream in
            ("car-\(stream)", (0..<25).reduce(0.0) { $0 + speed(stream, $1) / 3.6 * 0.1 })
        })
        let restored = try odometers(second)
        #expect(restored.count == streams, "\(restored)")
        for (stream, distance) in expected {
            #expect(abs((restored[stream] ?? 0) - distance) < 1e-9, "\(stream): the odometer goes on from the changelog: \(restored[stream] ?? 0) vs \(distance)")
        }
    }

    @Test(
        "a changelog that cannot serve: quixd stops the pipeline at once and exits 1, saying what to do",
        arguments: [
            (changelogPartitions: 4, says: #"has 4 partitions, fewer than the 8 of input topic \"telemetry\""#),
            (changelogPartitions: 0, says: "--create --topic trip-stats-telemetry-changelog --partitions 8 --config cleanup.policy=compact"),
        ])
    func cannotServe(changelogPartitions: Int, says: String) async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["telemetry", "trip-stats"] { try cluster.createTopic(topic, partitions: 8) }
        if changelogPartitions > 0 { try cluster.createTopic("trip-stats-telemetry-changelog", partitions: changelogPartitions) }
        let state = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: state) }
        let started = ContinuousClock.now
        let daemon = try DaemonProcess(["--brokers", cluster.bootstrapServers, "--state-dir", state, "--http", "off", tripStats])
        try await daemon.waitForLog("pipeline stopped on an error", within: .seconds(20))
        let reported = ContinuousClock.now - started
        while daemon.process.isRunning && ContinuousClock.now - started < .seconds(20) { try await Task.sleep(for: .milliseconds(20)) }
        print("measured: quixd reported \"\(says.prefix(30))…\" \(reported) after it started, and exited after \(ContinuousClock.now - started)")
        #expect(daemon.log.contains(says), "\(daemon.log)")
        #expect(reported < .seconds(5), "at once, not after a timeout")
        #expect(!daemon.process.isRunning && daemon.process.terminationStatus == 1, "its only pipeline stopped on an error: quixd exits 1")
        #expect(daemon.log.contains("every pipeline stopped on an error; quixd exits"))
    }
}
