import Foundation
import QuixKafka
import Testing

@Suite("as-of joins end to end", .serialized)
struct JoinDaemonTests {
    private static let second: Int64 = 1_000_000_000

    /// A pipeline joining `telemetry` with `positions` (tolerance 10 s), both json.
    private static func pipeline(_ directory: String, joinTopic: String = "positions") throws -> String {
        let file = directory + "/track.yaml"
        try """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: track }
            spec:
              input: { topic: telemetry, format: json }
              stages:
                - { id: position, uses: join, with: { topic: \(joinTopic), format: json, columns: [lat], tolerance: 10s } }
              output: { topic: tracked, format: json }
              checkpoint: { interval: 200ms }
            """.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    @Test("each row gets the latest row of its stream at or before it within the tolerance; after a restart the join reads on from its checkpoint")
    func joinAcrossARestart() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["telemetry", "positions", "tracked", "track-telemetry-changelog"] { try cluster.createTopic(topic, partitions: 2) }
        let raw = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        // car-1 on partition 0 and car-2 on partition 1 of both topics: co-partitioned.
        func send(_ topic: String, _ stream: String, seconds: Int64, _ fields: String = "") async throws {
            let json = "{\"timestamp\": \(seconds * Self.second)\(fields.isEmpty ? "" : ", " + fields)}"
            try await raw.send(OutgoingMessage(topic: topic, key: Array(stream.utf8), value: Array(json.utf8), partition: stream == "car-1" ? 0 : 1))
        }
        try await send("positions", "car-1", seconds: 0, "\"lat\": 1")
        try await send("positions", "car-1", seconds: 10, "\"lat\": 2")
        try await send("positions", "car-2", seconds: 5, "\"lat\": 7")
        for (stream, seconds) in [("car-1", 5), ("car-1", 10), ("car-1", 21), ("car-2", 3), ("car-2", 9)] as [(String, Int64)] {
            try await send("telemetry", stream, seconds: seconds)
        }
        try await raw.flush()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-join-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let arguments = [
            "--brokers", cluster.bootstrapServers, "--state-dir", directory + "/state", "--http", "off",
            "--set", "kafka.properties={session.timeout.ms: 6000}", try Self.pipeline(directory),
        ]
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(90)
        func caughtUp() async throws -> Bool {
            try await committed(cluster, group: "track", topic: "telemetry", partitions: 2) == endOffsets(cluster, "telemetry", partitions: 2)
        }

        let first = try DaemonProcess(arguments)
        while try await !caughtUp(), clock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        try await Task.sleep(for: .milliseconds(500))  // a checkpoint after the last row keeps the join's position
        #expect(try await first.terminate() == 0, "\(first.log)")

        // After the restart: car-2 at 14 s still needs its row of 5 s, read before the restart.
        try await send("positions", "car-1", seconds: 25, "\"lat\": 3")
        for (stream, seconds) in [("car-2", 14), ("car-1", 26), ("car-1", 30)] as [(String, Int64)] { try await send("telemetry", stream, seconds: seconds) }
        try await raw.flush()
        let second = try DaemonProcess(arguments)
        while try await !caughtUp(), clock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try await second.terminate() == 0, "\(second.log)")
        // car-1's rows of 0 s and 10 s were more than 10 s behind its input (21 s): its partition reads on after them.
        #expect(second.log.contains("join: reading its topic") && second.log.contains("offset=2 partition=0"), "\(second.log)")

        var joined: [String: [String]] = [:]
        for message in try await messages(cluster, "tracked", partitions: 2, quiet: .seconds(1)) {
            let row = try JSONSerialization.jsonObject(with: Data(message.value ?? [])) as! [String: Any]
            let seconds = (row["timestamp"] as! NSNumber).int64Value / Self.second
            joined[String(decoding: message.key ?? [], as: UTF8.self), default: []].append("\(seconds):" + ((row["lat"] as? Double).map { "\(Int($0))" } ?? "-"))
        }
        #expect(joined["car-1"] == ["5:1", "10:2", "21:-", "26:3", "30:3"], "at or before, within 10 s: \(joined)")
        #expect(joined["car-2"] == ["3:-", "9:7", "14:7"], "a row later than the input does not count; one from before the restart does: \(joined)")
        await raw.close()
    }

    @Test("a join topic that is not co-partitioned with the input, or does not exist, stops the pipeline at once, saying what to do")
    func refusedTopics() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("telemetry", partitions: 2)
        try cluster.createTopic("positions", partitions: 3)
        try cluster.createTopic("tracked", partitions: 2)
        try cluster.createTopic("track-telemetry-changelog", partitions: 2)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-join-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for (topic, message) in [
            ("positions", "join position: topic positions has 3 partitions and input telemetry has 2; a join needs co-partitioned topics"),
            ("no-such-topic", "join position: topic no-such-topic does not exist"),
        ] {
            let started = ContinuousClock.now
            let daemon = try DaemonProcess([
                "--brokers", cluster.bootstrapServers, "--state-dir", directory + "/state", "--http", "off", try Self.pipeline(directory, joinTopic: topic),
            ])
            try await daemon.waitForLog("pipeline stopped on an error", within: .seconds(20))
            #expect(ContinuousClock.now - started < .seconds(15), "no wait on a topic that cannot serve")
            #expect(daemon.log.contains(message), "\(daemon.log)")
            #expect(try await daemon.terminate() == 1)
        }
    }
}
