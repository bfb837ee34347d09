import Foundation
import Logging
import QuixKafka
@testable import QuixStreams
import Synchronization
import Testing

/// The log lines of one test: message and metadata.
private final class RecordedLog: Sendable {
    private let lines = Mutex<[(message: String, metadata: Logger.Metadata)]>([])

    var logger: Logger {
        Logger(label: "restore-test") { _ in RecordingHandler(log: self) }
    }

    func append(_ message: String, _ metadata: Logger.Metadata) { lines.withLock { $0.append((message, metadata)) } }

    /// The metadata of each line with this message, as text.
    func entries(_ message: String) -> [[String: String]] {
        lines.withLock { lines in
            lines.filter { $0.message == message }.map { $0.metadata.mapValues { "\($0)" } }
        }
    }
}

private struct RecordingHandler: LogHandler {
    let log: RecordedLog
    var logLevel = Logger.Level.trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        log.append("\(event.message)", metadata.merging(event.metadata ?? [:]) { _, new in new })
    }
}

private func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("restore-\(UUID().uuidString)").path
}

private func record(_ store: String, _ key: String, _ value: String?) -> (key: [UInt8], value: [UInt8]?) {
    (Changelog.recordKey(store: store, key: Array(key.utf8)), value.map { Array($0.utf8) })
}

private func marker(_ checkpoint: Int64) -> (key: [UInt8], value: [UInt8]?) {
    (Changelog.markerKey, Changelog.markerValue(checkpoint))
}

/// Produces `records` to one partition of the changelog, in order.
private func write(_ cluster: MockCluster, _ topic: String, partition: Int32 = 0, _ records: [(key: [UInt8], value: [UInt8]?)]) async throws {
    let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
    for record in records {
        try await producer.send(OutgoingMessage(topic: topic, key: record.key, value: record.value, partition: partition))
    }
    try await producer.flush()
    await producer.close()
}

/// Runs a restore on this thread (it blocks, as it does in the rebalance callback).
private func restore(_ restorer: ChangelogRestorer, _ states: [PartitionState]) throws {
    try restorer.restore(states)
}

private func value(_ state: PartitionState, _ key: String, in store: String = "default") throws -> String? {
    try state.get(store: store, key: Array(key.utf8)).map { String(decoding: $0, as: UTF8.self) }
}

@Suite("restoring state from its changelog", .serialized, .timeLimit(.minutes(2)))
struct RestoreTests {
    @Test(
        "a restore commits up to the last marker, many markers per transaction or one each, never what follows it",
        arguments: [(transactionBytes: 1 << 20, transactions: 1), (transactionBytes: 1, transactions: 2)])
    func commitsEndAtMarkers(transactionBytes: Int, transactions: Int) async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("changelog", partitions: 1)
        try await write(cluster, "changelog", [
            record("default", "a", "1"), record("default", "b", "2"), marker(10),
            record("default", "a", "3"), record("default", "b", nil), marker(20),
            record("default", "c", "9"),  // a checkpoint a crash cut short
        ])
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let state = try PartitionState(directory: directory, partition: TopicPartition("in", 0), changelogged: true)
        let log = RecordedLog()
        var restorer = ChangelogRestorer(
            topic: "changelog", client: KafkaClientSettings(bootstrapServers: [cluster.bootstrapServers]), policy: .fail,
            logger: log.logger)
        restorer.transactionBytes = transactionBytes
        try restore(restorer, [state])

        #expect(try value(state, "a") == "3")
        #expect(try value(state, "b") == nil, "deleted by the tombstone")
        #expect(try value(state, "c") == nil, "after the last marker")
        #expect(try state.checkpoint == 20)
        #expect(try state.changelogOffset == 6, "after the last marker, at offset 5")
        let restored = try #require(log.entries("state restored from the changelog").first)
        #expect(restored["records"] == "7" && restored["applied"] == "4" && restored["discarded"] == "1", "\(restored)")
        let finished = try #require(log.entries("state restore finished").first)
        #expect(finished["transactions"] == "\(transactions)", "\(finished)")
        for key in ["fetching", "reading", "applying", "committing", "rate"] { #expect(finished[key] != nil, "\(key) in \(finished)") }

        // The next restore goes on from the last marker committed: the record after it is read
        // again and applied with the marker that completes it.
        try await write(cluster, "changelog", [record("default", "d", "4"), marker(30)])
        try restore(restorer, [state])
        #expect(try value(state, "c") == "9" && value(state, "d") == "4")
        #expect(try state.checkpoint == 30)
        #expect(log.entries("state restored from the changelog").last?["records"] == "3")
    }

    @Test("a restore bigger than the consumer's buffer and the byte budget restores every record, with progress and rate in the log")
    func restoresBeyondBuffers() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("big-changelog", partitions: 2)
        for partition: Int32 in [0, 1] {
            var records: [(key: [UInt8], value: [UInt8]?)] = []
            for index in 0..<5_000 {
                records.append(record(index % 3 == 0 ? "x" : "y", "k\(index)", "\(partition)-\(index)"))
                if index % 100 == 99 { records.append(marker(Int64(index + 1))) }
            }
            try await write(cluster, "big-changelog", partition: partition, records)
        }
        let directories = [temporaryDirectory(), temporaryDirectory()]
        defer { for directory in directories { try? FileManager.default.removeItem(atPath: directory) } }
        let states = try [0, 1].map {
            try PartitionState(directory: directories[$0], partition: TopicPartition("in", Int32($0)), changelogged: true)
        }
        let log = RecordedLog()
        var restorer = ChangelogRestorer(
            topic: "big-changelog", client: KafkaClientSettings(bootstrapServers: [cluster.bootstrapServers]), policy: .fail,
            logger: log.logger)
        restorer.bufferedMessages = 500
        restorer.bufferedBytes = 20_000
        restorer.progressInterval = .zero
        try restore(restorer, states)

        for (partition, state) in states.enumerated() {
            var wrong = 0
            for index in 0..<5_000 {
                if try value(state, "k\(index)", in: index % 3 == 0 ? "x" : "y") != "\(partition)-\(index)" { wrong += 1 }
            }
            #expect(wrong == 0, "partition \(partition)")
            #expect(try state.checkpoint == 5_000)
            #expect(state.stores == ["x", "y"])
        }
        let finished = try #require(log.entries("state restore finished").first)
        #expect(finished["applied"] == "10000" && finished["discarded"] == "0", "\(finished)")
        #expect(Int(finished["transactions"] ?? "") ?? 0 > 2, "the byte budget commits before the partitions end: \(finished)")
        let progress = log.entries("restoring state")
        #expect(!progress.isEmpty && progress.allSatisfy { $0["records"] != nil && $0["rate"]?.hasSuffix("records/s") == true })
    }

    @Test("applyRestored commits the records before the last marker with its checkpoint and keeps the rest for the next")
    func applyStopsAtMarker() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let state = try PartitionState(directory: directory, partition: TopicPartition("in", 0), changelogged: true)
        var records = RestoredRecords()
        var timings = RestoreTimings()
        let marker = records.append(key: (Changelog.markerKey)[...], value: [1])
        let short = records.append(key: [0], value: [1])
        let truncated = records.append(key: [0, 9, 0x61], value: [1])
        #expect(!marker && !short && !truncated, "a marker's key, a key too short, one shorter than its store name")
        #expect(records.count == 0)
        records.append(key: record("default", "a", nil).key[...], value: Array("1".utf8)[...])
        records.seal(checkpoint: 5, changelogOffset: 2)
        records.append(key: record("other", "b", nil).key[...], value: Array("2".utf8)[...])
        try state.applyRestored(records, timings: &timings)
        #expect(try value(state, "a") == "1" && value(state, "b", in: "other") == nil)
        #expect(try state.checkpoint == 5 && state.changelogOffset == 2)
        #expect(state.stores == ["default"], "a store only after the marker is not created yet")

        records.removeSealed()
        #expect(records.count == 1)
        records.append(key: record("default", "a", nil).key[...], value: nil)
        records.seal(checkpoint: 9, changelogOffset: 6)
        try state.applyRestored(records, timings: &timings)
        #expect(try value(state, "a") == nil && value(state, "b", in: "other") == "2")
        #expect(try state.checkpoint == 9 && state.changelogOffset == 6)
        #expect(state.stores == ["default", "other"])
    }
}
