import Foundation
import Logging
import QuixKafka
import QuixState

/// Brings a partition's local state up to its changelog, synchronously (it runs in the
/// rebalance callback, before the partition fetches).
///
/// One consumer reads the partitions' changelogs side by side; its own thread fetches and
/// buffers while this one applies. Records are copied into a buffer per partition; at a marker
/// everything before it becomes applicable, and once a partition has `transactionBytes` of
/// such records they go to LMDB in one write transaction with the last marker's checkpoint:
/// many markers per transaction, and what is committed always ends at a marker. Records after
/// a partition's last marker are never applied (a checkpoint a crash cut short).
///
/// Durability: the environments of changelogged state flush the data pages of every commit
/// and skip the meta page's flush (`SyncMode.noMetaSync`), which keeps the environment intact
/// through a system crash that undoes the last commits: a crash mid-restore leaves the state
/// at a marker it had committed, and the next restore goes on from there. With large
/// transactions that flush is rare. When a partition has read to its end, `sync()` makes its
/// last checkpoint durable before the partition starts processing.
struct ChangelogRestorer {
    let topic: String
    let client: KafkaClientSettings
    let policy: StateMismatchPolicy
    let logger: Logger
    /// A partition's records that end at a marker are committed once they hold this many bytes
    /// (at its end, whatever they hold).
    var transactionBytes = 1 << 20
    /// Bytes of records held, over all partitions, beyond which every partition commits what
    /// ends at its last marker.
    var bufferedBytes = 64 << 20
    /// Messages the consumer keeps ready; beyond them its thread stops taking from librdkafka,
    /// whose own prefetch (`prefetchKilobytes`) then fills and stops fetching.
    var bufferedMessages = 100_000
    /// How often progress goes to the log.
    var progressInterval: Duration = .seconds(5)

    /// How long a restore waits for the next changelog record before it gives up.
    static let readTimeout: Duration = .seconds(30)

    /// Restores the partitions together, with one consumer reading their changelog partitions
    /// side by side until each reports its end.
    @available(*, noasync)
    func restore(_ states: [PartitionState]) throws {
        guard !states.isEmpty else { return }
        var progress: [Int32: Progress] = [:]
        for state in states { progress[state.partition.partition] = Progress(state: state, local: try state.changelogOffset ?? 0) }
        var settings = ConsumerSettings(client: client, group: nil)
        settings.reportPartitionEnd = true
        settings.startFrom = .earliest
        // Pausing on backpressure would drop librdkafka's prefetch and fetch it again (each
        // such cycle stalled the restore for about a second).
        settings.backpressure = .stopPolling
        settings.maxBatch = min(10_000, bufferedMessages)
        settings.maxBufferedMessages = bufferedMessages
        settings.prefetchKilobytes = 65_536
        settings.fetchQueueBackoff = .milliseconds(10)  // librdkafka 2.2+: not 1 s each time the prefetch fills
        let consumer = try KafkaConsumer(settings: settings, logger: logger)  // closes when it goes away
        try consumer.assign(progress.values.map { TopicPartitionOffset(topic, $0.state.partition.partition, offset: $0.local) })

        let clock = ContinuousClock()
        var run = Run(started: clock.now, partitions: progress.count)
        var rebuild: [PartitionState] = []
        var open = Set(progress.keys)
        while !open.isEmpty {
            let waiting = clock.now
            guard let event = consumer.poll(timeout: Self.readTimeout) else {
                throw StreamStateError(.storage, "restoring from \(topic): no record for \(Self.readTimeout) (partitions \(open.sorted()))")
            }
            let handling = clock.now
            run.timings.fetching += handling - waiting
            let applied = run.timings.applying + run.timings.committing
            switch event {
            case .messages(let messages):
                for message in messages {
                    guard open.contains(message.partition), let entry = progress[message.partition] else { continue }
                    if entry.read == 0 && message.offset < entry.local {
                        // The changelog restarts below what the local state already holds.
                        try mismatch(entry.state, local: entry.local, found: message.offset)
                        rebuild.append(entry.state)
                        open.remove(message.partition)
                        continue
                    }
                    entry.read += 1
                    run.read += 1
                    let key = message.key ?? []
                    if key.elementsEqual(Changelog.markerKey) {
                        if let checkpoint = Changelog.markerOffset(message.value ?? []) {
                            entry.records.seal(checkpoint: checkpoint, changelogOffset: message.offset + 1)
                            if entry.records.sealedBytes >= transactionBytes { try apply(entry, &run) }
                        }
                    } else {
                        entry.records.append(key: key, value: message.value)  // skips a malformed key
                    }
                }
                if progress.values.reduce(0, { $0 + $1.records.byteCount }) > bufferedBytes {
                    for entry in progress.values where entry.records.sealedCount > 0 { try apply(entry, &run) }
                }
            case .partitionEnd(let end):
                guard open.contains(end.partition), let entry = progress[end.partition] else { continue }
                open.remove(end.partition)
                if entry.read == 0 && end.offset < entry.local {
                    try mismatch(entry.state, local: entry.local, found: end.offset)
                    rebuild.append(entry.state)
                } else if entry.read > 0 {
                    try finish(entry, &run)
                }
            case .error(let error):
                logger.warning("reading the changelog", metadata: ["topic": "\(topic)", "error": "\(error)"])
            case .assigned, .revoked, .lost, .idle:
                break
            }
            let now = clock.now
            run.timings.reading += (now - handling) - (run.timings.applying + run.timings.committing - applied)
            if now - run.lastProgress >= progressInterval {
                run.lastProgress = now
                logger.info(
                    "restoring state",
                    metadata: [
                        "topic": "\(topic)", "partitions": "\(run.partitions - open.count)/\(run.partitions)", "records": "\(run.read)",
                        "applied": "\(run.applied)", "rate": "\(run.rate(at: now)) records/s",
                    ])
            }
        }
        if run.read > 0 {
            let now = clock.now
            logger.info(
                "state restore finished",
                metadata: [
                    "topic": "\(topic)", "partitions": "\(run.partitions)", "records": "\(run.read)", "applied": "\(run.applied)",
                    "discarded": "\(run.discarded)", "seconds": "\(Self.seconds(now - run.started))", "rate": "\(run.rate(at: now)) records/s",
                    "fetching": "\(Self.seconds(run.timings.fetching))", "reading": "\(Self.seconds(run.timings.reading))",
                    "applying": "\(Self.seconds(run.timings.applying))", "committing": "\(Self.seconds(run.timings.committing))",
                    "transactions": "\(run.transactions)",
                ])
        }
        try restore(rebuild)  // the partitions reset by onStateMismatch: rebuild, from the beginning
    }

    /// Commits what a partition holds up to its last marker.
    private func apply(_ entry: Progress, _ run: inout Run) throws {
        guard entry.records.sealedCount > 0 else { return }
        try entry.state.applyRestored(entry.records, timings: &run.timings)
        entry.applied += entry.records.sealedCount
        run.applied += entry.records.sealedCount
        run.transactions += 1
        entry.records.removeSealed()
    }

    /// A partition read to its end: commits what ends at its last marker, makes it durable,
    /// and says what it did.
    private func finish(_ entry: Progress, _ run: inout Run) throws {
        try apply(entry, &run)
        let syncing = ContinuousClock.now
        try entry.state.environment.sync()
        run.timings.committing += ContinuousClock.now - syncing
        run.discarded += entry.records.count
        logger.info(
            "state restored from the changelog",
            metadata: [
                "kafka.partition": "\(entry.state.partition)", "records": "\(entry.read)", "applied": "\(entry.applied)",
                "discarded": "\(entry.records.count)", "seconds": "\(ContinuousClock.now - run.started)",
            ])
        entry.records = RestoredRecords()
    }

    /// One partition's restore: where it started, what it read, the records it holds.
    private final class Progress {
        let state: PartitionState
        let local: Int64
        var read = 0
        var applied = 0
        var records = RestoredRecords()

        init(state: PartitionState, local: Int64) {
            self.state = state
            self.local = local
        }
    }

    /// The whole restore's counts and times.
    private struct Run {
        let started: ContinuousClock.Instant
        let partitions: Int
        var lastProgress: ContinuousClock.Instant
        var read = 0
        var applied = 0
        var discarded = 0
        var transactions = 0
        var timings = RestoreTimings()

        init(started: ContinuousClock.Instant, partitions: Int) {
            self.started = started
            self.partitions = partitions
            lastProgress = started
        }

        func rate(at now: ContinuousClock.Instant) -> Int {
            let seconds = ChangelogRestorer.seconds(now - started)
            return seconds > 0 ? Int(Double(read) / seconds) : 0
        }
    }

    private static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return ((Double(seconds) + Double(attoseconds) / 1e18) * 1000).rounded() / 1000
    }

    /// The changelog holds less than the local state: apply the policy.
    private func mismatch(_ state: PartitionState, local: Int64, found: Int64) throws {
        let what = "the local state of \(state.partition) has read \(topic)[\(state.partition.partition)] up to \(local), but the changelog ends or restarts at \(found)"
        switch policy {
        case .fail:
            throw StreamStateError(.storage, what + "; set onStateMismatch to rebuild to rebuild the state from the changelog")
        case .rebuild:
            logger.warning("state mismatch: rebuilding from the changelog", metadata: ["what": "\(what)"])
            try state.reset()
        }
    }
}

/// Where a restore's time went. `fetching` is time spent waiting for the consumer (fetching
/// overlaps the rest while the consumer keeps ahead); `reading`, copying records out of the
/// consumer's batches; `applying`, writing them into LMDB transactions; `committing`, the
/// commits and the final flush of each partition.
struct RestoreTimings {
    var fetching = Duration.zero
    var reading = Duration.zero
    var applying = Duration.zero
    var committing = Duration.zero
}

/// A partition's changelog records in the order read, their bytes in one buffer (no allocation
/// per record): those before the last marker (`sealedCount`) are applicable with that marker's
/// checkpoint; those after it wait for the next marker.
struct RestoredRecords {
    struct Entry {
        /// Index into `stores`.
        var store: Int
        /// The state key's bytes start here in `bytes`, the value's follow.
        var start: Int
        var keyCount: Int32
        /// -1 for a tombstone.
        var valueCount: Int32
    }

    private(set) var bytes: [UInt8] = []
    private(set) var entries: [Entry] = []
    /// The store names the entries refer to, and their UTF-8 bytes.
    private(set) var stores: [String] = []
    private var storeBytes: [[UInt8]] = []
    /// Entries before the last marker, and where their bytes end.
    private(set) var sealedCount = 0
    private var sealedEnd = 0
    /// The last marker's input offset and the changelog offset after it.
    private(set) var checkpoint: Int64 = 0
    private(set) var changelogOffset: Int64 = 0

    var count: Int { entries.count }
    var byteCount: Int { bytes.count }
    var sealedBytes: Int { sealedEnd }

    /// Adds a record (a changelog key: store name length, store, state key); nil deletes. A
    /// malformed key (too short, or a marker's length) is skipped; returns whether it was kept.
    @discardableResult
    mutating func append(key record: ArraySlice<UInt8>, value: ArraySlice<UInt8>?) -> Bool {
        guard record.count >= 2 else { return false }
        let start = record.startIndex
        let length = Int(record[start]) << 8 | Int(record[start + 1])
        guard length != 0xFFFF, record.count >= 2 + length else { return false }
        let name = record[(start + 2)..<(start + 2 + length)]
        let store: Int
        if let last = entries.last?.store, storeBytes[last].elementsEqual(name) {
            store = last
        } else if let known = storeBytes.firstIndex(where: { $0.elementsEqual(name) }) {
            store = known
        } else {
            store = stores.count
            storeBytes.append(Array(name))
            stores.append(String(decoding: name, as: UTF8.self))
        }
        let key = record[(start + 2 + length)...]
        entries.append(
            Entry(store: store, start: bytes.count, keyCount: Int32(key.count), valueCount: value.map { Int32($0.count) } ?? -1))
        bytes.append(contentsOf: key)
        if let value { bytes.append(contentsOf: value) }
        return true
    }

    /// A marker: everything so far applies with `checkpoint`.
    mutating func seal(checkpoint: Int64, changelogOffset: Int64) {
        sealedCount = entries.count
        sealedEnd = bytes.count
        self.checkpoint = checkpoint
        self.changelogOffset = changelogOffset
    }

    /// The stores of the entries before the last marker.
    var sealedStores: Set<Int> {
        var used = Set<Int>()
        var last = -1
        for entry in entries[..<sealedCount] where entry.store != last {
            last = entry.store
            used.insert(entry.store)
        }
        return used
    }

    /// Calls `body` for each entry before the last marker, in order, with its store's index, its
    /// key and its value (nil: delete). The buffers are valid only inside `body`.
    func forEachSealed(_ body: (Int, UnsafeRawBufferPointer, UnsafeRawBufferPointer?) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { bytes in
            for entry in entries[..<sealedCount] {
                let key = UnsafeRawBufferPointer(rebasing: bytes[entry.start..<(entry.start + Int(entry.keyCount))])
                let valueStart = entry.start + Int(entry.keyCount)
                let value = entry.valueCount < 0
                    ? nil : UnsafeRawBufferPointer(rebasing: bytes[valueStart..<(valueStart + Int(entry.valueCount))])
                try body(entry.store, key, value)
            }
        }
    }

    /// Drops the entries before the last marker (they are committed); keeps those after it.
    mutating func removeSealed() {
        guard sealedCount > 0 else { return }
        bytes.removeFirst(sealedEnd)
        entries.removeFirst(sealedCount)
        for index in entries.indices { entries[index].start -= sealedEnd }
        sealedCount = 0
        sealedEnd = 0
    }
}
