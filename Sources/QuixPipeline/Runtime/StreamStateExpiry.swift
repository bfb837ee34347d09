import QuixStreams
import Synchronization

/// Removes the state of streams that `spec.state.idle` and the stages' `ttl` no longer keep.
///
/// - Per frame (`process`): the stream's latest timestamp is kept in the store `quixd.streams`.
///   With `idle`, a row `idle` or more of data time after the stream's previous row starts with
///   every stage's state empty, as `ExpiringStage` does for one stage, so a restart gives what an
///   uninterrupted run gives.
/// - Per checkpoint (`sweep`, on the partition's worker): the streams of the index, at most
///   `budget` per partition and checkpoint, walking on from where the last sweep stopped. A
///   stream whose latest row is `idle` behind the partition's data time (its latest row of any
///   stream) loses all its state; a stage's state goes when its `ttl.latest` is `ttl` behind.
///   The removals are changes like any other: checkpointed, and changelogged as tombstones.
///
/// Counted in `quixd_state_expired_total` by reason: `idle`, `ttl` (once per stage) and `end`
/// (`spec.state.onStreamEnd: drop`, counted by the runner).
final class StreamStateExpiry: Sendable {
    static let indexStore = "quixd.streams"
    static let latestKey = "latest"
    /// The partition's latest data time is kept under this stream id, which no Quix stream has.
    static let partitionEntry = ""
    static let partitionLatestKey = "partition.latest"
    /// Streams looked at per partition and checkpoint.
    static let budget = 1000

    let pipeline: String
    /// In nanoseconds.
    let idle: Int64?
    /// The stores of the stages with a `ttl`, and each ttl in nanoseconds.
    let ttls: [(store: String, ttl: Int64)]
    /// The stores of every stateful stage.
    let stores: [String]
    let metrics: PipelineMetrics?
    private let partitions = Mutex<[Int32: PartitionWalk]>([:])

    struct PartitionWalk {
        /// The latest timestamp of any frame processed here since the process started.
        var latest: Int64?
        /// The last stream the previous sweep looked at; nil: start from the first.
        var cursor: String?
    }

    /// Nil when nothing in the pipeline expires.
    init?(pipeline: Pipeline, chain: StageChain, metrics: PipelineMetrics?) {
        let ttls = chain.steps.compactMap { step in step.ttl.map { (store: step.id, ttl: $0) } }
        let idle = pipeline.expiry.idle.map(StageTime.nanoseconds)
        guard chain.isStateful, idle != nil || !ttls.isEmpty else { return nil }
        self.pipeline = pipeline.name
        self.idle = idle
        self.ttls = ttls
        stores = chain.steps.filter(\.isStateful).map(\.id)
        self.metrics = metrics
    }

    // MARK: Per frame (on the stream's worker)

    /// Runs `stages` on `frame`, first emptying the stream's state where `idle` has passed, and
    /// keeps the stream's latest timestamp.
    /// `state` gives the stream's state in a store; `partition` is the stream's.
    func process(
        _ frame: TimeseriesFrame, partition: Int32, state: (String) throws -> StreamState,
        _ stages: (TimeseriesFrame) throws -> TimeseriesFrame
    ) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return try stages(frame) }
        let index = try state(Self.indexStore)
        let previous = try index.get(Self.latestKey, as: Int.self).map(Int64.init)
        let result: TimeseriesFrame
        let latest: Int64
        if let idle {
            let gaps = DataTimeGaps(frame.timestamps, after: previous, gap: idle)
            result = try gaps.process(frame, startAfresh: { for store in stores { try state(store).clear() } }, stages)
            latest = gaps.latest
        } else {
            result = try stages(frame)
            latest = max(previous ?? .min, frame.timestamps.max()!)
        }
        index.set(Self.latestKey, Int(latest))
        partitions.withLock { walks in
            walks[partition, default: PartitionWalk()].latest = max(walks[partition]?.latest ?? latest, latest)
        }
        return result
    }

    // MARK: Per checkpoint (on the partition's worker)

    /// One bounded step of the walk over `partition`'s streams (see the type's summary).
    func sweep(_ partition: PartitionStateAccess) throws {
        let number = partition.partition.partition
        let walk = partitions.withLock { $0[number] ?? PartitionWalk() }
        let stored = partition.state(stream: Self.partitionEntry, store: Self.indexStore)
        let kept = try stored.get(Self.partitionLatestKey, as: Int.self).map(Int64.init)
        guard let now = [walk.latest, kept].compactMap({ $0 }).max() else { return }
        if kept != now { stored.set(Self.partitionLatestKey, Int(now)) }

        let (ids, keysRead) = try partition.streams(in: Self.indexStore, after: walk.cursor, limit: Self.budget)
        var idled: [String] = []
        var ttlExpired: [String: [String]] = [:]
        var unindexed: [String] = []
        for id in ids where id != Self.partitionEntry {
            guard let latest = try partition.state(stream: id, store: Self.indexStore).get(Self.latestKey, as: Int.self).map(Int64.init)
            else { continue }
            if let idle, StageTime.minus(now, latest) >= idle {
                idled.append(id)
                continue
            }
            var kept = false
            for (store, ttl) in ttls {
                guard let stageLatest = try partition.state(stream: id, store: store).get(ExpiringStage.latestKey, as: Int.self).map(Int64.init)
                else { continue }
                if StageTime.minus(now, stageLatest) >= ttl {
                    ttlExpired[store, default: []].append(id)
                } else {
                    kept = true
                }
            }
            // Without `idle` the index entry goes with the last of the stream's state, when every
            // stateful stage has a ttl; otherwise some stage keeps the stream's state for ever.
            if idle == nil, !kept, ttls.count == stores.count { unindexed.append(id) }
        }
        // One change per store for them all.
        partition.clear(streams: idled)
        for (store, streams) in ttlExpired { partition.clear(streams: streams, in: store) }
        partition.clear(streams: unindexed, in: Self.indexStore)
        partitions.withLock { $0[number, default: PartitionWalk()].cursor = keysRead < Self.budget ? nil : ids.last }
        metrics?.recordExpired(pipeline: pipeline, reason: "idle", count: idled.count)
        metrics?.recordExpired(pipeline: pipeline, reason: "ttl", count: ttlExpired.values.map(\.count).reduce(0, +))
    }
}
