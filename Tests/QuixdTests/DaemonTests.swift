import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import QuixKafka
import QuixProtocol
import QuixStreams
import Synchronization
import Testing

@Suite("quixd run, test and stages", .serialized, .timeLimit(.minutes(6)))
struct DaemonTests {
    @Test("every example pipeline validates and passes its own tests; a wrong expectation fails with a readable diff")
    func examplesValidateAndPassTheirTests() async throws {
        let files = try examplePipelines()
        #expect(files.count >= 3)
        let validated = try await runQuixd(["validate"] + files)
        #expect(validated.status == 0, "\(validated.error)")
        for file in files {
            let tested = try await runQuixd(["test", file])
            #expect(tested.status == 0 && tested.output.contains("tests passed"), "\(file): \(tested.output)\(tested.error)")
        }
        let broken = FileManager.default.temporaryDirectory.appendingPathComponent("gforce-\(UUID().uuidString).test.yaml")
        try String(contentsOf: repository.appendingPathComponent("pipelines/gforce.test.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "gForceTotal: 1.2,", with: "gForceTotal: 1.25,")
            .write(to: broken, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: broken) }
        let failed = try await runQuixd(["test", repository.appendingPathComponent("pipelines/gforce.yaml").path, broken.path])
        #expect(failed.status == 1)
        #expect(failed.output.contains("FAIL adds the total g-force and its 10 s rolling mean per vehicle"), "\(failed.output)")
        #expect(failed.output.contains("stream car-1 row 1 (timestamp 1000000000): gForceTotal expected 1.25, got 1.2"), "\(failed.output)")
        try String(contentsOf: repository.appendingPathComponent("pipelines/gforce.test.yaml"), encoding: .utf8)
            .replacingOccurrences(of: "timestamp: 0s", with: "timestamp: never")
            .write(to: broken, atomically: true, encoding: .utf8)
        let misread = try await runQuixd(["test", repository.appendingPathComponent("pipelines/gforce.yaml").path, broken.path])
        #expect(misread.status == 2, "a tests file that cannot be read is a usage error")
        #expect(
            misread.error.contains(#"\#(broken.path):7:26: tests[0].input[0].rows[0].timestamp: expected a timestamp"#) && misread.error.contains(#"found "never""#),
            "\(misread.error)")
    }

    @Test("quixd stages lists every compiled-in stage with its options")
    func stages() async throws {
        let listed = try await runQuixd(["stages"])
        #expect(listed.status == 0)
        for name in ["filter", "compute", "select", "drop", "rename", "rolling", "window", "cumulative", "event", "throttle", "dedup", "lookup", "join", "speeding-ticket"] {
            #expect(listed.output.contains("\n\(name)") || listed.output.hasPrefix(name), "\(name) missing from:\n\(listed.output)")
        }
        #expect(listed.output.contains("  limitKmh: number, required: the speed limit in km/h"))
    }

    @Test("the gforce example end to end: enriched rows, tickets, poison messages dead-lettered with headers, health endpoints, SIGTERM exit 0 with everything committed")
    func gforceEndToEnd() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["telemetry", "telemetry-enriched", "telemetry-dlq", "gforce-telemetry-changelog"] { try cluster.createTopic(topic, partitions: 2) }
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers)
        let producer = try client.topicProducer("telemetry")
        var expectedTotals: [String: [Double]] = [:]
        for vehicle in ["car-1", "car-2", "van-3"] {
            let stream = try producer.createStream(vehicle)
            for packet in 0..<4 {
                var frame = TimeseriesFrame(timestamps: (0..<5).map { Int64(packet * 5 + $0) * 100_000_000 })
                let x = (0..<5).map { Double(packet * 5 + $0) / 10 - 1 }
                frame["gForceX"] = NumericColumn(values: x)
                frame["gForceY"] = NumericColumn(values: x.map { $0 / 2 })
                frame["gForceZ"] = NumericColumn(values: [1, 1, 1, 1, 1])
                frame["speed"] = NumericColumn(values: (0..<5).map { vehicle == "van-3" && packet == 2 && $0 == 3 ? 141 : 110 + Double($0) })
                frame.setBinary("camera_frame", (0..<5).map { Array("\(vehicle)/\(packet)/\($0)".utf8) })
                expectedTotals[vehicle, default: []] += x.map { abs($0) + abs($0 / 2) + 1 }
                try await stream.publish(frame)
            }
        }
        try await producer.flush()
        // Poison: bytes that are no Quix package, a valid envelope whose value has the wrong types,
        // and rows the speeding-ticket stage refuses (the camera frame as text, not bytes).
        let raw = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        let garbage: [UInt8] = [0x00, 0xFF, 0x13, 0x37, 0x7B]
        let wrongTypes = Array(#"{"C":"JT","K":"ParameterData","V":{"Timestamps":"yesterday","NumericValues":{}}}"#.utf8)
        var textFrame = TimeseriesData(timestamps: [9_000_000_000])
        textFrame.numericValues["speed"] = [150]
        textFrame.stringValues["camera_frame"] = ["not a photo"]
        for value in [garbage, wrongTypes, QuixCodec.encode(.timeseries(textFrame))] {
            try await raw.send(OutgoingMessage(topic: "telemetry", key: Array("bad-1".utf8), value: value))
        }
        try await raw.flush()
        await raw.close()

        let stateDir = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-gforce-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: stateDir) }
        let port = freePort()
        let daemon = try DaemonProcess([
            "--brokers", cluster.bootstrapServers, "--state-dir", stateDir, "--http", "127.0.0.1:\(port)",
            "--set", "kafka.properties={session.timeout.ms: 6000}", repository.appendingPathComponent("pipelines/gforce.yaml").path,
        ])
        try await daemon.waitForLog("partitions assigned")
        let (readyStatus, readyBody) = try await httpGet(port, "/readyz")
        #expect(readyStatus == 200 && readyBody.contains("gforce ready: running"), "\(readyStatus) \(readyBody)")
        #expect(try await httpGet(port, "/healthz").0 == 200)

        let dead = try await messages(cluster, "telemetry-dlq", partitions: 2)
        #expect(dead.count == 3, "\(daemon.log)")
        let headers = dead.map { message in Dictionary(uniqueKeysWithValues: message.headers.map { ($0.name, String(decoding: $0.value ?? [], as: UTF8.self)) }) }
        #expect(headers.map { $0["quixd-stage"] } == ["input", "input", "tickets"])
        #expect(headers.map { $0["quixd-error-code"] } == ["malformed-message", "malformed-message", "bad-data"], "\(headers)")
        #expect(headers.allSatisfy { $0["quixd-pipeline"] == "gforce" && $0["quixd-source-topic"] == "telemetry" })
        #expect(dead.map { Array($0.value ?? []) } == [garbage, wrongTypes, QuixCodec.encode(.timeseries(textFrame))], "the original bytes")
        #expect(headers[2]["quixd-error"]?.contains("camera_frame") == true, "\(headers)")
        let sources = Set(dead.map { message in
            let header = headers[dead.firstIndex { $0.offset == message.offset && $0.partition == message.partition }!]
            return "\(header["quixd-source-partition"]!)@\(header["quixd-source-offset"]!)"
        })
        #expect(sources.count == 3, "each names its own source offset: \(headers)")

        let written = try await messages(cluster, "telemetry-enriched", partitions: 2)
        let output = try frames(written)
        for (vehicle, totals) in expectedTotals {
            let frame = try #require(output.rows[vehicle], "no output for \(vehicle)")
            #expect(frame.rowCount == 20)
            let computed = try #require(frame["gForceTotal"])
            #expect(zip(computed.values, totals).allSatisfy { abs($0 - $1) < 1e-12 }, "\(vehicle): \(computed.values) vs \(totals)")
            #expect(frame["gForceTotal_avg10s"]?.presentCount == 20 && frame.binary["camera_frame"]?.count == 20)
        }
        #expect(output.events["van-3"]?.map(\.id) == ["ticket"] && output.events["van-3"]?.first?.value.contains(#""speed":141"#) == true)
        #expect(output.events["car-1"] == nil)

        let (metricsStatus, metrics) = try await httpGet(port, "/metrics")
        #expect(metricsStatus == 200 && metrics.contains("quixd_dead_lettered_total{pipeline=\"gforce\"} 3"), "\(metrics)")
        #expect(metrics.contains("quixd_messages_in_total{pipeline=\"gforce\""))
        let writtenBytes = written.reduce(0) { $0 + ($1.value?.count ?? 0) }
        #expect(
            metrics.contains(#"quixd_bytes_out_total{pipeline="gforce",topic="telemetry-enriched"} \#(writtenBytes)"#)
                && metrics.contains(#"quixd_messages_out_total{pipeline="gforce",topic="telemetry-enriched"} \#(written.count)"#),
            "every Quix message written is counted, with its bytes: \(written.count) messages, \(writtenBytes) bytes; \(metrics)")
        #expect(metrics.contains("quixd_state_bytes{"), "the state's size per partition, set at checkpoints: \(metrics)")

        #expect(try await daemon.terminate() == 0, "\(daemon.log)")
        #expect(daemon.log.contains("pipeline stopped"))
        let ends = try await endOffsets(cluster, "telemetry", partitions: 2)
        let commits = try await committed(cluster, group: "gforce", topic: "telemetry", partitions: 2)
        // A partition without messages has nothing to commit (-1001, no offset).
        #expect(zip(commits, ends).allSatisfy { $1 == 0 ? $0 <= 0 : $0 == $1 }, "everything processed is committed: \(commits) of \(ends)\n\(daemon.log)")
    }

    @Test("SIGTERM during load: exit 0 with every processed message committed; a restart goes on with exact running sums, nothing lost or repeated")
    func sigtermDuringLoad() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["sums-in", "sums-out", "running-sums-sums-in-changelog"] { try cluster.createTopic(topic, partitions: 2) }
        let streams = 20, rows = 1_500
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("sums-in")
        var prefixSums: [String: [Double]] = [:]
        let handles = try (0..<streams).map { try producer.createStream("car-\($0)") }
        for row in 0..<rows {
            for (index, stream) in handles.enumerated() {
                let value = Double((row * 7 + index * 13) % 1_000 - 500)  // whole numbers: every sum is exact
                prefixSums[stream.streamID, default: []].append((prefixSums[stream.streamID]?.last ?? 0) + value)
                try await stream.addTimestamp(nanoseconds: Int64(row + 1) * 1_000_000).addValue("gForceX", value).publish()
            }
        }
        try await producer.close()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-sums-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let pipeline = directory + "/running-sums.yaml"
        try """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: running-sums }
            spec:
              input: { topic: sums-in }
              stages:
                - { id: sum, uses: cumulative, with: { column: gForceX, aggregate: sum, as: gForceX_sum } }
              output: { topic: sums-out }
              checkpoint: { interval: 500ms }
            """.write(toFile: pipeline, atomically: true, encoding: .utf8)
        let arguments = [
            "--brokers", cluster.bootstrapServers, "--state-dir", directory + "/state", "--http", "off",
            "--set", "kafka.properties={session.timeout.ms: 6000}", pipeline,
        ]
        let total = Int64(streams * rows)
        let first = try DaemonProcess(arguments)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(120)
        while try await endOffsets(cluster, "sums-out", partitions: 2).reduce(0, +) < total / 4 && clock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try await first.terminate() == 0, "\(first.log)")
        let written = try await endOffsets(cluster, "sums-out", partitions: 2).reduce(0, +)
        let commits = try await committed(cluster, group: "running-sums", topic: "sums-in", partitions: 2)
        #expect(written < total, "stopped during the load, after \(written) of \(total)")
        // Graceful: everything written is committed, so the output holds exactly the committed input.
        #expect(commits.reduce(0) { $0 + max(0, $1) } == written, "committed \(commits), written \(written)")

        let second = try DaemonProcess(arguments)
        while try await endOffsets(cluster, "sums-out", partitions: 2).reduce(0, +) < total && clock.now < deadline + .seconds(60) {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try await second.terminate() == 0, "\(second.log)")
        let output = try frames(try await messages(cluster, "sums-out", partitions: 2))
        for (stream, sums) in prefixSums {
            let emitted = output.rows[stream]?["gForceX_sum"].map { Array($0.values) } ?? []
            #expect(emitted == sums, "\(stream): \(emitted.count) running sums for \(sums.count) rows; the first difference at \(emitted.indices.first { $0 < sums.count && emitted[$0] != sums[$0] } ?? -1)")
        }
    }

    @Test("SIGHUP reloads pipeline files: a broken file is refused and the pipeline keeps running; a changed one restarts")
    func reload() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["raw", "scaled"] { try cluster.createTopic(topic, partitions: 1) }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-reload-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/scale.yaml"
        func write(_ expression: String) throws {
            try """
                apiVersion: quixd/v1
                kind: Pipeline
                metadata: { name: scale }
                spec:
                  input: { topic: raw, format: json }
                  stages:
                    - { id: scaled, uses: compute, with: { column: y, expression: "\(expression)" } }
                  output: { topic: scaled, format: json }
                """.write(toFile: file, atomically: true, encoding: .utf8)
        }
        let raw = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        func send(_ x: Int) async throws {
            try await raw.send(OutgoingMessage(topic: "raw", key: Array("s".utf8), value: Array(#"{"timestamp": \#(x), "x": \#(x)}"#.utf8)))
            try await raw.flush()
        }
        func outputs() async throws -> [[String: Any]] {
            try await messages(cluster, "scaled", partitions: 1, quiet: .seconds(1)).map {
                try JSONSerialization.jsonObject(with: Data($0.value ?? [])) as! [String: Any]
            }
        }
        func waitForOutputs(_ count: Int) async throws -> [[String: Any]] {
            let deadline = ContinuousClock.now + .seconds(60)
            var found = try await outputs()
            while found.count < count && ContinuousClock.now < deadline { found = try await outputs() }
            return found
        }
        try write("x * 2")
        let daemon = try DaemonProcess([
            "--brokers", cluster.bootstrapServers, "--http", "off", "--set", "kafka.properties={session.timeout.ms: 6000}", file,
        ])
        try await send(1)
        #expect(try await waitForOutputs(1).last?["y"] as? Double == 2)

        try "apiVersion: quixd/v1\nkind: Pipeline\nmetadata: { name: scale }\nspec: { input: [\n".write(toFile: file, atomically: true, encoding: .utf8)
        kill(daemon.process.processIdentifier, SIGHUP)
        try await daemon.waitForLog("reload refused a pipeline file")
        #expect(daemon.log.contains("\(file):"), "the refusal names the file: \(daemon.log)")
        try await send(2)
        #expect(try await waitForOutputs(2).last?["y"] as? Double == 4, "the running pipeline goes on")

        try write("x * 3")
        kill(daemon.process.processIdentifier, SIGHUP)
        try await daemon.waitForLog("reload started a pipeline")
        try await send(3)
        let all = try await waitForOutputs(3)
        #expect(all.map { $0["y"] as? Double } == [2, 4, 9], "\(all)")
        #expect(try await daemon.terminate() == 0, "\(daemon.log)")
        await raw.close()
    }

    @Test("onError stop: the pipeline commits what came before the bad message and stops there; quixd exits 1. skip: counted and passed over")
    func stopAndSkipPolicies() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["rows", "out-stop", "out-skip"] { try cluster.createTopic(topic, partitions: 1) }
        let raw = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        for value in [#"{"timestamp": 1, "x": 1}"#, #"{"timestamp": 2, "x": "#, #"{"timestamp": 3, "x": 3}"#] {
            try await raw.send(OutgoingMessage(topic: "rows", key: Array("s".utf8), value: Array(value.utf8)))
        }
        try await raw.flush()
        await raw.close()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-policies-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for policy in ["stop", "skip"] {
            try """
                apiVersion: quixd/v1
                kind: Pipeline
                metadata: { name: \(policy) }
                spec:
                  input: { topic: rows, format: json }
                  stages: [{ id: double, uses: compute, with: { column: y, expression: "x * 2" } }]
                  output: { topic: out-\(policy), format: json }
                  onError: { policy: \(policy) }
                """.write(toFile: "\(directory)/\(policy).yaml", atomically: true, encoding: .utf8)
        }
        let port = freePort()
        let daemon = try DaemonProcess([
            "--brokers", cluster.bootstrapServers, "--http", "127.0.0.1:\(port)", "--set", "kafka.properties={session.timeout.ms: 6000}",
            "\(directory)/stop.yaml", "\(directory)/skip.yaml",
        ])
        try await daemon.waitForLog("pipeline stopped on an error")
        let (status, body) = try await httpGet(port, "/readyz")
        #expect(status == 503 && body.contains("stop not ready: failed") && body.contains("skip ready"), "\(body)")
        #expect(try await committed(cluster, group: "stop", topic: "rows", partitions: 1) == [1], "committed up to the bad message (offset 1)")
        let stopped = try await messages(cluster, "out-stop", partitions: 1, quiet: .seconds(1)).map { String(decoding: $0.value ?? [], as: UTF8.self) }
        #expect(stopped == [#"{"timestamp":1,"x":1.0,"y":2.0}"#])
        let skipped = try await messages(cluster, "out-skip", partitions: 1, quiet: .seconds(1)).map { String(decoding: $0.value ?? [], as: UTF8.self) }
        #expect(skipped == [#"{"timestamp":1,"x":1.0,"y":2.0}"#, #"{"timestamp":3,"x":3.0,"y":6.0}"#])
        let (_, metrics) = try await httpGet(port, "/metrics")
        let skippedBytes = skipped.reduce(0) { $0 + $1.utf8.count }
        #expect(metrics.contains(#"quixd_bytes_out_total{pipeline="skip",topic="out-skip"} \#(skippedBytes)"#), "\(metrics)")
        #expect(metrics.contains(#"quixd_messages_out_total{pipeline="skip",topic="out-skip"} 2"#), "\(metrics)")
        #expect(metrics.contains(#"quixd_skipped_total{pipeline="skip"} 1"#), "\(metrics)")
        #expect(metrics.contains(#"quixd_errors_total{pipeline="stop",stage="input"} 1"#), "\(metrics)")
        #expect(try await daemon.terminate() == 0, "the skipping pipeline still ran: SIGTERM stops it cleanly")
    }

}
