import Foundation
import QuixKafka
import QuixProtocol
import QuixStreams
import Testing

/// `delivery: exactly-once` against SIGKILL: a cumulative-sum pipeline is killed at random
/// points, mostly inside a transaction or between a transaction's commit and the state's, and
/// restarted, once with its state directory lost. Every input message is processed, the stored
/// sums are exact, and every running sum written is exact: state is never ahead of the last
/// committed transaction, and one that a crash left behind catches up from the changelog.
///
/// librdkafka's mock keeps an aborted transaction's records visible to read_committed readers
/// (`MockClusterQuirkTests.transactionsAreNotEnforced`), so here a replayed row can appear twice
/// in the output, with the same, exact sum; on a Kafka cluster a reader sees it once.
@Suite("exactly-once survives SIGKILL", .serialized, .timeLimit(.minutes(8)))
struct ExactlyOnceTests {
    static let streams = 20
    static let rowsPerStream = 1_000
    static let partitions: Int32 = 4

    @Test("10 kills over 20,000 messages, one losing the state directory: every input processed, sums exact, each written sum exact")
    func exactlyOnce() async throws {
        let outcome = try await killAndRestart(delivery: "exactly-once", kills: 10, loseStateAtKill: 5)
        #expect(outcome.problems.isEmpty, "\(outcome.problems.prefix(10))")
        #expect(outcome.transactions > 0, "no transaction was committed")
        print("exactly-once crash test: \(outcome.summary)")
    }

    @Test("an aborted transaction restarts the pipeline inside quixd from its last committed transaction; the sums stay exact")
    func abortRestartsPipeline() async throws {
        let cluster = try MockCluster(brokers: 1)
        let name = "abort\(UUID().uuidString.prefix(6).lowercased())"
        let (input, output) = ("\(name)-in", "\(name)-out")
        for topic in [input, output, "\(name)-\(input)-changelog"] { try cluster.createTopic(topic, partitions: Int(Self.partitions)) }
        let expected = try await produceRows(cluster, topic: input)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-\(name)").path
        try FileManager.default.createDirectory(atPath: directory + "/state", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.pipeline(name: name, input: input, output: output, delivery: "exactly-once").write(toFile: directory + "/p.yaml", atomically: true, encoding: .utf8)
        // The first produce request is refused: the first transaction cannot commit.
        cluster.pushRequestErrors(.produce, [.topicAuthorizationFailed])
        let port = freePort()
        let daemon = try DaemonProcess([
            "--brokers", cluster.bootstrapServers, "--state-dir", directory + "/state", "--http", "127.0.0.1:\(port)",
            "--set", "kafka.properties={session.timeout.ms: 6000, heartbeat.interval.ms: 500}", directory + "/p.yaml",
        ])
        defer { if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) } }
        try await daemon.waitForLog("restarts from its last committed transaction")
        try await waitFor("every input row's sum in the output", daemon) {
            let rows = try await outputRows(cluster, output)
            return expected.keys.allSatisfy { Set(rows[$0]?.timestamps ?? []).count == Self.rowsPerStream }
        }
        let rows = try await outputRows(cluster, output)
        for (stream, sums) in expected {
            let frame = try #require(rows[stream])
            let wrong = zip(frame.timestamps, frame["x_sum"]?.values ?? []).filter { sums[Int($0.0 / 1_000_000) - 1] != $0.1 }
            #expect(wrong.isEmpty, "\(stream): \(wrong.count) sums differ")
        }
        let (_, metrics) = try await httpGet(port, "/metrics")
        #expect(metrics.contains("quixd_transactions_total{pipeline=\"\(name)\",outcome=\"aborted\"} 1") || daemon.log.contains("the transaction was aborted"), "\(daemon.log.suffix(2_000))")
        #expect(try await daemon.terminate() == 0, "\(daemon.log.suffix(2_000))")
    }

    static func pipeline(name: String, input: String, output: String, delivery: String) -> String {
        """
        apiVersion: quixd/v1
        kind: Pipeline
        metadata: { name: \(name) }
        spec:
          input: { topic: \(input), startFrom: earliest }
          stages: [{ id: sum, uses: cumulative, with: { column: x, aggregate: sum, as: x_sum } }]
          output: { topic: \(output) }
          delivery: \(delivery)
          checkpoint: { interval: 200ms }
        """
    }

    struct Outcome {
        var duplicates = 0
        var transactions = 0
        var problems: [String] = []
        var summary = ""
    }

    private func killAndRestart(delivery: String, kills: Int, loseStateAtKill: Int?) async throws -> Outcome {
        let cluster = try MockCluster(brokers: 1)
        let name = "eos\(UUID().uuidString.prefix(6).lowercased())"
        let (input, output) = ("\(name)-in", "\(name)-out")
        for topic in [input, output, "\(name)-\(input)-changelog"] { try cluster.createTopic(topic, partitions: Int(Self.partitions)) }
        let expected = try await produceRows(cluster, topic: input)
        let total = try await endOffsets(cluster, input, partitions: Self.partitions)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-\(name)").path
        let stateDir = directory + "/state"
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Self.pipeline(name: name, input: input, output: output, delivery: delivery).write(toFile: directory + "/pipeline.yaml", atomically: true, encoding: .utf8)
        let port = freePort()
        let arguments = [
            "--brokers", cluster.bootstrapServers, "--state-dir", stateDir, "--http", "127.0.0.1:\(port)",
            "--set", "kafka.properties={session.timeout.ms: 6000, heartbeat.interval.ms: 500}", directory + "/pipeline.yaml",
        ]

        // Progress is read from quixd's own metrics: the mock stores no transactional offset
        // commit, and the group's offsets lag behind until new input is processed.
        var killedAfter: [Int] = []
        var transactions = 0
        let started = ContinuousClock.now
        for run in 0...kills {
            let daemon = try DaemonProcess(arguments)
            defer { if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGKILL) } }
            try await daemon.waitForLog("partitions assigned")
            if run < kills {
                // Killed while it processes: inside a transaction, or between a transaction's
                // commit and the state's.
                let delay = Int.random(in: 300...1_500)
                try await Task.sleep(for: .milliseconds(delay))
                guard daemon.process.isRunning else {
                    Issue.record("quixd exited in run \(run): \(daemon.log.suffix(3_000))")
                    throw CancellationError()
                }
                transactions += try await committedTransactions(port, name)
                kill(daemon.process.processIdentifier, SIGKILL)
                daemon.process.waitUntilExit()
                killedAfter.append(delay)
                if run == loseStateAtKill { try FileManager.default.removeItem(atPath: stateDir) }
            } else {
                try await waitFor("every input row's sum in the output", daemon) {
                    let rows = try await outputRows(cluster, output)
                    return expected.keys.allSatisfy { Set(rows[$0]?.timestamps ?? []).count == Self.rowsPerStream }
                }
                transactions += try await committedTransactions(port, name)
                #expect(try await daemon.terminate() == 0, "\(daemon.log.suffix(2_000))")
            }
        }
        let elapsed = ContinuousClock.now - started

        let rows = try await outputRows(cluster, output)

        var outcome = Outcome()
        outcome.transactions = transactions
        let dump = try await runQuixd(["state", "dump", "--dir", stateDir, "--format", "json"])
        var stored: [String: Double] = [:]
        for line in dump.output.split(separator: "\n") {
            let entry = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            if entry["store"] as? String == "sum", entry["key"] as? String == "value" { stored[entry["stream"] as! String] = entry["value"] as? Double }
        }
        if stored != expected.mapValues({ $0.last! }) { outcome.problems.append("stored sums differ from the input's: \(stored.count) streams stored") }
        for (stream, sums) in expected {
            guard let frame = rows[stream], let written = frame["x_sum"]?.values else {
                outcome.problems.append("\(stream): no output")
                continue
            }
            let timestamps = frame.timestamps
            outcome.duplicates += timestamps.count - Set(timestamps).count
            // Every input row's running sum, each written value exact (a replay writes the same),
            // and the rows in input order once replays are taken out.
            var seen = Set<Int64>()
            var order: [Int64] = []
            for (timestamp, sum) in zip(timestamps, written) {
                let row = Int(timestamp / 1_000_000) - 1
                guard sums.indices.contains(row), sum == sums[row] else {
                    outcome.problems.append("\(stream): row \(row) written with sum \(sum), expected \(sums.indices.contains(row) ? String(sums[row]) : "no row")")
                    break
                }
                if seen.insert(timestamp).inserted { order.append(timestamp) }
            }
            if order != (1...Int64(Self.rowsPerStream)).map({ $0 * 1_000_000 }) {
                outcome.problems.append("\(stream): rows missing or out of order (\(order.count) distinct of \(Self.rowsPerStream))")
            }
        }
        let written = rows.values.reduce(0) { $0 + $1.rowCount }
        outcome.summary =
            "\(delivery), \(kills) kills in \(elapsed): \(written) rows written for \(Self.streams * Self.rowsPerStream) input rows, "
            + "\(outcome.duplicates) duplicates (the mock shows aborted records); killed after \(killedAfter) ms; \(transactions) transactions committed"
        return outcome
    }

    /// The output's rows by stream, as a read_committed reader sees them.
    private func outputRows(_ cluster: MockCluster, _ topic: String) async throws -> [String: TimeseriesFrame] {
        var reader = ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil)
        reader.client.librdkafka["isolation.level"] = "read_committed"
        let consumer = try KafkaConsumer(settings: reader)
        try consumer.assign((0..<Self.partitions).map { TopicPartitionOffset(topic, $0, offset: KafkaOffset.beginning) })
        let rows = try frames(drain(consumer, quiet: .seconds(1))).rows
        await consumer.close()
        return rows
    }

    /// `quixd_transactions_total{outcome="committed"}` of the pipeline.
    private func committedTransactions(_ port: Int, _ pipeline: String) async throws -> Int {
        let (_, metrics) = try await httpGet(port, "/metrics")
        let line = metrics.split(separator: "\n").first { $0.hasPrefix("quixd_transactions_total{pipeline=\"\(pipeline)\",outcome=\"committed\"}") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) } ?? 0
    }

    /// `streams` streams of one-row packages, interleaved; returns each stream's running sums.
    private func produceRows(_ cluster: MockCluster, topic: String) async throws -> [String: [Double]] {
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer(topic)
        let streams = try (0..<Self.streams).map { try producer.createStream("car-\($0)") }
        var sums: [String: [Double]] = [:]
        for row in 0..<Self.rowsPerStream {
            for (index, stream) in streams.enumerated() {
                let value = Double((row * 7 + index * 13) % 1_000 - 500)
                sums[stream.streamID, default: []].append((sums[stream.streamID]?.last ?? 0) + value)
                try await stream.addTimestamp(nanoseconds: Int64(row + 1) * 1_000_000).addValue("x", value).publish()
            }
        }
        try await producer.close()
        return sums
    }

    private func waitFor(_ what: String, _ daemon: DaemonProcess, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(90)
        while try await !condition() {
            guard daemon.process.isRunning else {
                Issue.record("quixd exited (\(daemon.process.terminationStatus)) while waiting for \(what): \(daemon.log.suffix(3_000))")
                throw CancellationError()
            }
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(what): \(daemon.log.suffix(3_000))")
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
