import Foundation
import OrderedCollections
import QuixKafka
import QuixProtocol
import Testing

/// A built example executable, next to the test bundle.
private func example(_ name: String) throws -> URL {
    let url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
    try #require(FileManager.default.isExecutableFile(atPath: url.path), "\(name) is not built at \(url.path)")
    return url
}

@Suite("the examples of the Quix Streams 0.5 README", .serialized, .timeLimit(.minutes(3)))
struct ExamplesTests {
    @Test("ProduceTimeseries for 1 s, read back by ConsumeFrames: 100 rows of ParameterA, then the close")
    func produceAndConsume() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("mytesttopic", partitions: 1)
        let produced = try await runProcess(
            try example("ProduceTimeseries"), ["--brokers", cluster.bootstrapServers, "--seconds", "1", "--stream", "hello"])
        #expect(produced.status == 0, "\(produced.error)")
        #expect(produced.output.contains("Sending values for 1.0 seconds to stream hello."))
        #expect(produced.output.contains("Closing stream"))

        let consumed = try await runProcess(
            try example("ConsumeFrames"), ["--brokers", cluster.bootstrapServers, "--group", "g-\(UUID().uuidString.prefix(6))", "--streams", "1"])
        #expect(consumed.status == 0, "\(consumed.error)")
        let rows = consumed.output.split(separator: "\n").filter { $0.hasPrefix("hello ") && $0.contains("ParameterA=") }
        #expect(rows.count == 100)
        let values = rows.compactMap { Double($0.split(separator: "=").last!) }
        #expect(values.count == 100 && values.allSatisfy { abs($0) <= 1.2 })
        #expect(consumed.output.contains("hello closed (Closed)"))
    }

    @Test("BufferConfiguration re-publishes ProduceTimeseries' rows in frames of at most 100 rows or 100 ms of data")
    func bufferConfiguration() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("mytesttopic", partitions: 1)
        try cluster.createTopic("buffered", partitions: 1)
        let produced = try await runProcess(
            try example("ProduceTimeseries"), ["--brokers", cluster.bootstrapServers, "--seconds", "1", "--stream", "buffered-1"])
        #expect(produced.status == 0, "\(produced.error)")
        let result = try await runProcess(
            try example("BufferConfiguration"),
            ["--brokers", cluster.bootstrapServers, "--group", "g-\(UUID().uuidString.prefix(6))", "--streams", "1"])
        #expect(result.status == 0, "\(result.error)")
        let sizes = result.output.split(separator: "\n").compactMap { line in
            line.hasPrefix("buffered-1: released ") ? Int(line.split(separator: " ")[2]) : nil
        }
        #expect(sizes.reduce(0, +) == 100 && sizes.allSatisfy { $0 <= 100 } && sizes.count > 1, "\(sizes)")

        let packages = try await packages(cluster, "buffered", expected: sizes.count + 2)["buffered-1"] ?? []
        let frames = try packages.compactMap { value -> TimeseriesData? in
            if case .model(.timeseries(let data)) = try QuixCodec.decode(value[...]) { data } else { nil }
        }
        #expect(frames.map(\.rowCount) == sizes)
        #expect(frames.allSatisfy { ($0.timestamps.max()! - $0.timestamps.min()!) < 100_000_000 }, "each frame spans less than 100 ms")
    }

    @Test("GForceTotal adds |gForceX| + |gForceY| + |gForceZ| to every row it re-publishes")
    func gForceTotal() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("in", partitions: 1)
        try cluster.createTopic("out", partitions: 1)
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        var sent = TimeseriesData(timestamps: [1, 2, 3])
        sent.numericValues["gForceX"] = [1, -2, nil]
        sent.numericValues["gForceY"] = [0.5, 0.25, 1]
        sent.numericValues["gForceZ"] = [-3, 0, 2]
        sent.tagValues["vehicle"] = ["car-1", "car-1", "car-1"]
        try await producer.send(OutgoingMessage(topic: "in", key: Array("car-1".utf8), value: QuixCodec.encode(.timeseries(sent))))
        try await producer.flush()

        let process = Process()
        process.executableURL = try example("GForceTotal")
        process.environment = ["BOOTSTRAP": cluster.bootstrapServers, "IN_TOPIC": "in", "OUT_TOPIC": "out", "GROUP": "g-\(UUID().uuidString.prefix(6))"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { process.terminate() }
        let published = try await packages(cluster, "out", expected: 2)["car-1"] ?? []
        let data = try published.compactMap { value -> TimeseriesData? in
            if case .model(.timeseries(let data)) = try QuixCodec.decode(value[...]) { data } else { nil }
        }
        #expect(data.count == 1)
        #expect(data.first?.numericValues["gForceTotal"] == [4.5, 2.25, nil], "a missing cell stays missing")
        #expect(data.first?.numericValues["gForceX"] == [1, -2, nil] && data.first?.tagValues["vehicle"] == ["car-1", "car-1", "car-1"])
    }

    @Test("RunningSum keeps |gForceX| summed per stream in LMDB state; quixd state lists, gets and dumps it")
    func runningSum() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("in", partitions: 1)
        try cluster.createTopic("out", partitions: 1)
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        for (stream, values) in [("car-1", [1, -2, nil]), ("car-2", [0.5]), ("car-1", [3])] as [(String, [Double?])] {
            var data = TimeseriesData(timestamps: values.indices.map { Int64($0 + 1) })
            data.numericValues["gForceX"] = values
            try await producer.send(OutgoingMessage(topic: "in", key: Array(stream.utf8), value: QuixCodec.encode(.timeseries(data))))
        }
        try await producer.flush()
        let stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("running-sum-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let group = "g-\(UUID().uuidString.prefix(6))"
        try cluster.createTopic("\(group)-in-changelog", partitions: 1)  // the mock cannot create it

        let process = Process()
        process.executableURL = try example("RunningSum")
        process.arguments = [
            "--brokers", cluster.bootstrapServers, "--input", "in", "--output", "out", "--group", group,
            "--state-dir", stateDir,
        ]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { process.terminate() }
        let published = try await packages(cluster, "out", expected: 5)  // properties and two packages of car-1, the same of car-2
        let sums = try (published["car-1"] ?? []).compactMap { value -> [Double?]? in
            if case .model(.timeseries(let data)) = try QuixCodec.decode(value[...]) { data.numericValues["gForceX_sum"] } else { nil }
        }
        #expect(sums == [[1, 3, 3], [6]], "a running sum of |gForceX|, carried over a missing cell and across packages")

        // The state is checkpointed by the 5 s interval commit, while no message arrives.
        var listed = try await runQuixd(["state", "list", "--dir", stateDir])
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(30)
        while !listed.output.contains("checkpoint 3") && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            listed = try await runQuixd(["state", "list", "--dir", stateDir])
        }
        #expect(listed.output.contains("/in-0  checkpoint 3  stores: default (2 entries)"), "\(listed.output)\(listed.error)")
        let value = try await runQuixd(["state", "get", "--dir", stateDir, "--stream", "car-1", "--key", "gForceX_sum"])
        #expect(value.status == 0 && value.output == "car-1\tdefault\tgForceX_sum\t6.0\n", "\(value)")
        let missing = try await runQuixd(["state", "get", "--dir", stateDir, "--stream", "car-9", "--key", "gForceX_sum"])
        #expect(missing.status == 1 && missing.error.contains("stream \"car-9\" has no key \"gForceX_sum\""))
        let dump = try await runQuixd(["state", "dump", "--dir", stateDir, "--format", "json"])
        let entries = try dump.output.split(separator: "\n").map { line -> String in
            let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return "\(entry["stream"]!) \(entry["store"]!) \(entry["key"]!) \(entry["value"]!)"
        }
        #expect(entries == ["car-1 default gForceX_sum 6", "car-2 default gForceX_sum 0.5"], "\(dump.output)")
    }

    @Test("StreamingDataFrame: the seed's |x|+|y|+|z| and its 10-minute rolling mean per stream, filtered, written row by row")
    func streamingDataFrame() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("telemetry", partitions: 1)
        try cluster.createTopic("g-force", partitions: 1)
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        let minute: Int64 = 60_000_000_000
        let sent: [(stream: String, minutes: [Int64], x: [Double], y: [Double], z: [Double])] = [
            ("car-1", [0, 1, 2], [1, 2, 0], [0, -1, 0], [0, 0, -0.5]),  // totals 1, 3, 0.5
            ("car-2", [0], [-4], [0], [0]),
            ("car-1", [11], [1], [1], [1]),  // total 3; the window (1 min, 11 min] holds 0.5 and 3
        ]
        for (stream, minutes, x, y, z) in sent {
            var data = TimeseriesData(timestamps: minutes.map { $0 * minute })
            (data.numericValues["gForceX"], data.numericValues["gForceY"], data.numericValues["gForceZ"]) = (x, y, z)
            data.numericValues["speed"] = minutes.map { _ in 100 }
            try await producer.send(OutgoingMessage(topic: "telemetry", key: Array(stream.utf8), value: QuixCodec.encode(.timeseries(data))))
        }
        try await producer.flush()
        let stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("data-frame-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: stateDir) }

        let group = "g-\(UUID().uuidString.prefix(6))"
        try cluster.createTopic("\(group)-telemetry-changelog", partitions: 1)  // the mock cannot create it

        let process = Process()
        process.executableURL = try example("StreamingDataFrame")
        process.arguments = ["--brokers", cluster.bootstrapServers, "--group", group, "--state-dir", stateDir, "--above", "0.75"]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { process.terminate() }
        let rows = try await packages(cluster, "g-force", expected: 6).mapValues { values in  // 4 rows and each stream's properties
            try values.compactMap { value -> String? in
                guard case .model(.timeseries(let data)) = try QuixCodec.decode(value[...]) else { return nil }
                #expect(Set(data.numericValues.keys) == ["gForceX", "gForceY", "gForceZ", "gForceTotal", "gForceTotal_avg10m"])
                return "\(data.timestamps[0] / minute) \(data.numericValues["gForceTotal"]![0]!) \(data.numericValues["gForceTotal_avg10m"]![0]!)"
            }
        }
        #expect(rows["car-1"] == ["0 1.0 1.0", "1 3.0 2.0", "11 3.0 1.75"], "the row of total 0.5 is filtered out after the mean took it")
        #expect(rows["car-2"] == ["0 4.0 4.0"])
    }

    @Test("StreamingContexts: properties, definitions, buffered rows and events on one stream, in order")
    func streamingContexts() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("data", partitions: 4)
        let result = try await runProcess(try example("StreamingContexts"), ["--brokers", cluster.bootstrapServers, "--rows", "400"])
        #expect(result.status == 0, "\(result.error)")
        let stream = try await packages(cluster, "data", expected: 10)["bus-123AAAV"] ?? []
        let models = try stream.map { value -> QuixModel in
            guard case .model(let model) = try QuixCodec.decode(value[...]) else { throw QuixProtocolError(.wrongType, "no model") }
            return model
        }
        guard case .streamProperties(let properties) = models.first else { Issue.record("properties first"); return }
        #expect(properties.name == "Bus 123 AAAV" && properties.metadata["route"] == "123")
        #expect(models.contains { if case .parameterDefinitions(let d) = $0 { d.parameterGroups.first?.name == "position" } else { false } })
        let rows = models.reduce(0) { if case .timeseries(let data) = $1 { $0 + data.rowCount } else { $0 } }
        #expect(rows == 400)
        let bells = models.reduce(0) { if case .eventData(let events) = $1 { $0 + events.count } else { $0 } }
        #expect(bells == 2)
        #expect(models.last == .streamEnd(.closed))
    }

    @Test("SpeedingCamera: tickets for the fastest moment above the limit, with its photo")
    func speedingCamera() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("telemetry", partitions: 1)
        try cluster.createTopic("tickets", partitions: 1)
        let camera = try await runProcess(try example("SpeedingCamera"), ["camera", "--brokers", cluster.bootstrapServers, "--rows", "50"])
        #expect(camera.status == 0, "\(camera.error)")
        let tickets = try await runProcess(
            try example("SpeedingCamera"),
            ["tickets", "--brokers", cluster.bootstrapServers, "--group", "g-\(UUID().uuidString.prefix(6))", "--streams", "1"])
        #expect(tickets.status == 0, "\(tickets.error)")

        let documents = try tickets.output.split(separator: "\n").filter { $0.hasPrefix("ticket ") }.map { line in
            try JSONSerialization.jsonObject(with: Data(line.dropFirst("ticket ".count).utf8)) as! [String: Any]
        }
        #expect(!documents.isEmpty)
        for document in documents {
            let speed = document["speed"] as! Double
            #expect(speed > 130 && document["vehicle"] as? String == "car-7")
            #expect(abs((document["fine"] as! Double) - (speed - 130) * 100) < 1e-9)
            // The photo is the frame of the row with that speed: row i has speed 100 + 40 sin(i / 8).
            let photo = String(decoding: Data(base64Encoded: document["photo_proof"] as! String)!, as: UTF8.self)
            let row = Int(photo.dropFirst("frame-".count))!
            #expect(abs(100 + 40 * sin(Double(row) / 8) - speed) < 1e-9)
        }
        let published = try await packages(cluster, "tickets", expected: documents.count + 2)["car-7"] ?? []
        let events = try published.flatMap { value -> [EventData] in
            if case .model(.eventData(let events)) = try QuixCodec.decode(value[...]) { events } else { [] }
        }
        #expect(events.count == documents.count && events.allSatisfy { $0.id == "ticket" })
    }
}
