import Foundation
import Glibc
import Logging
import Prometheus
import QuixStreams
import Synchronization

/// One pipeline bound to Kafka: its consumer group reads the input, each stream's messages go
/// through the stages in order, and what they pass on is written to the output. Offsets, state
/// and output are checkpointed together (see `TopicConsumer`); failed messages follow the
/// pipeline's `onError` policy.
public final class PipelineRunner: Sendable {
    public let pipeline: Pipeline
    /// The file the pipeline came from.
    public let file: String
    private let chain: StageChain
    /// Removes state that `spec.state.idle` and the stages' `ttl` no longer keep; nil when none.
    private let expiry: StreamStateExpiry?
    /// The pipeline's tables (`spec.tables`), each with the reader that keeps it up to date.
    private let tables: [String: LookupTable]
    private let tableReaders: [TableReader]
    /// The readers of the join stages' topics, by stage id.
    private let joins: [String: JoinSource]
    /// The shapes of the stateful stages' state, recorded in and checked against each partition.
    private let shapes: [String: StateShape]
    /// Stages whose state of another shape is dropped instead of refused (`--reset-state`).
    private let resetState: Set<String>
    /// Rates, checkpoints, rebalances and failures, for `statusReport`.
    private let activity = PipelineActivity()
    private let consumer: TopicConsumer
    private let output: any PipelineOutput
    private let failures: FailurePolicy
    private let metrics: PipelineMetrics?
    /// `<state dir>/<pipeline>`, where each input partition has its LMDB environment.
    private let stateRoot: String?
    private let logger: Logger
    private let status = Mutex(Status())
    /// The transaction counts already added to the metrics.
    private let countedTransactions = Mutex(TransactionCounts())

    /// Where a running pipeline is, for `/readyz` and the logs.
    public struct Status: Sendable {
        public enum Phase: Sendable, Equatable {
            case starting, running, stopped
            case failed(String)
        }

        public var phase = Phase.starting
        /// The input partitions this replica has.
        public var assigned: Set<TopicPartition> = []
        /// Whether the consumer has joined its group (it got an assignment, possibly empty).
        public var joined = false
        public var lastProgress = ContinuousClock.now
    }

    /// - Parameters:
    ///   - stateDirectory: where stateful stages keep their state; required when one does.
    ///   - groupInstanceID: static group membership (a pod name), so a restarted replica gets its
    ///     partitions back without a rebalance.
    public init(
        pipeline: Pipeline, file: String, registry: StageRegistry, client: KafkaStreamingClient, stateDirectory: String?,
        groupInstanceID: String? = nil, metrics: PipelineMetrics? = nil, resetState: Set<String> = [], logger: Logger
    ) throws {
        self.pipeline = pipeline
        self.file = file
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "pipeline"] = "\(pipeline.name)"
        self.logger = logger
        // Kafka and state log lines carry the pipeline's name too.
        var client = client.logging(to: logger)
        chain = try StageChain(pipeline, file: file, registry: registry)
        expiry = StreamStateExpiry(pipeline: pipeline, chain: chain, metrics: metrics)
        if pipeline.delivery == .exactlyOnce {
            // One transactional producer for the output, the dead letters and the changelog,
            // with an id that stays the same when this member restarts (it fences the instance
            // before it and aborts what that left open).
            client = try client.transactional(id: Self.transactionalID(pipeline: pipeline.name, member: groupInstanceID))
        }
        var state: StateOptions?
        if chain.isStateful {
            guard let stateDirectory else {
                throw PipelineError(.configuration, "pipeline \(pipeline.name) has stateful stages and needs a state directory (--state-dir)")
            }
            state = StateOptions(
                directory: stateDirectory, name: pipeline.name, clearOnStreamEnd: pipeline.expiry.onStreamEnd == .drop,
                changelog: pipeline.changelog)
        }
        stateRoot = state.map { "\($0.directory)/\(pipeline.name)" }
        // With a state directory a table is kept in LMDB and a restart reads only what is new.
        var tables: [String: LookupTable] = [:]
        var readers: [TableReader] = []
        for table in pipeline.tables {
            let store = try LookupTable(name: table.name, directory: stateDirectory.map { "\($0)/\(pipeline.name)/tables/\(table.name)" })
            tables[table.name] = store
            readers.append(TableReader(table: table, store: store, client: client.settings, logger: logger))
        }
        self.tables = tables
        tableReaders = readers
        var joins: [String: JoinSource] = [:]
        for step in chain.steps {
            guard let join = step.stage as? JoinStage else { continue }
            joins[step.id] = JoinSource(
                stage: step.id, topic: join.topic, format: join.format, tolerance: join.tolerance, wait: join.wait, client: client.settings, logger: logger)
        }
        self.joins = joins
        shapes = StateShape.shapes(of: pipeline, registry: registry)
        self.resetState = resetState
        consumer = try TopicConsumer(
            client: client, topic: pipeline.input.topic, group: pipeline.input.consumerGroup,
            startFrom: pipeline.input.startFrom == .earliest ? .earliest : .latest,
            commit: CommitOptions(everyPackages: 10_000, interval: pipeline.checkpointInterval), state: state,
            decoder: MessageFormats.decoder(for: pipeline.input.format), groupInstanceID: groupInstanceID)
        var sinks: [any PipelineOutput] = []
        for declared in pipeline.outputs {
            let sink: any PipelineOutput =
                declared.format == .quix ? try QuixOutput(client: client, output: declared) : try RecordOutput(client: client, output: declared)
            // Every Kafka message of the output, whatever its format (a split package's parts each).
            let record = metrics?.producedRecorder(pipeline: pipeline.name, topic: declared.topic)
            sink.onSent { [activity] bytes in
                record?(1, bytes)
                activity.produced(1)
            }
            sinks.append(sink)
        }
        let routes = OutputRoutes(pipeline.outputs)
        output = sinks.count == 1 && !routes.outputs[0].isSelective ? sinks[0] : RoutedOutput(routes: routes, sinks: sinks)
        failures = try FailurePolicy(pipeline: pipeline, client: client, metrics: metrics, activity: activity, logger: logger)
        metrics?.register(pipeline: pipeline.name)
        attachHandlers()
    }

    /// `quixd-<pipeline>-<member>`: the member is the static group instance id (the pod name),
    /// or the host name.
    static func transactionalID(pipeline: String, member: String?) -> String {
        "quixd-\(pipeline)-\(member ?? ProcessInfo.processInfo.hostName)"
    }

    public var currentStatus: Status { status.withLock { $0 } }

    /// Whether the pipeline has joined its group, runs, and can reach the brokers.
    public var readiness: (ready: Bool, reason: String) {
        let status = currentStatus
        switch status.phase {
        case .starting: return (false, "starting")
        case .stopped: return (false, "stopped")
        case .failed(let reason): return (false, "failed: \(reason)")
        case .running:
            if let loading = tableReaders.first(where: { !$0.isLoaded }) {
                return (false, "loading table \(loading.table.name) from \(loading.table.topic)")
            }
            if !status.joined { return (false, "joining consumer group \(pipeline.input.consumerGroup)") }
            let stalledAfter = max(Duration.seconds(60), pipeline.checkpointInterval * 10)
            let behind = consumer.lag().values.reduce(0, +)
            if behind > 0, ContinuousClock.now - status.lastProgress > stalledAfter {
                return (false, "stalled: \(behind) messages behind and no checkpoint for \(stalledAfter)")
            }
            let failing = consumer.checkpointProblems()
            if let oldest = failing.values.min(by: { $0.since < $1.since }) {
                let partitions = failing.keys.map(\.partition).sorted().map(String.init).joined(separator: ",")
                let seconds = (ContinuousClock.now - oldest.since).components.seconds
                return (false, "checkpoints failing for partitions [\(partitions)] for \(seconds) s (input paused, retried): \(oldest.error)")
            }
            let partitions = status.assigned.map(\.partition).sorted().map(String.init).joined(separator: ",")
            return (true, "running, partitions [\(partitions)], \(behind) messages behind")
        }
    }

    /// The pipeline at a glance (the status page).
    public var statusReport: PipelineStatusReport {
        let status = currentStatus
        let phase =
            switch status.phase {
            case .starting: "starting"
            case .running: "running"
            case .stopped: "stopped"
            case .failed: "failed"
            }
        let (ready, reason) = readiness
        var report = PipelineStatusReport(
            name: pipeline.name, phase: phase, ready: ready, reason: reason, input: pipeline.input.topic, outputs: pipeline.outputs.map(\.topic))
        let lags = consumer.lag()
        let timeLags = consumer.timeLag()
        report.partitions = status.assigned.sorted { $0.partition < $1.partition }.map { partition in
            PipelineStatusReport.Partition(
                topic: partition.topic, partition: partition.partition, lag: lags[partition], timeLagMilliseconds: timeLags[partition],
                stateBytes: stateBytes(partition))
        }
        activity.fill(&report)
        return report
    }

    /// Reads until `stop()`; throws when the pipeline stops on an error (policy `stop`, state
    /// that cannot be opened, a missing input topic). `started` is called once the pipeline has
    /// started, before it loads its tables and reads (quixd tells systemd it is ready then).
    public func run(started: @escaping @Sendable () -> Void = {}) async throws {
        status.withLock { $0.phase = .running }
        logger.info(
            "pipeline started",
            metadata: [
                "input": "\(pipeline.input.topic)", "group": "\(pipeline.input.consumerGroup)", "outputs": "\(pipeline.outputs.map(\.topic).joined(separator: ","))",
                "stages": "\(pipeline.stages.map(\.id).joined(separator: ","))",
            ])
        started()
        do {
            // No row is processed before the tables are loaded.
            for reader in tableReaders { try await reader.start() }
            for join in joins.values { try await join.open(input: pipeline.input.topic) }
            try await consumer.run()
        } catch {
            countTransactions()
            status.withLock { $0.phase = .failed("\(error)") }
            metrics?.setReady(pipeline: pipeline.name, false)
            await closeOutputs()
            logger.error("pipeline stopped on an error", metadata: ["error": "\(error)"])
            throw error
        }
        await closeOutputs()
        countTransactions()
        status.withLock { $0.phase = .stopped }
        metrics?.setReady(pipeline: pipeline.name, false)
        logger.info("pipeline stopped")
    }

    /// Stops after the message in hand: checkpoints what is processed, leaves the group.
    public func stop() async {
        for reader in tableReaders { reader.stop() }
        await consumer.close()
    }

    private func closeOutputs() async {
        for reader in tableReaders { reader.stop() }
        for join in joins.values { join.stop() }
        await output.close()
        await failures.close()
    }

    // MARK: Wiring

    private func attachHandlers() {
        // Weak: the consumer's handlers must not keep a stopped runner alive.
        consumer.onStreamReceived { [weak self] stream in self?.attach(stream) }
        consumer.onPackageFailed { [failures] failure in await failures.handle(failure) }
        if !shapes.isEmpty {
            consumer.onPartitionStarting { [shapes, resetState, name = pipeline.name] partition in
                try StateCompatibility.apply(shapes, reset: resetState, pipeline: name, to: partition)
            }
        }
        if expiry != nil || !joins.isEmpty {
            consumer.onCheckpointing { [expiry, joins] partition in
                try expiry?.sweep(partition)
                // Where each join's topic is read again from after a restart, with this checkpoint.
                for (stage, join) in joins {
                    guard let offset = join.watermark(partition.partition.partition) else { continue }
                    // Only a moved position is written (each write is a changelog record).
                    let entry = partition.state(stream: JoinStage.partitionEntry, store: stage)
                    if try entry.get(JoinStage.watermarkKey, as: Int.self) != Int(offset) { entry.set(JoinStage.watermarkKey, Int(offset)) }
                }
            }
        }
        consumer.onConsumed { [metrics, activity, name = pipeline.name] counts in
            activity.consumed(counts.values.reduce(0) { $0 + $1.messages })
            for (partition, count) in counts {
                metrics?.recordConsumed(pipeline: name, topic: partition.topic, partition: partition.partition, messages: count.messages, bytes: count.bytes)
            }
        }
        // Outputs are not flushed for a checkpoint: it waits only for the deliveries it needs.
        let checkpointStart = Mutex(ContinuousClock.now)
        consumer.onCommitting { _, _ in checkpointStart.withLock { $0 = .now } }
        consumer.onCommitted { [weak self] consumer, _ in
            guard let self else { return }
            status.withLock { $0.lastProgress = .now }
            let duration = ContinuousClock.now - checkpointStart.withLock { $0 }
            metrics?.recordCheckpoint(pipeline: pipeline.name, duration: duration)
            activity.checkpointed(seconds: duration / .seconds(1))
            for (partition, lag) in consumer.lag() {
                metrics?.setConsumerLag(pipeline: pipeline.name, topic: partition.topic, partition: partition.partition, lag: lag)
            }
            for (partition, lag) in consumer.timeLag() {
                metrics?.setConsumerTimeLag(pipeline: pipeline.name, topic: partition.topic, partition: partition.partition, milliseconds: lag)
            }
            recordStateSizes()
            countTransactions()
        }
        consumer.onAssigned { [weak self] _, partitions in self?.assigned(partitions) }
        consumer.onRevoking { [weak self] _, partitions in self?.revoking(partitions) }
        // Stopping: held output rows go out now, so the final checkpoint commits everything read.
        consumer.onStopping { [output] _, streams in
            for stream in streams { try await output.release(stream.streamID) }
        }
    }

    /// Adds the transactions committed and aborted since the last call to the metrics.
    private func countTransactions() {
        guard let metrics, let counts = consumer.transactionCounts else { return }
        let previous = countedTransactions.withLock { counted in
            defer { counted = counts }
            return counted
        }
        metrics.recordTransactions(pipeline: pipeline.name, outcome: "committed", count: counts.committed - previous.committed)
        metrics.recordTransactions(pipeline: pipeline.name, outcome: "aborted", count: counts.aborted - previous.aborted)
    }

    /// The disk space of each assigned partition's state (its LMDB data file's allocated blocks).
    private func recordStateSizes() {
        guard let stateRoot, let metrics else { return }
        for partition in status.withLock({ $0.assigned }) {
            guard let bytes = stateBytes(partition) else { continue }
            metrics.setStateBytes(pipeline: pipeline.name, topic: partition.topic, partition: partition.partition, bytes: bytes)
        }
    }

    /// The disk space of a partition's state: its LMDB data file's allocated blocks.
    private func stateBytes(_ partition: TopicPartition) -> Int64? {
        guard let stateRoot else { return nil }
        var info = stat()
        guard stat("\(stateRoot)/\(partition.topic)-\(partition.partition)/data.mdb", &info) == 0 else { return nil }
        return Int64(info.st_blocks) * 512
    }

    private func assigned(_ partitions: [TopicPartition]) {
        status.withLock { status in
            status.joined = true
            status.assigned.formUnion(partitions)
        }
        metrics?.recordRebalance(pipeline: pipeline.name)
        activity.rebalanced()
        metrics?.setReady(pipeline: pipeline.name, true)
        logger.info("partitions assigned", metadata: ["partitions": "\(partitions.map(\.partition).sorted())"])
    }

    private func revoking(_ partitions: [TopicPartition]) {
        status.withLock { $0.assigned.subtract(partitions) }
        for join in joins.values {
            do {
                try join.release(partitions.map(\.partition))
            } catch {
                logger.warning("join: could not let go of revoked partitions", metadata: ["stage": "\(join.stage)", "error": "\(error)"])
            }
        }
        for partition in partitions { metrics?.forgetPartition(pipeline: pipeline.name, topic: partition.topic, partition: partition.partition) }
        logger.info("partitions revoked", metadata: ["partitions": "\(partitions.map(\.partition).sorted())"])
    }

    /// Runs each message of `stream` through the stages and writes what they pass on.
    private func attach(_ stream: StreamConsumer) {
        let chain = chain
        let expiry = expiry
        let output = output
        let metrics = metrics
        let name = pipeline.name
        let dropsStateOnEnd = pipeline.expiry.onStreamEnd == .drop
        let id = stream.streamID
        var state: (@Sendable (String) throws -> StreamState)?
        if chain.isStateful {
            // Weak: the stream keeps its handlers, which keep these contexts; a strong capture
            // kept every stream, and its partition's LMDB environment, alive after its consumer
            // stopped (a restarted pipeline could not open its state again).
            state = { [weak stream] store in
                guard let stream else { throw PipelineError(.state, "stream \(id) has ended; its state is closed") }
                return try stream.state(store)
            }
        }
        var partition: (@Sendable () throws -> PartitionStateAccess)?
        if chain.isStateful {
            partition = { @Sendable [weak stream] in
                guard let stream else { throw PipelineError(.state, "stream \(id) has ended; its state is closed") }
                return try stream.partitionStateAccess()
            }
        }
        let contexts = chain.contexts(streamID: id, state: state, tables: tables, partition: partition, joins: joins)
        stream.onPropertiesChanged { _, properties in
            try await output.forward(properties, metadata: [], stream: id)
        }
        stream.onParameterDefinitionsChanged { _, definitions in
            try await output.forward(chain.definitions(definitions), stream: id)
        }
        stream.onEventDefinitionsChanged { _, definitions in
            try await output.forward(definitions, stream: id)
        }
        let processing = metrics?.processingHistogram(pipeline: name)
        stream.onFrameReceived { stream, frame in
            let start = ContinuousClock.now
            let result: TimeseriesFrame
            if let expiry {
                result = try expiry.process(frame, partition: stream.partition, state: { try stream.state($0) }) { try chain.process($0, contexts) }
            } else {
                result = try chain.process(consume frame, contexts)
            }
            let (events, metadata) = contexts.emitted.take()
            do {
                if result.rowCount > 0 { try await output.write(result, stream: id) }
                if !events.isEmpty { try await output.write(events, stream: id) }
                if !metadata.isEmpty { try await output.forward(stream.properties, metadata: metadata, stream: id) }
            } catch {
                throw PipelineError(.output, "\(error)", stage: "output")
            }
            processing?.record(.now - start)
        }
        stream.onEventReceived { _, event in
            let passed = try chain.process(event, contexts)
            let events = (passed.map { [$0] } ?? []) + contexts.emitted.take().events
            guard !events.isEmpty else { return }
            do {
                try await output.write(events, stream: id)
            } catch {
                throw PipelineError(.output, "\(error)", stage: "output")
            }
        }
        stream.onStreamClosed { stream, type in
            // Revoked or idle: the stream goes on elsewhere or later; its held rows go out now.
            guard stream.receivedStreamEnd else { return try await output.release(id) }
            if chain.isStateful, dropsStateOnEnd { metrics?.recordExpired(pipeline: name, reason: "end") }
            try await output.end(id, type)
        }
    }
}
