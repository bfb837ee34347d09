import Prometheus
import Synchronization

/// The metrics quixd's pipelines record, kept in one Prometheus registry and served as text on
/// `/metrics`.
///
/// Every series is labelled by `pipeline`; per-partition series also by the input `topic` and
/// `partition`, output series by the output `topic`, and errors by `stage`. The labelled metric
/// objects are created on first use and cached, so a record call costs one dictionary look-up
/// under a lock plus an atomic add (counters, gauges) or a locked bucket update (histograms).
public final class PipelineMetrics: Sendable {
    /// Upper bounds of `quixd_processing_seconds`: 10 µs to 1 s, in 1–2.5–5 steps.
    public static let processingBuckets: [Duration] = [
        .microseconds(10), .microseconds(25), .microseconds(50),
        .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5),
        .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1),
    ]

    /// Upper bounds of `quixd_checkpoint_seconds`: 1 ms to 10 s (a checkpoint flushes the
    /// producer, the state store and commits offsets).
    public static let checkpointBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// The registry every series lives in; the daemon may register its own metrics here too.
    public let registry: PrometheusCollectorRegistry

    private let consumed = SeriesCache<PartitionKey, Traffic>()
    private let produced = SeriesCache<TopicKey, Traffic>()
    private let lag = SeriesCache<PartitionKey, Gauge>()
    private let timeLag = SeriesCache<PartitionKey, Gauge>()
    private let stateSize = SeriesCache<PartitionKey, Gauge>()
    private let pipelines = SeriesCache<String, PipelineSeries>()
    private let errors = SeriesCache<StageKey, Counter>()
    private let transactions = SeriesCache<StageKey, Counter>()
    private let expired = SeriesCache<StageKey, Counter>()

    /// Metrics recorded into `registry` (a new, empty one by default).
    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    // MARK: Recording

    /// Creates `pipeline`'s per-pipeline series (counters at 0, `quixd_pipeline_ready` 0), so
    /// they are exported before anything happens.
    public func register(pipeline: String) {
        _ = series(pipeline)
    }

    /// Counts `messages` messages of `bytes` bytes read from `topic`/`partition`
    /// (`quixd_messages_in_total`, `quixd_bytes_in_total`).
    public func recordConsumed(pipeline: String, topic: String, partition: Int32, messages: Int, bytes: Int) {
        let traffic = consumed.get(PartitionKey(pipeline: pipeline, topic: topic, partition: partition)) {
            let labels = [("pipeline", pipeline), ("topic", topic), ("partition", String(partition))]
            return Traffic(
                messages: registry.makeCounter(descriptor: Self.messagesIn.descriptor, labels: labels),
                bytes: registry.makeCounter(descriptor: Self.bytesIn.descriptor, labels: labels))
        }
        traffic.add(messages: messages, bytes: bytes)
    }

    /// What counts messages and bytes written to the output `topic` (`quixd_messages_out_total`,
    /// `quixd_bytes_out_total`), its counters looked up once: the output counts every message.
    public func producedRecorder(pipeline: String, topic: String) -> @Sendable (_ messages: Int, _ bytes: Int) -> Void {
        let traffic = produced.get(TopicKey(pipeline: pipeline, topic: topic)) {
            let labels = [("pipeline", pipeline), ("topic", topic)]
            return Traffic(
                messages: registry.makeCounter(descriptor: Self.messagesOut.descriptor, labels: labels),
                bytes: registry.makeCounter(descriptor: Self.bytesOut.descriptor, labels: labels))
        }
        return { messages, bytes in traffic.add(messages: messages, bytes: bytes) }
    }

    /// Records one message's processing latency, from leaving the consumer to reaching the
    /// output (`quixd_processing_seconds`).
    public func recordProcessing(pipeline: String, latency: Duration) {
        series(pipeline).processing.record(latency)
    }

    /// The `quixd_processing_seconds` histogram of `pipeline`, for a caller that records once per
    /// message: looked up once, not per message.
    public func processingHistogram(pipeline: String) -> DurationHistogram { series(pipeline).processing }

    /// Records the processing latency of each message of a batch (`quixd_processing_seconds`).
    public func recordProcessing(pipeline: String, latencies: some Sequence<Duration>) {
        let histogram = series(pipeline).processing
        for latency in latencies {
            histogram.record(latency)
        }
    }

    /// Sets the consumer lag of `topic`/`partition`: the high watermark minus the next offset to
    /// read (`quixd_consumer_lag`).
    public func setConsumerLag(pipeline: String, topic: String, partition: Int32, lag messages: Int64) {
        lag.get(PartitionKey(pipeline: pipeline, topic: topic, partition: partition)) {
            registry.makeGauge(descriptor: Self.consumerLag.descriptor, labels: Self.partitionLabels(pipeline, topic, partition))
        }.set(to: Double(messages))
    }

    /// Sets how far processing of `topic`/`partition` is behind its input in data time: the
    /// Kafka timestamp of the newest message read minus that of the last one processed
    /// (`quixd_consumer_lag_milliseconds`).
    public func setConsumerTimeLag(pipeline: String, topic: String, partition: Int32, milliseconds: Int64) {
        timeLag.get(PartitionKey(pipeline: pipeline, topic: topic, partition: partition)) {
            registry.makeGauge(descriptor: Self.consumerTimeLag.descriptor, labels: Self.partitionLabels(pipeline, topic, partition))
        }.set(to: Double(milliseconds))
    }

    /// Records how long one checkpoint took (`quixd_checkpoint_seconds`).
    public func recordCheckpoint(pipeline: String, duration: Duration) {
        series(pipeline).checkpoint.record(duration)
    }

    /// Sets the size of the state `topic`/`partition` keeps (`quixd_state_bytes`).
    public func setStateBytes(pipeline: String, topic: String, partition: Int32, bytes: Int64) {
        stateSize.get(PartitionKey(pipeline: pipeline, topic: topic, partition: partition)) {
            registry.makeGauge(descriptor: Self.stateBytes.descriptor, labels: Self.partitionLabels(pipeline, topic, partition))
        }.set(to: Double(bytes))
    }

    /// Counts one rebalance of the pipeline's consumer group (`quixd_rebalances_total`).
    public func recordRebalance(pipeline: String) {
        series(pipeline).rebalances.increment()
    }

    /// Counts messages sent to the dead-letter topic (`quixd_dead_lettered_total`).
    public func recordDeadLettered(pipeline: String, count: Int = 1) {
        Self.add(count, to: series(pipeline).deadLettered)
    }

    /// Counts messages skipped by the `skip` error policy (`quixd_skipped_total`).
    public func recordSkipped(pipeline: String, count: Int = 1) {
        Self.add(count, to: series(pipeline).skipped)
    }

    /// Counts errors raised by `stage`, whatever the policy then did (`quixd_errors_total`).
    public func recordError(pipeline: String, stage: String, count: Int = 1) {
        let counter = errors.get(StageKey(pipeline: pipeline, stage: stage)) {
            registry.makeCounter(descriptor: Self.errorsTotal.descriptor, labels: [("pipeline", pipeline), ("stage", stage)])
        }
        Self.add(count, to: counter)
    }

    /// Counts Kafka transactions of an exactly-once pipeline, by `outcome` (`committed` or
    /// `aborted`) (`quixd_transactions_total`).
    public func recordTransactions(pipeline: String, outcome: String, count: Int) {
        let counter = transactions.get(StageKey(pipeline: pipeline, stage: outcome)) {
            registry.makeCounter(descriptor: Self.transactionsTotal.descriptor, labels: [("pipeline", pipeline), ("outcome", outcome)])
        }
        Self.add(count, to: counter)
    }

    /// Counts streams whose state was removed, by `reason`: `idle` (`spec.state.idle`), `ttl` (a
    /// stage's `ttl`, per stage) or `end` (`spec.state.onStreamEnd: drop`) (`quixd_state_expired_total`).
    public func recordExpired(pipeline: String, reason: String, count: Int = 1) {
        let counter = expired.get(StageKey(pipeline: pipeline, stage: reason)) {
            registry.makeCounter(descriptor: Self.expiredTotal.descriptor, labels: [("pipeline", pipeline), ("reason", reason)])
        }
        Self.add(count, to: counter)
    }

    /// Sets `quixd_pipeline_ready` to 1 or 0.
    public func setReady(pipeline: String, _ ready: Bool) {
        series(pipeline).ready.set(to: ready ? 1 : 0)
    }

    /// Drops the per-partition gauges (lag, state size) of a partition this instance no longer
    /// owns, so no stale value is exported; its counters stay, as counters must.
    public func forgetPartition(pipeline: String, topic: String, partition: Int32) {
        let key = PartitionKey(pipeline: pipeline, topic: topic, partition: partition)
        if let gauge = lag.remove(key) { registry.unregisterGauge(gauge) }
        if let gauge = timeLag.remove(key) { registry.unregisterGauge(gauge) }
        if let gauge = stateSize.remove(key) { registry.unregisterGauge(gauge) }
    }

    // MARK: Exposition

    /// Every series in the Prometheus text exposition format (version 0.0.4).
    public func exposition() -> String {
        registry.emitToString()
    }

    /// `exposition()` as UTF-8 bytes.
    public func expositionBytes() -> [UInt8] {
        registry.emitToBuffer()
    }

    // MARK: Private

    private func series(_ pipeline: String) -> PipelineSeries {
        pipelines.get(pipeline) {
            let labels = [("pipeline", pipeline)]
            return PipelineSeries(
                processing: registry.makeDurationHistogram(
                    descriptor: Self.processingSeconds.descriptor, labels: labels, buckets: Self.processingBuckets),
                checkpoint: registry.makeDurationHistogram(
                    descriptor: Self.checkpointSeconds.descriptor, labels: labels, buckets: Self.checkpointBuckets),
                rebalances: registry.makeCounter(descriptor: Self.rebalancesTotal.descriptor, labels: labels),
                deadLettered: registry.makeCounter(descriptor: Self.deadLetteredTotal.descriptor, labels: labels),
                skipped: registry.makeCounter(descriptor: Self.skippedTotal.descriptor, labels: labels),
                ready: registry.makeGauge(descriptor: Self.pipelineReady.descriptor, labels: labels))
        }
    }

    private static func partitionLabels(_ pipeline: String, _ topic: String, _ partition: Int32) -> [(String, String)] {
        [("pipeline", pipeline), ("topic", topic), ("partition", String(partition))]
    }

    /// Counters only go up: a negative amount (a caller's bug) is ignored rather than trapping.
    fileprivate static func add(_ amount: Int, to counter: Counter) {
        if amount > 0 { counter.increment(by: Int64(amount)) }
    }

    private static let messagesIn = Family("quixd_messages_in_total", "Messages read from the input topic.")
    private static let messagesOut = Family("quixd_messages_out_total", "Messages written to the output topic.")
    private static let bytesIn = Family("quixd_bytes_in_total", "Bytes of message values read from the input topic.")
    private static let bytesOut = Family("quixd_bytes_out_total", "Bytes of message values written to the output topic.")
    private static let processingSeconds = Family(
        "quixd_processing_seconds", "Per-message processing latency, from consumer to output.")
    private static let consumerLag = Family(
        "quixd_consumer_lag", "Messages between the next offset to read and the high watermark.")
    private static let consumerTimeLag = Family(
        "quixd_consumer_lag_milliseconds", "Data time (Kafka timestamps) between the newest message read and the last processed.")
    private static let checkpointSeconds = Family("quixd_checkpoint_seconds", "Time taken by one checkpoint.")
    private static let stateBytes = Family("quixd_state_bytes", "Bytes of state kept for the partition.")
    private static let rebalancesTotal = Family("quixd_rebalances_total", "Rebalances of the pipeline's consumer group.")
    private static let deadLetteredTotal = Family("quixd_dead_lettered_total", "Messages sent to the dead-letter topic.")
    private static let skippedTotal = Family("quixd_skipped_total", "Messages skipped after an error.")
    private static let errorsTotal = Family("quixd_errors_total", "Errors raised by a stage.")
    private static let transactionsTotal = Family(
        "quixd_transactions_total", "Kafka transactions of an exactly-once pipeline, by outcome (each checkpoint is one).")
    private static let expiredTotal = Family(
        "quixd_state_expired_total", "Streams whose state was removed, by reason (idle, ttl per stage, end).")
    private static let pipelineReady = Family(
        "quixd_pipeline_ready", "1 when the pipeline has joined its group and is not stalled, else 0.")
}

// MARK: - Cached series

/// A metric's name and help text.
private struct Family: Sendable {
    let name: String
    let help: String

    init(_ name: String, _ help: String) {
        self.name = name
        self.help = help
    }

    /// The full name as `metricName`: empty parts are left out of `MetricNameDescriptor.name`.
    /// (Made on a cache miss only; the descriptor type is not Sendable, so it is no static.)
    var descriptor: MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}

private struct PartitionKey: Hashable, Sendable {
    var pipeline: String
    var topic: String
    var partition: Int32
}

private struct TopicKey: Hashable, Sendable {
    var pipeline: String
    var topic: String
}

private struct StageKey: Hashable, Sendable {
    var pipeline: String
    var stage: String
}

/// A message counter and a byte counter with the same labels.
private struct Traffic: Sendable {
    let messages: Counter
    let bytes: Counter

    func add(messages count: Int, bytes size: Int) {
        PipelineMetrics.add(count, to: messages)
        PipelineMetrics.add(size, to: bytes)
    }
}

/// The series labelled by `pipeline` alone.
private struct PipelineSeries: Sendable {
    let processing: DurationHistogram
    let checkpoint: DurationHistogram
    let rebalances: Counter
    let deadLettered: Counter
    let skipped: Counter
    let ready: Gauge
}

/// Metric objects by label values, created once under a lock and reused.
private final class SeriesCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let entries = Mutex<[Key: Value]>([:])

    /// The cached value for `key`, made by `make` (while the lock is held) the first time.
    func get(_ key: Key, _ make: () -> Value) -> Value {
        entries.withLock { entries in
            if let value = entries[key] { return value }
            let value = make()
            entries[key] = value
            return value
        }
    }

    func remove(_ key: Key) -> Value? {
        entries.withLock { $0.removeValue(forKey: key) }
    }
}
