import Foundation
import QuixKafka
import QuixProtocol
import QuixStreams
import Testing

/// Stream ids of the Quix packages of `messages` that carry properties, and their names.
private func propertiesNames(_ messages: [KafkaMessage]) throws -> [String: String] {
    var names: [String: String] = [:]
    for message in messages {
        if case .model(.streamProperties(let properties)) = try QuixCodec.decode((message.value ?? [])[...]) {
            names[QuixCodec.streamID(fromKey: message.key.map { Array($0)[...] })] = properties.name ?? ""
        }
    }
    return names
}

private func writePipeline(_ text: String, in directory: String) throws -> String {
    let file = directory + "/pipeline.yaml"
    try text.write(toFile: file, atomically: true, encoding: .utf8)
    return file
}

@Suite("routed outputs, end to end", .serialized)
struct RoutingDaemonTests {
    @Test("rows go to every output whose when holds, events to those that take them; an output gets a stream's properties only with its rows")
    func routes() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["cars", "cars-all", "cars-fast", "cars-slow"] { try cluster.createTopic(topic, partitions: 1) }
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("cars")
        let speeds: [String: [Double]] = ["car-1": [120, 40, 250], "car-2": [60, 70]]
        for (id, values) in speeds.sorted(by: { $0.key < $1.key }) {
            let stream = try producer.createStream(id)
            try stream.updateProperties { $0.name = "name of \(id)" }
            for (index, speed) in values.enumerated() {
                try await stream.addTimestamp(nanoseconds: Int64(index + 1) * 1_000_000_000).addValue("speed", speed).publish()
            }
        }
        try await producer.close()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-routes-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = try writePipeline(
            """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: routes }
            spec:
              input: { topic: cars }
              stages: [{ id: fast, uses: event, with: { when: "speed > 200", id: very-fast } }]
              outputs:
                - { id: all, topic: cars-all }
                - { id: fast, topic: cars-fast, format: json, when: "speed > 100", events: false }
                - { id: slow, topic: cars-slow, when: "speed <= 50" }
            """, in: directory)
        let port = freePort()
        let daemon = try DaemonProcess([
            "--brokers", cluster.bootstrapServers, "--http", "127.0.0.1:\(port)", "--set", "kafka.properties={session.timeout.ms: 6000}", pipeline,
        ])
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while try await committed(cluster, group: "routes", topic: "cars", partitions: 1) != endOffsets(cluster, "cars", partitions: 1), clock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        let (_, metrics) = try await httpGet(port, "/metrics")
        #expect(try await daemon.terminate() == 0, "\(daemon.log)")

        let all = try await messages(cluster, "cars-all", partitions: 1, quiet: .seconds(1))
        let everything = try frames(all)
        #expect(everything.rows["car-1"]?["speed"]?.values.map { $0 } == [120, 40, 250])
        #expect(everything.rows["car-2"]?["speed"]?.values.map { $0 } == [60, 70])
        #expect(everything.events["car-1"]?.map(\.id) == ["very-fast"], "the output without when takes the events")
        #expect(try propertiesNames(all) == ["car-1": "name of car-1", "car-2": "name of car-2"])

        let fast = try await messages(cluster, "cars-fast", partitions: 1, quiet: .seconds(1)).map {
            "\(String(decoding: $0.key ?? [], as: UTF8.self)) \(String(decoding: $0.value ?? [], as: UTF8.self))"
        }
        #expect(fast == [#"car-1 {"speed":120.0,"timestamp":1000000000}"#, #"car-1 {"speed":250.0,"timestamp":3000000000}"#], "json rows only, no event (events: false)")

        let slowMessages = try await messages(cluster, "cars-slow", partitions: 1, quiet: .seconds(1))
        let slow = try frames(slowMessages)
        #expect(slow.rows.keys.sorted() == ["car-1"], "car-2 has no row of 50 or less: the output has no stream of it")
        #expect(slow.rows["car-1"]?["speed"]?.values.map { $0 } == [40])
        #expect(slow.events["car-1"]?.map(\.id) == ["very-fast"])
        #expect(try propertiesNames(slowMessages) == ["car-1": "name of car-1"], "properties come with the stream's first row")
        for topic in ["cars-all", "cars-fast", "cars-slow"] {
            #expect(metrics.contains(#"quixd_messages_out_total{pipeline="routes",topic="\#(topic)"}"#), "\(topic) is counted")
        }
    }

    @Test("a message whose second output refuses it is not committed: quixd stops, and a restart sends it again, with nothing before it written twice")
    func refusedOutputIsRetried() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["rows", "rows-a", "rows-b"] { try cluster.createTopic(topic, partitions: 1) }
        let raw = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        func feed(_ values: ClosedRange<Int>) async throws {
            for value in values {
                try await raw.send(OutgoingMessage(topic: "rows", key: Array("s".utf8), value: Array(#"{"timestamp": \#(value), "x": \#(value)}"#.utf8)))
            }
            try await raw.flush()
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-refused-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = try writePipeline(
            """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: refused }
            spec:
              input: { topic: rows, format: json }
              stages: [{ id: keep, uses: filter, with: { where: "x > 0" } }]
              outputs:
                - { id: a, topic: rows-a, format: json }
                - { id: b, topic: rows-b, format: json }
              checkpoint: { interval: 200ms }
            """, in: directory)
        // rows-b without a leader: its records wait for one until message.timeout.ms, then fail,
        // as with a broker that stays away (the mock's topic errors reach metadata, not produce).
        let arguments = [
            "--brokers", cluster.bootstrapServers, "--http", "off", "--set", "kafka.properties={session.timeout.ms: 6000, message.timeout.ms: 4000}",
            pipeline,
        ]
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(90)
        func waitCommitted(_ offset: Int64) async throws {
            while try await committed(cluster, group: "refused", topic: "rows", partitions: 1) != [offset], clock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        func values(_ topic: String) async throws -> [Int] {
            try await messages(cluster, topic, partitions: 1, quiet: .seconds(1)).map { message in
                let text = String(decoding: message.value ?? [], as: UTF8.self)
                return Int(text.split(separator: ":").last!.dropLast().split(separator: ".")[0])!
            }
        }

        try await feed(1...20)
        let first = try DaemonProcess(arguments)
        try await waitCommitted(20)
        try cluster.setLeader(topic: "rows-b", partition: 0, broker: -1)
        try await feed(21...30)
        try await first.waitForLog("pipeline stopped on an error")
        #expect(try await first.terminate() == 1, "the only pipeline failed: quixd exits 1")
        #expect(first.log.contains("rows-b"), "the failure names the topic that refused")
        let stopped = try await committed(cluster, group: "refused", topic: "rows", partitions: 1)
        #expect(stopped == [20], "nothing of the refused messages commits")
        try cluster.setLeader(topic: "rows-b", partition: 0, broker: 1)

        let second = try DaemonProcess(arguments)
        try await waitCommitted(30)
        #expect(try await second.terminate() == 0, "\(second.log)")
        #expect(try await values("rows-b") == Array(1...30), "the refused messages were sent again, once")
        let a = try await values("rows-a")
        #expect(Array(a.prefix(20)) == Array(1...20), "what was committed is written once")
        #expect(Set(a.dropFirst(20)) == Set(21...30), "the rest at least once: \(a)")
        #expect(a.suffix(10) == Array(21...30), "the retry wrote every refused message's row again, in order")
        await raw.close()
    }
}
