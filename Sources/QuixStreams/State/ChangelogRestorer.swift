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
/// such records (or all partitions hold `bufferedBytes`) they go to LMDB in one write
/// transaction with the last marker's checkpoint: many markers per transaction, and what is
/// committed always ends at a marker. Records after a partition's last marker are never
/// applied (a checkpoint a crash cut short).
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
    /// Memory the records held may take, over all partitions; beyond it the partitions holding
    /// the most commit what ends at their last marker. (Records after a partition's last marker
    /// are held whatever it costs: they cannot be committed before their marker comes.)
    var bufferedBytes = 16 << 20
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
        settings.readsHeaders = false
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
        let applier = Applier(logger: logger, maxQueuedBytes: bufferedBytes / 2)
        defer { applier.abandon() }  // after an error: what is committed ends at a marker
        var rebuild: [PartitionState] = []
        var open = Set(progress.keys)
        while !open.isEmpty {
            let waiting = clock.now
            guard let event = consumer.poll(timeout: Self.readTimeout) else {
                throw StreamStateError(.storage, "restoring from \(topic): no record for \(Self.readTimeout) (partitions \(open.sorted()))")
            }
            let handling = clock.now
            run.fetching += handling - waiting
            let blocked = run.blocked
            try applier.check()
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
                            if entry.records.sealedBytes >= transactionBytes { try hand(entry, to: applier, &run) }
                        }
                    } else {
                        entry.records.append(key: key, value: message.value)  // skips a malformed key
                    }
                }
                var held = progress.values.reduce(0) { $0 + $1.records.heldBytes }
                if held > bufferedBytes / 2 {
                    // Hand over the partitions holding the most until a quarter of the budget is left.
                    for entry in progress.values.sorted(by: { $0.records.sealedBytes > $1.records.sealedBytes })
                    where held > bufferedBytes / 4 && entry.records.sealedCount > 0 {
                        held -= entry.records.heldBytes
                        try hand(entry, to: applier, &run)
                        held += entry.records.heldBytes
                    }
                }
            case .partitionEnd(let end):
                guard open.contains(end.partition), let entry = progress[end.partition] else { continue }
                open.remove(end.partition)
                if entry.read == 0 && end.offset < entry.local {
                    try mismatch(entry.state, local: entry.local, found: end.offset)
                    rebuild.append(entry.state)
                } else if entry.read > 0 {
                    try hand(entry, to: applier, &run)
                    run.discarded += entry.records.count
                    let metadata: Logger.Metadata = [
                        "kafka.partition": "\(entry.state.partition)", "records": "\(entry.read)", "applied": "\(entry.applied)",
                        "discarded": "\(entry.records.count)",
                    ]
                    try submit(.finish(entry.state, metadata, started: run.started), to: applier, &run)
                    entry.records = RestoredRecords()
                }
            case .error(let error):
                if let missing = ChangelogTopic.missingPartition(error, topic: topic) { throw missing }
                logger.warning("reading the changelog", metadata: ["topic": "\(topic)", "error": "\(error)"])
            case .assigned, .revoked, .lost, .idle:
                break
            }
            let now = clock.now
            run.reading += (now - handling) - (run.blocked - blocked)
            if now - run.lastProgress >= progressInterval {
                run.lastProgress = now
                logger.info(
                    "restoring state",
                    metadata: [
                        "topic": "\(topic)", "partitions": "\(run.partitions - open.count)/\(run.partitions)", "records": "\(run.read)",
                        "applied": "\(applier.applied)", "rate": "\(run.rate(at: now)) records/s",
                    ])
            }
        }
        let closing = clock.now
        let applied = try applier.close()
        run.blocked += clock.now - closing
        if run.read > 0 {
            let now = clock.now
            logger.info(
                "state restore finished",
                metadata: [
                    "topic": "\(topic)", "partitions": "\(run.partitions)", "records": "\(run.read)", "applied": "\(applied.records)",
                    "discarded": "\(run.discarded)", "seconds": "\(Self.seconds(now - run.started))", "rate": "\(run.rate(at: now)) records/s",
                    "transactions": "\(applied.transactions)", "fetching": "\(Self.seconds(run.fetching))",
                    "reading": "\(Self.seconds(run.reading))", "applying": "\(Self.seconds(applied.timings.applying))",
                    "committing": "\(Self.seconds(applied.timings.committing))", "waitingForLMDB": "\(Self.seconds(run.blocked))",
                ])
        }
        try restore(rebuild)  // the partitions reset by onStateMismatch: rebuild, from the beginning
    }

    /// Hands what a partition holds up to its last marker to the applier, to be committed in one
    /// transaction.
    private func hand(_ entry: Progress, to applier: Applier, _ run: inout Run) throws {
        guard entry.records.sealedCount > 0 else { return }
        let records = entry.records.takeSealed()
        entry.applied += records.sealedCount
        try submit(.apply(entry.state, records), to: applier, &run)
    }

    private func submit(_ job: Applier.Job, to applier: Applier, _ run: inout Run) throws {
        let started = ContinuousClock.now
        try applier.submit(job)
        run.blocked += ContinuousClock.now - started
    }

    /// One partition's restore: where it started, what it read, the records it holds.
    private final class Progress {
        let state: PartitionState
        let local: Int64
        var read = 0
        /// Records handed to the applier.
        var applied = 0
        var records = RestoredRecords()

        init(state: PartitionState, local: Int64) {
            self.state = state
            self.local = local
        }
    }

    /// The whole restore's counts, and where the reading thread's time went.
    private struct Run {
        let started: ContinuousClock.Instant
        let partitions: Int
        var lastProgress: ContinuousClock.Instant
        var read = 0
        var discarded = 0
        /// Waiting for the consumer.
        var fetching = Duration.zero
        /// Copying records out of its batches.
        var reading = Duration.zero
        /// Waiting for the applier, whose queue was full.
        var blocked = Duration.zero

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

    static func seconds(_ duration: Duration) -> Double {
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

/// Where the applier's time went: `applying`, writing records into LMDB transactions;
/// `committing`, the commits and the final flush of each partition.
struct RestoreTimings: Sendable {
    var applying = Duration.zero
    var committing = Duration.zero
}

/// Writes restored records into LMDB on a thread of its own (`quixd-restore-apply`), in the
/// order they are handed over, so the restore keeps taking records from the consumer while
/// transactions commit and flush. Its queue holds at most `maxQueuedBytes` of records: beyond
/// them `submit` waits (LMDB is slower than fetching).
///
/// `@unchecked Sendable`: every stored `var` is read and written with `condition` held.
private final class Applier: @unchecked Sendable {
    enum Job: Sendable {
        /// Commit the records before the last marker in one transaction.
        case apply(PartitionState, RestoredRecords)
        /// The partition has read to its end: flush it, then log `metadata` (and the seconds since `started`).
        case finish(PartitionState, Logger.Metadata, started: ContinuousClock.Instant)

        var bytes: Int {
            if case .apply(_, let records) = self { return records.heldBytes }
            return 0
        }
    }

    private let condition = NSCondition()
    private let logger: Logger
    private let maxQueuedBytes: Int
    private var jobs: [Job] = []
    private var queuedBytes = 0
    private var closing = false
    private var done = false
    private var failure: (any Error)?
    private var timings = RestoreTimings()
    private var transactions = 0
    private var committed = 0

    init(logger: Logger, maxQueuedBytes: Int) {
        self.logger = logger
        self.maxQueuedBytes = maxQueuedBytes
        let thread = Thread { [self] in run() }
        thread.name = "quixd-restore-apply"
        thread.start()
    }

    /// Records committed so far.
    var applied: Int { condition.withLock { committed } }

    /// Queues `job`, waiting while the queue is full; throws what made the applier stop.
    func submit(_ job: Job) throws {
        try condition.withLock {
            while queuedBytes > maxQueuedBytes && failure == nil && !done { condition.wait() }
            if let failure { throw failure }
            jobs.append(job)
            queuedBytes += job.bytes
            condition.broadcast()
        }
    }

    /// Throws what made the applier stop, if it did.
    func check() throws {
        if let failure = condition.withLock({ failure }) { throw failure }
    }

    /// Waits until every queued job is done; returns what was committed and how long it took.
    func close() throws -> (records: Int, transactions: Int, timings: RestoreTimings) {
        try condition.withLock {
            closing = true
            condition.broadcast()
            while !done { condition.wait() }
            if let failure { throw failure }
            return (committed, transactions, timings)
        }
    }

    /// Drops the queued jobs and waits for the one running (the restore failed). What is
    /// committed ends at a marker, so nothing half done stays behind.
    func abandon() {
        condition.withLock {
            jobs.removeAll()
            closing = true
            condition.broadcast()
            while !done { condition.wait() }
        }
    }

    private func run() {
        while let job = next() {
            do {
                switch job {
                case .apply(let state, let records):
                    var spent = RestoreTimings()
                    try state.applyRestored(records, timings: &spent)
                    condition.withLock {
                        timings.applying += spent.applying
                        timings.committing += spent.committing
                        transactions += 1
                        committed += records.sealedCount
                    }
                case .finish(let state, var metadata, let started):
                    let flushing = ContinuousClock.now
                    try state.environment.sync()  // the last checkpoint is durable before the partition processes
                    let now = ContinuousClock.now
                    condition.withLock { timings.committing += now - flushing }
                    metadata["seconds"] = "\(ChangelogRestorer.seconds(now - started))"
                    logger.info("state restored from the changelog", metadata: metadata)
                }
            } catch {
                condition.withLock {
                    failure = error
                    jobs.removeAll()
                }
            }
            condition.withLock {
                queuedBytes -= job.bytes
                condition.broadcast()
            }
        }
        condition.withLock {
            done = true
            condition.broadcast()
        }
    }

    /// The next job, waiting for one; nil once closing with none left, or after a failure.
    private func next() -> Job? {
        condition.withLock {
            while jobs.isEmpty && !closing && failure == nil { condition.wait() }
            guard failure == nil, !jobs.isEmpty else { return nil }
            return jobs.removeFirst()
        }
    }
}

extension NSCondition {
    fileprivate func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
