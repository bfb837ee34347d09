import Foundation
import Logging
import QuixStreams
import Synchronization

/// Reads one of a pipeline's tables (`spec.tables`) into its `LookupTable`: every partition of
/// the topic, from the offsets the table stored (or the beginning), on a thread of its own,
/// until `stop()`. `start()` returns once every partition has been read to its end, so a
/// pipeline processes no row before its tables are loaded; later records update the table while
/// the pipeline runs.
///
/// A record's key or field names the row (`Pipeline.Table.Key`); a `json` record is one row, a
/// `quix` record's time-series rows each update their key in order; an empty value (a
/// tombstone) deletes the row of its message key. Records that cannot be read are logged and
/// passed over: a table never stops its pipeline.
final class TableReader: Sendable {
    let table: Pipeline.Table
    let store: LookupTable
    private let client: KafkaClientSettings
    private let logger: Logger
    private let status = Mutex(Status())

    private struct Status {
        var loaded = false
        var stopped = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// Records passed over (unreadable, or without a key).
        var skipped = 0
    }

    init(table: Pipeline.Table, store: LookupTable, client: KafkaClientSettings, logger: Logger) {
        self.table = table
        self.store = store
        self.client = client
        var logger = logger
        logger[metadataKey: "table"] = "\(table.name)"
        self.logger = logger
    }

    var isLoaded: Bool { status.withLock { $0.loaded } }

    /// Starts reading and returns once every partition of the topic has been read to its end.
    /// Throws at once when the topic does not exist.
    func start() async throws {
        let admin = try KafkaAdmin(settings: AdminSettings(client: client), logger: logger)
        let partitions = try await admin.metadata(topic: table.topic).first?.partitions.map(\.id) ?? []
        guard !partitions.isEmpty else {
            throw PipelineError(
                .missingTopic, "table \(table.name): topic \(table.topic) does not exist; create it (a compacted topic of rows by key), or fix spec.tables.\(table.name).topic")
        }
        let stored = try store.storedOffsets()
        var settings = ConsumerSettings(client: client, group: nil)
        settings.readsHeaders = false
        settings.reportPartitionEnd = true
        settings.startFrom = .earliest
        let consumer = try KafkaConsumer(settings: settings, logger: logger)
        try consumer.assign(partitions.map { TopicPartitionOffset(table.topic, $0, offset: stored[$0] ?? KafkaOffset.beginning) })
        logger.info("loading table", metadata: ["topic": "\(table.topic)", "partitions": "\(partitions.count)", "rows": "\(store.count)"])
        let started = ContinuousClock.now
        let thread = Thread { [self] in read(consumer, unread: Set(partitions)) }
        thread.name = "quixd-table"
        thread.start()
        await withCheckedContinuation { continuation in
            let ready = status.withLock { status in
                if status.loaded || status.stopped { return true }
                status.waiters.append(continuation)
                return false
            }
            if ready { continuation.resume() }
        }
        logger.info("table loaded", metadata: ["rows": "\(store.count)", "seconds": "\((ContinuousClock.now - started).components.seconds)"])
    }

    /// Stops reading (and releases a `start()` still waiting).
    func stop() { finish(stopped: true) }

    private func finish(stopped: Bool) {
        let waiters = status.withLock { status in
            if stopped { status.stopped = true } else { status.loaded = true }
            defer { status.waiters = [] }
            return status.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    @available(*, noasync)
    private func read(_ consumer: KafkaConsumer, unread: Set<Int32>) {
        var unread = unread
        var assemblers: [Int32: PackageAssembler] = [:]
        if unread.isEmpty { finish(stopped: false) }
        while !status.withLock({ $0.stopped }) {
            guard let event = consumer.poll(timeout: .milliseconds(200)) else { continue }
            switch event {
            case .messages(let messages):
                var updates: [(key: String, row: [String: TableCell]?)] = []
                var offsets: [Int32: Int64] = [:]
                for message in messages {
                    offsets[message.partition] = message.offset + 1
                    updates += self.updates(message, &assemblers[message.partition, default: PackageAssembler()])
                }
                do {
                    try store.apply(updates, offsets: offsets)
                } catch {
                    logger.error("table: could not store its rows; they are kept in memory and read again at the next start", metadata: ["error": "\(error)"])
                }
            case .partitionEnd(let end):
                if unread.remove(end.partition) != nil, unread.isEmpty { finish(stopped: false) }
            case .error(let error):
                logger.warning("table: Kafka error", metadata: ["error": "\(error)"])
            default:
                break
            }
        }
    }

    /// The row updates of one record.
    private func updates(_ message: KafkaMessage, _ assembler: inout PackageAssembler) -> [(key: String, row: [String: TableCell]?)] {
        let messageKey = message.key.map { QuixCodec.streamID(fromKey: Array($0)[...]) }
        guard let value = message.value, !value.isEmpty else {
            guard let messageKey, table.key == .streamID else { return skip(message, "a tombstone without a message key to delete") }
            return [(messageKey, nil)]
        }
        var frames: [TimeseriesFrame] = []
        do {
            switch table.format {
            case .json:
                frames = Self.frames(try MessageFormats.decodeJSON(value[...], kafkaTimestampMilliseconds: message.timestampMilliseconds))
            case .quix, .raw:
                for package in assembler.add(
                    partition: message.partition, key: message.key.map(Array.init), offset: message.offset,
                    timestampMilliseconds: message.timestampMilliseconds, value: value[...])
                {
                    frames += Self.frames(try QuixCodec.decodeFrame(package.value))
                }
            }
        } catch {
            return skip(message, "\(error)")
        }
        var updates: [(key: String, row: [String: TableCell]?)] = []
        for frame in frames {
            for row in 0..<frame.rowCount {
                let cells = frame.cells(at: row)
                let key: String? =
                    switch table.key {
                    case .streamID: messageKey
                    case .field(let field): cells[field]?.keyText
                    }
                guard let key else {
                    _ = skip(message, "a row without its key")
                    continue
                }
                updates.append((key, cells))
            }
        }
        return updates
    }

    private static func frames(_ decoded: DecodedMessage) -> [TimeseriesFrame] {
        switch decoded {
        case .frame(let frame): [frame]
        case .model(.timeseries(let data)): [TimeseriesFrame(data)]
        default: []
        }
    }

    private func skip(_ message: KafkaMessage, _ why: String) -> [(key: String, row: [String: TableCell]?)] {
        let count = status.withLock { status in
            status.skipped += 1
            return status.skipped
        }
        // A bounded log: the first records passed over, then every 1,000th.
        if count <= 10 || count % 1_000 == 0 {
            logger.warning(
                "table: a record passed over", metadata: ["partition": "\(message.partition)", "offset": "\(message.offset)", "why": "\(why)", "passed over": "\(count)"])
        }
        return []
    }
}
