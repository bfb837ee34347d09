import Foundation
import QuixKafka
import QuixProtocol
import QuixStreams
import Testing

/// Malformed messages by the thousand among good ones, through a dead-letter policy.
@Suite("a poison flood", .serialized, .timeLimit(.minutes(4)))
struct PoisonFloodTests {
    static let good = 2_000
    static let bad = 2_000

    /// Four kinds of poison, `count` in all: random bytes, an envelope with the wrong types, an
    /// envelope of an unknown model and codec, and JSON nested 5,000 deep.
    static func poison(_ count: Int) -> [[UInt8]] {
        var random = SystemRandomNumberGenerator()
        return (0..<count).map { index in
            switch index % 4 {
            case 0: [0x01] + (0..<(8 + index % 50)).map { _ in UInt8.random(in: 0...255, using: &random) }  // never a split header
            case 1: Array(#"{"C":"JT","K":"ParameterData","V":{"Timestamps":"poison \#(index)","NumericValues":{}}}"#.utf8)
            case 2: Array(#"{"C":"XX","K":"Mystery","V":{"n":\#(index)}}"#.utf8)
            default: Array((String(repeating: "[", count: 5_000) + "\(index)" + String(repeating: "]", count: 5_000)).utf8)
            }
        }
    }

    @Test("2,000 malformed among 2,000 good messages: every bad one dead-lettered once with its bytes, every good row out, a bounded log, exact metrics")
    func flood() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["flood-in", "flood-out", "flood-dlq"] { try cluster.createTopic(topic, partitions: 2) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-flood-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: flood }
            spec:
              input: { topic: flood-in, startFrom: earliest }
              stages: [{ id: double, uses: compute, with: { column: y, expression: "x * 2" } }]
              output: { topic: flood-out }
              onError: { policy: dead-letter, topic: flood-dlq }
            """.write(toFile: directory + "/flood.yaml", atomically: true, encoding: .utf8)

        // Good and bad interleaved on the same keys: each stream gets a bad message after each row.
        let poison = Self.poison(Self.bad)
        let raw = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        for index in 0..<Self.good {
            var frame = TimeseriesFrame(timestamps: [Int64(index / 10 + 1)])
            frame["x"] = [Double(index / 10)]
            let key = Array("s\(index % 10)".utf8)
            try await raw.send(OutgoingMessage(topic: "flood-in", key: key, value: QuixCodec.encode(frame)))
            try await raw.send(OutgoingMessage(topic: "flood-in", key: key, value: poison[index]))
        }
        try await raw.flush()
        await raw.close()

        let port = freePort()
        let daemon = try DaemonProcess([
            "--brokers", cluster.bootstrapServers, "--http", "127.0.0.1:\(port)", "--set", "kafka.properties={session.timeout.ms: 6000}",
            directory + "/flood.yaml",
        ])
        let deadline = ContinuousClock.now + .seconds(120)
        while try await endOffsets(cluster, "flood-dlq", partitions: 2).reduce(0, +) < Int64(Self.bad), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        let dead = try await messages(cluster, "flood-dlq", partitions: 2)
        #expect(dead.count == Self.bad, "each bad message dead-lettered once")
        #expect(Set(dead.map { Array($0.value ?? []) }) == Set(poison), "with its own bytes")
        let output = try frames(try await messages(cluster, "flood-out", partitions: 2))
        for stream in 0..<10 {
            let frame = try #require(output.rows["s\(stream)"], "no output for s\(stream)")
            #expect(frame["y"]?.values == (0..<(Self.good / 10)).map { Double($0 * 2) }, "s\(stream): every good row, in order")
        }
        let (_, metrics) = try await httpGet(port, "/metrics")
        #expect(metrics.contains(#"quixd_dead_lettered_total{pipeline="flood"} \#(Self.bad)"#), "\(metrics)")
        #expect(try await daemon.terminate() == 0, "\(daemon.log.suffix(2_000))")

        let lines = daemon.log.split(separator: "\n")
        let shown = lines.filter { $0.contains("message dead-lettered") }.count
        #expect(shown > 0 && shown <= 40, "the first few per error kind and interval, not \(shown) lines")
        #expect(lines.contains { $0.contains("were not logged one by one") }, "then how many were not shown")
        #expect(lines.count < 200, "\(lines.count) log lines for \(Self.bad) bad messages: \(lines.suffix(5).joined(separator: "\n"))")
    }
}
