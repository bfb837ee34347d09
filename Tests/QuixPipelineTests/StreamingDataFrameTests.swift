import Foundation
@testable import QuixDataFrames
import QuixKafka
import QuixPipeline
@testable import QuixStreams
import Synchronization
import Testing

/// The seed's example: projection, |x|+|y|+|z|, its 10-minute rolling mean across the stream,
/// and a filter, iterated with `for try await`.
private func seedDataFrame(_ stream: StreamConsumer) -> StreamingDataFrame {
    var df = stream.dataFrame()
    df = df[["gForceX", "gForceY", "gForceZ"]]
    df["gForceTotal"] = df["gForceX"].abs() + df["gForceY"].abs() + df["gForceZ"].abs()
    df["gForceTotal10m"] = df["gForceTotal"].rolling(.seconds(600)).mean()
    return df[df["gForceTotal"] > 1.5]
}

private func publish(_ cluster: MockCluster, _ rows: [(seconds: Int64, x: Double, y: Double, z: Double)]) async throws {
    let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("telemetry")
    var frame = TimeseriesFrame(timestamps: rows.map { $0.seconds * 1_000_000_000 })
    frame["gForceX"] = NumericColumn(rows.map(\.x))
    frame["gForceY"] = NumericColumn(rows.map(\.y))
    frame["gForceZ"] = NumericColumn(rows.map(\.z))
    frame["speed"] = NumericColumn(rows.map { _ in 120 })
    try await producer.getOrCreateStream("car-1").publish(frame)
    try await producer.close()
}

/// Runs a consumer with state in `directory` until the data frame gave `count` rows.
private func rows(_ cluster: MockCluster, state directory: String, count: Int) async throws -> [DataFrameRow] {
    let client = KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" }
    let consumer = try TopicConsumer(
        client: client, topic: "telemetry", group: "frames", startFrom: .earliest, commit: CommitOptions(everyPackages: 1, interval: nil),
        state: StateOptions(directory: directory, changelog: false))
    let collected = Collected()
    consumer.onStreamReceived { stream in collected.iterate(seedDataFrame(stream)) }
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await consumer.run() }
        let deadline = ContinuousClock.now + .seconds(60)
        while collected.rows.withLock({ $0.count }) < count && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        await consumer.close()
        try await group.waitForAll()
    }
    for loop in collected.loops.withLock({ $0 }) { loop.cancel() }
    return collected.rows.withLock { $0 }
}

/// The rows of each stream's data frame, gathered by a loop per stream.
private final class Collected: Sendable {
    let rows = Mutex<[DataFrameRow]>([])
    let loops = Mutex<[Task<Void, any Error>]>([])

    func iterate(_ df: StreamingDataFrame) {
        let loop = Task { for try await row in df { rows.withLock { $0.append(row) } } }
        loops.withLock { $0.append(loop) }
    }
}

@Suite("streaming data frames", .serialized, .timeLimit(.minutes(3)))
struct StreamingDataFrameTests {
    @Test("the seed's example on hand-computed rows; its rolling mean goes on after a restart from the library's state")
    func seedExampleAcrossARestart() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("telemetry", partitions: 1)
        let directory = try scratchDirectory()
        defer { remove(directory) }

        try await publish(cluster, [(0, 0.5, -0.25, 1), (1, -1, 0.5, 0.5), (2, 0, 0, 1)])
        try await publish(cluster, [(3, 2, -1, 1)])
        // Totals 1.75, 2, 1 (filtered out after the rolling mean took it), 4.
        let first = try await rows(cluster, state: directory, count: 3)
        #expect(first.map(\.timestamp) == [0, 1_000_000_000, 3_000_000_000])
        #expect(first.map { $0["gForceTotal"] } == [1.75, 2, 4])
        #expect(first.map { $0["gForceTotal10m"] } == [1.75, 1.875, 8.75 / 4])
        #expect(first.allSatisfy { Set($0.numbers.keys) == ["gForceX", "gForceY", "gForceZ", "gForceTotal", "gForceTotal10m"] }, "\(first)")
        #expect(first.allSatisfy { $0.streamID == "car-1" })

        // (1 s, 601 s]: the rows at 2 s and 3 s from before the restart, and this one.
        try await publish(cluster, [(601, 1, 1, 1)])
        let second = try await rows(cluster, state: directory, count: 1)
        #expect(second.map(\.timestamp) == [601_000_000_000], "only the new row: the offsets were committed")
        #expect(second.map { $0["gForceTotal10m"] } == [(1 + 4 + 3) / 3.0], "the window kept in state across the restart")
    }

    @Test("a message's offset commits only once the loop has finished the body of its last row")
    func offsetsWaitForTheLoop() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("telemetry", partitions: 1)
        try await publish(cluster, [(0, 1, 1, 1)])
        try await publish(cluster, [(1, 2, 2, 2)])
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers)
        let consumer = try TopicConsumer(
            client: client, topic: "telemetry", group: "loop", startFrom: .earliest, commit: CommitOptions(everyPackages: 1, interval: nil))
        let seen = Seen()
        consumer.onCommitted { _, offsets in seen.committed.withLock { $0 = max($0, offsets.map(\.offset).max() ?? 0) } }
        consumer.onStreamReceived { stream in
            let df = stream.dataFrame()
            Task {
                for try await _ in df {
                    // Long enough for a commit of every package to have happened, were it allowed.
                    try await Task.sleep(for: .milliseconds(500))
                    seen.inBody.withLock { $0.append(seen.committed.withLock { $0 }) }
                }
            }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await consumer.run() }
            let deadline = ContinuousClock.now + .seconds(30)
            while seen.committed.withLock({ $0 }) < 4 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            await consumer.close()
            try await group.waitForAll()
        }
        // Each publish is a frame and its stream's end: offsets 0 and 2 hold the rows. While the
        // body of a row runs, the committed offset (the next to read) is not past its message.
        let inBody = seen.inBody.withLock { $0 }
        #expect(inBody.count == 2 && inBody[0] <= 0 && inBody[1] <= 2, "\(inBody)")
        #expect(seen.committed.withLock { $0 } == 4)
    }

    /// The highest offset committed, and what the loop body saw of it.
    private final class Seen: Sendable {
        let committed = Mutex<Int64>(0)
        let inBody = Mutex<[Int64]>([])
    }

    @Test("a data frame's operators become the pipelines' own stages, with the options a YAML file would give")
    func operatorsAreStages() throws {
        var df = seedDataFrame(StreamConsumer(id: "car-1", partition: 0, state: nil))
        df["peak"] = (df["gForceTotal"] * 2 - 1).rolling(rows: 3).max()
        let described = df.stages.map { stage in
            "\(stage.id) \(stage.uses) " + stage.options.keys.sorted().map { key in "\(key)=\(Self.text(stage.options[key]!))" }.joined(separator: " ")
        }
        let expression = RollingAggregate.fnv1a("((`gForceTotal` * 2.0) - 1.0)")
        #expect(
            described == [
                "select0 select columns=[gForceX,gForceY,gForceZ]",
                "compute1 compute column=gForceTotal expression=((abs(`gForceX`) + abs(`gForceY`)) + abs(`gForceZ`))",
                "gForceTotal_rolling_mean_600s rolling aggregate=mean as=gForceTotal_rolling_mean_600s column=gForceTotal window=600s",
                "compute3 compute column=gForceTotal10m expression=`gForceTotal_rolling_mean_600s`",
                "filter4 filter where=(`gForceTotal` > 1.5)",
                "compute5 compute column=expr_\(expression) expression=((`gForceTotal` * 2.0) - 1.0)",
                "expr_\(expression)_rolling_max_3 rolling aggregate=max as=expr_\(expression)_rolling_max_3 column=expr_\(expression) window=3",
                "compute7 compute column=peak expression=`expr_\(expression)_rolling_max_3`",
            ], "\(described.joined(separator: "\n"))")
        #expect(df.temporaries == ["gForceTotal_rolling_mean_600s", "expr_\(expression)", "expr_\(expression)_rolling_max_3"])
    }

    private static func text(_ value: ConfigValue) -> String {
        switch value.kind {
        case .scalar(let text): text
        case .list(let items): "[" + items.map(text).joined(separator: ",") + "]"
        case .map(let entries): "{" + entries.keys.sorted().map { "\($0):\(text(entries[$0]!))" }.joined(separator: ",") + "}"
        }
    }
}
