import Foundation
import QuixKafka
import Testing

/// A pipeline file with these stages (YAML flow mappings, one a line).
private func pipelineFile(_ directory: String, _ name: String, stages: [String], format: String = "quix") throws -> String {
    let file = "\(directory)/\(name).yaml"
    try """
        apiVersion: quixd/v1
        kind: Pipeline
        metadata: { name: plan }
        spec:
          input: { topic: plan-in, format: \(format) }
          stages:
        \(stages.map { "    - \($0)" }.joined(separator: "\n"))
          output: { topic: plan-out, format: \(format) }
          checkpoint: { interval: 200ms }
        """.write(toFile: file, atomically: true, encoding: .utf8)
    return file
}

@Suite("quixd plan and state shapes", .serialized)
struct PlanCommandTests {
    @Test("plan says of each stateful stage whether its state is kept, new, dropped or incompatible, and what changed")
    func planTable() async throws {
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let old = try pipelineFile(directory, "old", stages: [
            "{ id: keep, uses: rolling, with: { column: x, window: 10s } }",
            "{ id: defaults, uses: rolling, with: { column: x, window: 10s } }",
            "{ id: roll, uses: rolling, with: { column: x, window: 10s } }",
            "{ id: win, uses: window, with: { column: x, size: 10s } }",
            "{ id: aggs, uses: window, with: { column: x, size: 10s, aggregates: [mean] } }",
            "{ id: graceful, uses: window, with: { column: x, size: 10s } }",
            "{ id: cum, uses: cumulative, with: { column: x } }",
            "{ id: total, uses: cumulative, with: { column: x, aggregate: sum } }",
            "{ id: dd, uses: dedup, with: { columns: [x], window: 10m } }",
            "{ id: th, uses: throttle, with: { interval: 1s } }",
            "{ id: swap, uses: rolling, with: { column: x, window: 10s } }",
            "{ id: gone, uses: cumulative, with: { column: x } }",
            "{ id: f, uses: filter, with: { where: x > 0 } }",
        ])
        let new = try pipelineFile(directory, "new", stages: [
            "{ id: keep, uses: rolling, with: { column: x, window: 10s } }",
            "{ id: defaults, uses: rolling, with: { column: x, window: 10s, aggregate: mean } }",
            "{ id: roll, uses: rolling, with: { column: x, window: 20s } }",
            "{ id: win, uses: window, with: { column: x, type: hopping, size: 10s, step: 5s } }",
            "{ id: aggs, uses: window, with: { column: x, size: 10s, aggregates: [mean, max] } }",
            "{ id: graceful, uses: window, with: { column: x, size: 10s, grace: 5s } }",
            "{ id: cum, uses: cumulative, with: { column: x, as: running } }",
            "{ id: total, uses: cumulative, with: { column: x, aggregate: max } }",
            "{ id: dd, uses: dedup, with: { columns: [x], window: 20m } }",
            "{ id: th, uses: throttle, with: { interval: 1s, ttl: 1h } }",
            "{ id: swap, uses: cumulative, with: { column: x } }",
            "{ id: fresh, uses: cumulative, with: { column: y } }",
            "{ id: f, uses: filter, with: { where: x > 1 } }",
        ])
        let planned = try await runQuixd(["plan", old, new])
        #expect(planned.status == 1, "an incompatible stage: exit 1\n\(planned)")
        let expected = [
            "stage     state",
            "aggs      incompatible: aggregates [mean] → [mean,max]",
            "cum       kept",
            "dd        kept",
            "defaults  kept",
            "fresh     new",
            "gone      dropped (no longer read; it stays on disk and in the changelog)",
            "graceful  kept",
            "keep      kept",
            "roll      incompatible: window 10s → 20s",
            "swap      incompatible: uses rolling → cumulative",
            "th        incompatible: ttl none → 1h",
            "total     incompatible: aggregate sum → max",
            "win       incompatible: step none → 5s, type tumbling → hopping",
        ]
        #expect(planned.output.split(separator: "\n").map(String.init) == expected, "\(planned.output)")
        let same = try await runQuixd(["plan", old, old])
        #expect(same.status == 0 && !same.output.contains("incompatible"), "\(same)")
    }

    @Test("run records each stage's shape; a changed shape is refused at start and on SIGHUP, and --reset-state drops that stage's state")
    func refusedAndReset() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["plan-in", "plan-out", "plan-plan-in-changelog"] { try cluster.createTopic(topic, partitions: 1) }
        let raw = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        func send(_ seconds: Int) async throws {
            let json = #"{"timestamp": \#(Int64(seconds) * 1_000_000_000), "x": 1}"#
            try await raw.send(OutgoingMessage(topic: "plan-in", key: Array("car-1".utf8), value: Array(json.utf8)))
            try await raw.flush()
        }
        let directory = try scratch()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let stateDir = directory + "/state"
        let v1 = [#"{ id: sum, uses: cumulative, with: { column: x } }"#]
        let v2 = [#"{ id: sum, uses: cumulative, with: { column: x, aggregate: count } }"#]
        let file = try pipelineFile(directory, "plan", stages: v1, format: "json")
        let arguments = [
            "--brokers", cluster.bootstrapServers, "--state-dir", stateDir, "--http", "off", "--set", "kafka.properties={session.timeout.ms: 6000}",
        ]
        for second in 0..<3 { try await send(second) }
        let first = try DaemonProcess(arguments + [file])
        try await waitForOutput(cluster, count: 3)

        // SIGHUP with the aggregate changed: refused, and the running pipeline goes on.
        let source = try String(contentsOfFile: file, encoding: .utf8)
        try source.replacingOccurrences(of: v1[0], with: v2[0]).write(toFile: file, atomically: true, encoding: .utf8)
        kill(first.process.processIdentifier, SIGHUP)
        try await first.waitForLog("reload refused a pipeline file")
        #expect(first.log.contains("has another shape for stage sum (aggregate sum → count)"), "\(first.log)")
        try await send(3)
        try await waitForOutput(cluster, count: 4)
        #expect(try await first.terminate() == 0)

        let planned = try await runQuixd(["plan", "--state-dir", stateDir, file])
        #expect(planned.status == 1 && planned.output.contains("sum    incompatible: aggregate sum → count"), "\(planned)")
        let refused = try await runQuixd(["run"] + arguments + [file])
        #expect(refused.status == 2, "\(refused)")
        #expect(refused.error.contains("pipeline plan: the state kept in \(stateDir) has another shape for stage sum (aggregate sum → count)"), "\(refused.error)")
        #expect(refused.error.contains("start with --reset-state STAGE"))

        // With --reset-state the count starts afresh: 1 for the next row, not 5.
        let reset = try DaemonProcess(arguments + ["--reset-state", "sum", file])
        try await send(4)
        let rows = try await waitForOutput(cluster, count: 5)
        #expect(rows.last?["x_cumulative_count"] as? Double == 1, "\(rows)")
        #expect(rows.prefix(4).map { $0["x_cumulative_sum"] as? Double } == [1, 2, 3, 4], "\(rows)")
        #expect(try await reset.terminate() == 0, "\(reset.log)")
        let after = try await runQuixd(["plan", "--state-dir", stateDir, file])
        #expect(after.status == 0 && after.output.contains("sum    kept"), "the new shape is recorded: \(after)")
        await raw.close()
    }

    private func scratch() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-plan-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// The json rows of plan-out once it has `count`.
    @discardableResult
    private func waitForOutput(_ cluster: MockCluster, count: Int) async throws -> [[String: Any]] {
        let deadline = ContinuousClock.now + .seconds(60)
        while try await endOffsets(cluster, "plan-out", partitions: 1).reduce(0, +) < count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        return try await messages(cluster, "plan-out", partitions: 1, quiet: .milliseconds(500)).map {
            try JSONSerialization.jsonObject(with: Data($0.value ?? [])) as? [String: Any] ?? [:]
        }
    }
}
