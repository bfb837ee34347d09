import Foundation
import QuixKafka
import Testing

/// The json rows of `topic` by stream id (the message key), in order.
private func jsonRows(_ cluster: MockCluster, _ topic: String, partitions: Int32) async throws -> [String: [[String: Any]]] {
    var rows: [String: [[String: Any]]] = [:]
    for message in try await messages(cluster, topic, partitions: partitions, quiet: .seconds(1)) {
        let object = try JSONSerialization.jsonObject(with: Data(message.value ?? [])) as? [String: Any] ?? [:]
        rows[String(decoding: message.key ?? [], as: UTF8.self), default: []].append(object)
    }
    return rows
}

@Suite("tables end to end", .serialized)
struct TablesDaemonTests {
    @Test("a lookup sees the whole table from its first row, and an update from some row on; a restart loads the table from its state")
    func lookupWhileTheTableChanges() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["vehicles", "cars", "cars-enriched"] { try cluster.createTopic(topic, partitions: 2) }
        let raw = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        func send(_ topic: String, _ key: String, _ json: String) async throws {
            try await raw.send(OutgoingMessage(topic: topic, key: Array(key.utf8), value: Array(json.utf8)))
        }
        let vehicles = 2_000
        for id in 0..<vehicles { try await send("vehicles", "car-\(id)", #"{"maxSpeed": \#(id), "model": "m-\#(id)"}"#) }
        for row in 0..<10 {
            for id in 0..<20 { try await send("cars", "car-\(id * 97)", #"{"timestamp": \#(row + 1), "seq": \#(row)}"#) }
        }
        try await raw.flush()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-tables-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = directory + "/enrich.yaml"
        try """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: enrich }
            spec:
              input: { topic: cars, format: json }
              tables:
                vehicles: { topic: vehicles }
              stages:
                - { id: vehicle, uses: lookup, with: { table: vehicles, columns: [maxSpeed, model] } }
              output: { topic: cars-enriched, format: json }
              checkpoint: { interval: 200ms }
            """.write(toFile: pipeline, atomically: true, encoding: .utf8)
        let arguments = [
            "--brokers", cluster.bootstrapServers, "--state-dir", directory + "/state", "--http", "off",
            "--set", "kafka.properties={session.timeout.ms: 6000}", pipeline,
        ]
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        func caughtUp() async throws -> Bool {
            try await committed(cluster, group: "enrich", topic: "cars", partitions: 2) == endOffsets(cluster, "cars", partitions: 2)
        }

        let first = try DaemonProcess(arguments)
        while try await !caughtUp(), clock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        let enriched = try await jsonRows(cluster, "cars-enriched", partitions: 2)
        #expect(enriched.values.map(\.count).reduce(0, +) == 200)
        for (stream, rows) in enriched {
            let id = Int(stream.dropFirst(4))!
            #expect(rows.allSatisfy { $0["maxSpeed"] as? Double == Double(id) && $0["model"] as? String == "m-\(id)" }, "\(stream): \(rows)")
        }

        // The table changes while the pipeline runs: rows after the update see it, none before.
        try await send("vehicles", "car-97", #"{"maxSpeed": 9999, "model": "updated"}"#)
        try await raw.flush()
        var sequence = 10
        var seen = false
        while !seen, clock.now < deadline {
            try await send("cars", "car-97", #"{"timestamp": \#(sequence + 1), "seq": \#(sequence)}"#)
            try await raw.flush()
            sequence += 1
            try await Task.sleep(for: .milliseconds(300))
            seen = try await jsonRows(cluster, "cars-enriched", partitions: 2)["car-97"]?.contains { $0["model"] as? String == "updated" } == true
        }
        #expect(seen, "the update reached the lookup")
        while try await !caughtUp(), clock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        let models = try await jsonRows(cluster, "cars-enriched", partitions: 2)["car-97"]?.map { $0["model"] as? String ?? "" } ?? []
        let firstUpdated = try #require(models.firstIndex(of: "updated"))
        #expect(models[..<firstUpdated].allSatisfy { $0 == "m-97" } && models[firstUpdated...].allSatisfy { $0 == "updated" }, "\(models)")
        #expect(try await first.terminate() == 0, "\(first.log)")
        #expect(first.log.contains("table loaded") && first.log.contains("rows=\(vehicles)"), "\(first.log)")

        // Restarted, the table comes from its state first (2,000 rows before reading anything).
        let second = try DaemonProcess(arguments)
        try await second.waitForLog("table loaded")
        #expect(second.log.contains("loading table") && second.log.contains("partitions=2 pipeline=enrich rows=\(vehicles) table=vehicles"), "\(second.log)")
        #expect(try await second.terminate() == 0)
        await raw.close()
    }

    @Test("no row is processed before every table partition is read to its end; /readyz says which table it waits for")
    func waitsForTables() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["vehicles", "cars", "cars-enriched"] { try cluster.createTopic(topic, partitions: 2) }
        let raw = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        for id in 0..<10 { try await raw.send(OutgoingMessage(topic: "vehicles", key: Array("car-\(id)".utf8), value: Array(#"{"maxSpeed": \#(id)}"#.utf8))) }
        for id in 0..<10 { try await raw.send(OutgoingMessage(topic: "cars", key: Array("car-\(id)".utf8), value: Array(#"{"timestamp": 1}"#.utf8))) }
        try await raw.flush()
        await raw.close()
        // Partition 1 of the table cannot be read until it has a leader again.
        try cluster.setLeader(topic: "vehicles", partition: 1, broker: -1)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-tables-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = directory + "/enrich.yaml"
        try """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: enrich }
            spec:
              input: { topic: cars, format: json }
              tables: { vehicles: { topic: vehicles } }
              stages: [{ id: vehicle, uses: lookup, with: { table: vehicles, columns: [maxSpeed] } }]
              output: { topic: cars-enriched, format: json }
            """.write(toFile: pipeline, atomically: true, encoding: .utf8)
        let port = freePort()
        let daemon = try DaemonProcess([
            "--brokers", cluster.bootstrapServers, "--http", "127.0.0.1:\(port)", "--set", "kafka.properties={session.timeout.ms: 6000}", pipeline,
        ])
        try await daemon.waitForLog("loading table")
        try await Task.sleep(for: .seconds(8))
        let (status, body) = try await httpGet(port, "/readyz")
        #expect(status == 503 && body.contains("loading table vehicles from vehicles"), "\(body)")
        #expect(try await endOffsets(cluster, "cars-enriched", partitions: 2).reduce(0, +) == 0, "nothing processed while the table loads")
        try cluster.setLeader(topic: "vehicles", partition: 1, broker: 1)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while try await endOffsets(cluster, "cars-enriched", partitions: 2).reduce(0, +) < 10, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        let rows = try await jsonRows(cluster, "cars-enriched", partitions: 2)
        for id in 0..<10 { #expect(rows["car-\(id)"]?.first?["maxSpeed"] as? Double == Double(id), "car-\(id): \(rows["car-\(id)"] ?? [])") }
        #expect(try await daemon.terminate() == 0)
    }

    @Test("a table whose topic does not exist stops its pipeline at once, saying so")
    func missingTopic() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["cars", "cars-enriched"] { try cluster.createTopic(topic, partitions: 1) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-tables-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = directory + "/enrich.yaml"
        try """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: enrich }
            spec:
              input: { topic: cars, format: json }
              tables: { vehicles: { topic: no-such-topic } }
              stages: [{ id: vehicle, uses: lookup, with: { table: vehicles, columns: [maxSpeed] } }]
              output: { topic: cars-enriched, format: json }
            """.write(toFile: pipeline, atomically: true, encoding: .utf8)
        let started = ContinuousClock.now
        let daemon = try DaemonProcess(["--brokers", cluster.bootstrapServers, "--http", "off", pipeline])
        try await daemon.waitForLog("pipeline stopped on an error", within: .seconds(20))
        #expect(ContinuousClock.now - started < .seconds(15), "no wait on a topic that cannot arrive")
        #expect(daemon.log.contains("table vehicles: topic no-such-topic does not exist"), "\(daemon.log)")
        #expect(try await daemon.terminate() == 1)
    }
}
