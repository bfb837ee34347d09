import Foundation
import Logging
import QuixStreams

/// A row of a join's other topic: its data time, where it was read, and its cells.
struct JoinRow: Sendable {
    let timestamp: Int64
    let offset: Int64
    let cells: [String: TableCell]
}

/// The other topic of a `join` stage, read beside the input: the partitions with the numbers of
/// the input partitions this replica has (the topics are co-partitioned), from where the
/// partition's state says, on a thread of its own.
///
/// Rows wait in memory, per partition and stream, until an input frame of their stream reaches
/// their data time; then they become the stream's rows to join with, kept while they are within
/// `tolerance` of the stream's newest input. Before a frame of data time T is joined, the
/// partition is read until a row later than T arrives or the partition is read to its end, for
/// at most `wait`; so a join over topics written beforehand gives the same rows in every run.
/// At each checkpoint the partition state keeps the offset of the oldest row still held
/// (`watermark`), and a restart reads again from there: nothing a later row could join with is
/// lost, and nothing is read twice into a stream's rows.
///
/// `@unchecked Sendable`: its buffers are guarded by `condition`.
final class JoinSource: @unchecked Sendable {
    let stage: String
    let topic: String
    let format: Pipeline.DataFormat
    let tolerance: Int64
    let wait: Duration
    /// Rows held per partition before its reading pauses.
    static let pauseAt = 100_000

    private let client: KafkaClientSettings
    private let logger: Logger
    private let condition = NSCondition()
    private var partitions: [Int32: PartitionRows] = [:]
    private var consumer: KafkaConsumer?
    private var stopped = false
    /// Rows given up front, by stream (`quixd test`): every partition starts with them, read to its end.
    private let given: [String: [JoinRow]]?
    /// Serializes the consumer's assignment changes (two partitions may start at once).
    private let assigning = NSLock()

    struct PartitionRows {
        /// The next offset to read.
        var next: Int64
        /// Read to the partition's end, and nothing newer read since.
        var caughtUp = false
        var newestRead = Int64.min
        /// The newest input data time joined in this partition.
        var inputTime = Int64.min
        /// Rows read, per stream, that no input has reached yet.
        var pending: [String: [JoinRow]] = [:]
        var pendingCount = 0
        var paused = false
        /// Rows input has reached, per stream, in data-time order.
        var current: [String: [JoinRow]] = [:]
    }

    init(stage: String, topic: String, format: Pipeline.DataFormat, tolerance: Int64, wait: Duration, client: KafkaClientSettings, logger: Logger) {
        self.stage = stage
        self.topic = topic
        self.format = format
        self.tolerance = tolerance
        self.wait = wait
        self.client = client
        var logger = logger
        logger[metadataKey: "join"] = "\(stage)"
        self.logger = logger
        given = nil
    }

    /// A join over rows given up front, by stream, without a broker (`quixd test`).
    init(stage: String, tolerance: Int64, rows: [String: [JoinRow]]) {
        self.stage = stage
        topic = ""
        format = .json
        self.tolerance = tolerance
        wait = .zero
        client = KafkaClientSettings(bootstrapServers: [])
        logger = Logger(label: "quixd.test")
        given = rows
    }

    /// Checks that the topic exists and is co-partitioned with `input`, then starts reading
    /// (no partition yet: they start with their input partitions).
    func open(input: String) async throws {
        let admin = try KafkaAdmin(settings: AdminSettings(client: client), logger: logger)
        let own = try await admin.metadata(topic: topic).first?.partitions.count ?? 0
        guard own > 0 else {
            throw PipelineError(.missingTopic, "join \(stage): topic \(topic) does not exist; create it with the partitions of \(input), or fix the stage's topic")
        }
        let inputs = try await admin.metadata(topic: input).first?.partitions.count ?? 0
        guard own == inputs else {
            throw PipelineError(
                .configuration,
                "join \(stage): topic \(topic) has \(own) partitions and input \(input) has \(inputs); a join needs co-partitioned topics (the same partition count, the same keys), so repartition one of them")
        }
        var settings = ConsumerSettings(client: client, group: nil)
        settings.readsHeaders = false
        settings.reportPartitionEnd = true
        settings.startFrom = .earliest
        let consumer = try KafkaConsumer(settings: settings, logger: logger)
        condition.withLock { self.consumer = consumer }
        let thread = Thread { [self] in read(consumer) }
        thread.name = "quixd-join"
        thread.start()
    }

    /// Stops reading and wakes every frame that waits. The reading thread lets go of the
    /// consumer when it ends (closing it here could race its poll).
    func stop() {
        condition.withLock {
            stopped = true
            condition.broadcast()
        }
    }

    /// The rows of `stream` joinable at data time `time`, for `body`; reads partition
    /// `partition` from `start()` when it is new here. Afterwards the stream keeps only its rows
    /// within `tolerance` of `time`.
    func withRows<Result>(
        partition: Int32, stream: String, upTo time: Int64, start: () throws -> Int64?, _ body: ([JoinRow]) throws -> Result
    ) throws -> Result {
        let isNew = condition.withLock { partitions[partition] == nil }
        if isNew { try begin(partition, at: start() ?? 0) }
        condition.lock()
        defer { condition.unlock() }
        let deadline = Date.now.addingTimeInterval(Double(wait.components.seconds) + Double(wait.components.attoseconds) / 1e18)
        while let rows = partitions[partition], !rows.caughtUp, rows.newestRead <= time, !stopped {
            if !condition.wait(until: deadline) {
                logger.warning("join: went on before its topic was read up to the input's time", metadata: ["partition": "\(partition)", "waited": "\(wait)"])
                break
            }
        }
        guard var rows = partitions[partition] else { return try body([]) }
        rows.inputTime = max(rows.inputTime, time)
        var current = rows.current[stream] ?? []
        if let pending = rows.pending[stream] {
            let reached = pending.filter { $0.timestamp <= time }
            rows.pending[stream] = reached.count == pending.count ? nil : pending.filter { $0.timestamp > time }
            rows.pendingCount -= reached.count
            for row in reached { current.insert(row, at: current.firstIndex { $0.timestamp > row.timestamp } ?? current.endIndex) }
        }
        let result = try body(current)
        let kept = current.filter { $0.timestamp >= StageTime.minus(time, tolerance) }
        rows.current[stream] = kept.isEmpty ? nil : kept
        let resume = rows.paused && rows.pendingCount < Self.pauseAt / 2
        if resume { rows.paused = false }
        partitions[partition] = rows
        if resume { try? consumer?.resume([TopicPartition(topic, partition)]) }
        return result
    }

    /// The offset a restart reads partition `partition` again from: that of the oldest row
    /// still held, or the next to read. Rows more than `tolerance` behind the partition's input
    /// time are let go first. Nil when the partition has not started here.
    func watermark(_ partition: Int32) -> Int64? {
        condition.withLock {
            guard var rows = partitions[partition] else { return nil }
            let oldest = StageTime.minus(rows.inputTime, tolerance)
            var lowest = rows.next
            for (stream, held) in rows.pending {
                let kept = held.filter { $0.timestamp >= oldest }
                rows.pendingCount -= held.count - kept.count
                rows.pending[stream] = kept.isEmpty ? nil : kept
                lowest = kept.reduce(lowest) { min($0, $1.offset) }
            }
            for held in rows.current.values { lowest = held.reduce(lowest) { min($0, $1.offset) } }
            partitions[partition] = rows
            return lowest
        }
    }

    /// Forgets partitions this replica no longer has.
    func release(_ released: [Int32]) throws {
        assigning.lock()
        defer { assigning.unlock() }
        let (consumer, assignment) = condition.withLock { () -> (KafkaConsumer?, [TopicPartitionOffset]) in
            for partition in released { partitions[partition] = nil }
            return (self.consumer, partitions.map { TopicPartitionOffset(topic, $0.key, offset: $0.value.next) })
        }
        try consumer?.assign(assignment)
    }

    private func begin(_ partition: Int32, at offset: Int64) throws {
        assigning.lock()
        defer { assigning.unlock() }
        let (consumer, assignment) = condition.withLock { () -> (KafkaConsumer?, [TopicPartitionOffset]) in
            if partitions[partition] == nil {
                var rows = PartitionRows(next: offset)
                if let given {
                    (rows.pending, rows.pendingCount, rows.caughtUp) = (given, given.values.reduce(0) { $0 + $1.count }, true)
                }
                partitions[partition] = rows
            }
            return (self.consumer, partitions.map { TopicPartitionOffset(topic, $0.key, offset: $0.value.next) })
        }
        guard given == nil else { return }
        logger.info("join: reading its topic", metadata: ["topic": "\(topic)", "partition": "\(partition)", "offset": "\(offset)"])
        try consumer?.assign(assignment)
    }

    @available(*, noasync)
    private func read(_ consumer: KafkaConsumer) {
        var assemblers: [Int32: PackageAssembler] = [:]
        defer { condition.withLock { self.consumer = nil } }
        while !condition.withLock({ stopped }) {
            guard let event = consumer.poll(timeout: .milliseconds(100)) else { continue }
            switch event {
            case .messages(let messages):
                let decoded = messages.map { ($0, rows(of: $0, &assemblers[$0.partition, default: PackageAssembler()])) }
                var pause: [TopicPartition] = []
                condition.withLock {
                    for (message, read) in decoded {
                        guard var held = partitions[message.partition], message.offset >= held.next else { continue }
                        held.next = message.offset + 1
                        held.caughtUp = false
                        for (stream, row) in read {
                            held.pending[stream, default: []].append(row)
                            held.newestRead = max(held.newestRead, row.timestamp)
                        }
                        held.pendingCount += read.count
                        if held.pendingCount >= Self.pauseAt, !held.paused {
                            held.paused = true
                            pause.append(message.topicPartition)
                        }
                        partitions[message.partition] = held
                    }
                    condition.broadcast()
                }
                if !pause.isEmpty { try? consumer.pause(pause) }
            case .partitionEnd(let end):
                condition.withLock {
                    let partition = end.topicPartition.partition
                    if let held = partitions[partition], end.offset >= held.next { partitions[partition]!.caughtUp = true }
                    condition.broadcast()
                }
            case .error(let error):
                logger.warning("join: Kafka error", metadata: ["error": "\(error)"])
            default:
                break
            }
        }
    }

    /// The rows of one record by stream id; a record that cannot be read is logged and passed over.
    private func rows(of message: KafkaMessage, _ assembler: inout PackageAssembler) -> [(String, JoinRow)] {
        guard let value = message.value, !value.isEmpty else { return [] }
        let stream = QuixCodec.streamID(fromKey: message.key.map { Array($0)[...] })
        // Each frame with the offset a restart reads it again from (a split package's first part).
        var frames: [(frame: TimeseriesFrame, offset: Int64)] = []
        do {
            switch format {
            case .json:
                if case .frame(let frame) = try MessageFormats.decodeJSON(value[...], kafkaTimestampMilliseconds: message.timestampMilliseconds) {
                    frames = [(frame, message.offset)]
                }
            case .quix, .raw:
                for package in assembler.add(
                    partition: message.partition, key: message.key.map(Array.init), offset: message.offset,
                    timestampMilliseconds: message.timestampMilliseconds, value: value[...])
                {
                    switch try QuixCodec.decodeFrame(package.value) {
                    case .frame(let frame): frames.append((frame, package.offset))
                    case .model(.timeseries(let data)): frames.append((TimeseriesFrame(data), package.offset))
                    default: break
                    }
                }
            }
        } catch {
            logger.warning("join: a record passed over", metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)", "error": "\(error)"])
            return []
        }
        return frames.flatMap { frame, offset in
            (0..<frame.rowCount).map { row in (stream, JoinRow(timestamp: frame.timestamps[row], offset: offset, cells: frame.cells(at: row))) }
        }
    }
}
