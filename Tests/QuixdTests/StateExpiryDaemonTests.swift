import Foundation
import QuixKafka
import QuixStreams
import Testing

/// The stream ids whose keys in `store` have tombstones in the changelog messages.
private func tombstoned(_ messages: [KafkaMessage], store: String) -> Set<String> {
    var streams = Set<String>()
    let name = Array(store.utf8)
    for message in messages where message.value == nil {
        guard let key = message.key else { continue }
        let record = Array(key)
        guard record.count > 4 + name.count, Array(record[2..<2 + name.count]) == name else { continue }
        let state = Array(record[(2 + name.count)...])
        let length = Int(state[0]) << 8 | Int(state[1])
        streams.insert(String(decoding: state.dropFirst(2).prefix(length), as: UTF8.self))
    }
    return streams
}

@Suite("state expiry end to end", .serialized, .timeLimit(.minutes(3)))
struct StateExpiryDaemonTests {
    @Test("quixd removes the state of an idle stream and of an ended one at a checkpoint: changelogged as tombstones, counted, gone from LMDB")
    func idleAndEndedStreams() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["telemetry", "sums", "expiry-telemetry-changelog"] { try cluster.createTopic(topic, partitions: 1) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-expiry-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = directory + "/expiry.yaml"
        try """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: expiry }
            spec:
              input: { topic: telemetry, startFrom: earliest }
              stages: [{ id: total, uses: cumulative, with: { column: speed } }]
              output: { topic: sums }
              checkpoint: { interval: 200ms }
              state: { idle: 1m, onStreamEnd: drop }
            """.write(toFile: pipeline, atomically: true, encoding: .utf8)

        // "old" has its last row at 0 s, "ended" ends, "kept" and "now" are within a minute of
        // the partition's latest row (10 min).
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("telemetry")
        for (id, seconds) in [("old", [0]), ("ended", [1, 2]), ("kept", [590]), ("now", [600])] as [(String, [Int64])] {
            let stream = try producer.getOrCreateStream(id)
            for second in seconds { try await stream.addTimestamp(nanoseconds: second * 1_000_000_000).addValue("speed", 1).publish() }
            if id == "ended" { try await stream.close() } else { try await stream.flush() }
        }
        try await producer.close()

        let port = freePort()
        let daemon = try DaemonProcess(["--brokers", cluster.bootstrapServers, "--state-dir", directory + "/state", "--http", "127.0.0.1:\(port)", pipeline])
        let deadline = ContinuousClock.now + .seconds(60)
        var metrics = ""
        while ContinuousClock.now < deadline {
            metrics = (try? await httpGet(port, "/metrics").1) ?? ""
            if metrics.contains(#"quixd_state_expired_total{pipeline="expiry",reason="idle"} 1"#),
                metrics.contains(#"quixd_state_expired_total{pipeline="expiry",reason="end"} 1"#)
            {
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(metrics.contains(#"quixd_state_expired_total{pipeline="expiry",reason="idle"} 1"#), "\(metrics)\n\(daemon.log)")
        #expect(metrics.contains(#"quixd_state_expired_total{pipeline="expiry",reason="end"} 1"#), "\(metrics)")
        // Past the checkpoint that wrote the removals.
        while try await committed(cluster, group: "expiry", topic: "telemetry", partitions: 1) != endOffsets(cluster, "telemetry", partitions: 1),
            ContinuousClock.now < deadline
        {
            try await Task.sleep(for: .milliseconds(200))
        }
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await daemon.terminate() == 0, "\(daemon.log)")

        let changelog = try await messages(cluster, "expiry-telemetry-changelog", partitions: 1, quiet: .seconds(1))
        #expect(tombstoned(changelog, store: "total") == ["old", "ended"], "tombstones of the removed streams' running sums")
        var stored: [String: [String]] = [:]
        for path in try StateInspector.partitions(under: directory + "/state/expiry") {
            for entry in try StateInspector.entries(at: path, store: "total") { stored[entry.streamID, default: []].append(entry.key) }
        }
        #expect(Set(stored.keys) == ["kept", "now"], "\(stored)")
    }
}
