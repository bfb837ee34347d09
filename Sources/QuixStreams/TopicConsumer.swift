import Logging
import QuixKafka
import QuixProtocol
import Synchronization

/// Where a consumer starts when its group has no committed offset (0.5's `AutoOffsetReset`).
public enum AutoOffsetReset: Sendable, Hashable {
    case earliest, latest
}

/// When a topic consumer commits the offsets of processed packages.
public struct CommitOptions: Sendable, Hashable {
    /// Commit once this many packages have been processed since the last commit.
    public var everyPackages: Int?
    /// Commit at least this often while packages are processed.
    public var interval: Duration?

    public init(everyPackages: Int? = 5_000, interval: Duration? = .seconds(5)) {
        self.everyPackages = everyPackages
        self.interval = interval
    }

    /// Only `TopicConsumer.commit()` commits.
    public static let manual = CommitOptions(everyPackages: nil, interval: nil)
}

/// Reads the streams of one topic. Set `onStreamReceived` (and, in it, the stream's handlers),
/// then `run()`. Packages are handled in order per partition, one at a time; a package counts as
/// processed once its handlers have returned, and only processed packages are committed.
public final class TopicConsumer: Sendable {
    public let topic: String
    private let consumer: KafkaConsumer
    private let group: String?
    private let clientSettings: KafkaClientSettings
    private let startFrom: AutoOffsetReset
    private let options: CommitOptions
    private let logger: Logger
    private let handlers = Mutex(Handlers())

    struct Handlers: Sendable {
        var streamReceived: (@Sendable (StreamConsumer) -> Void)?
        var error: (@Sendable (any Error, String) -> Void)?
    }

    public init(
        client: KafkaStreamingClient, topic: String, group: String?, startFrom: AutoOffsetReset = .latest,
        commit: CommitOptions = CommitOptions()
    ) throws {
        guard !topic.isEmpty else { throw StreamError(.invalidStreamID, "the topic name is empty") }
        self.topic = topic
        self.group = group
        self.startFrom = startFrom
        clientSettings = client.settings
        options = group == nil ? .manual : commit
        logger = client.logger
        var settings = ConsumerSettings(client: client.settings, group: group)
        settings.startFrom = startFrom == .earliest ? .earliest : .latest
        settings.autoCommit = false
        consumer = try KafkaConsumer(settings: settings, logger: client.logger)
    }

    /// Called once per new stream, before its first package is handled: attach its handlers here.
    public func onStreamReceived(_ handler: @escaping @Sendable (StreamConsumer) -> Void) {
        handlers.withLock { $0.streamReceived = handler }
    }

    /// Called when a handler throws or a package cannot be decoded; the consumer goes on.
    public func onError(_ handler: @escaping @Sendable (any Error, String) -> Void) {
        handlers.withLock { $0.error = handler }
    }

    /// Reads until the task is cancelled or `close()` is called. Subscribes with the group, or
    /// reads every partition without one.
    public func run() async throws {
        if group == nil {
            let admin = try KafkaAdmin(settings: AdminSettings(client: clientSettings))
            guard let metadata = try await admin.metadata(topic: topic).first else {
                throw StreamError(.invalidStreamID, "topic \"\(topic)\" does not exist")
            }
            let start = startFrom == .earliest ? KafkaOffset.beginning : KafkaOffset.end
            try consumer.assign(metadata.partitions.map { TopicPartitionOffset(topic, $0.id, offset: start) })
        } else {
            try consumer.subscribe([topic])
        }
        var assembler = PackageAssembler()
        var streams: [String: StreamConsumer] = [:]
        var processed: [TopicPartition: Int64] = [:]  // next offset to commit, per partition
        var uncommitted = 0
        var lastCommit = ContinuousClock.now
        for await event in consumer.events {
            switch event {
            case .messages(let batch):
                for message in batch {
                    let ready = assembler.add(
                        partition: message.partition, key: message.key.map(Array.init), offset: message.offset,
                        timestampMilliseconds: message.timestampMilliseconds, value: message.value ?? [])
                    for error in assembler.takeDropped() { report(error, "topic \(topic)[\(message.partition)]") }
                    for package in ready {
                        await handle(package, streams: &streams)
                        processed[TopicPartition(topic, package.partition)] = package.lastOffset + 1
                        uncommitted += 1
                    }
                }
                let due = options.everyPackages.map { uncommitted >= $0 } == true
                    || options.interval.map { ContinuousClock.now - lastCommit >= $0 } == true
                if due && uncommitted > 0 {
                    try await commit(Self.committable(processed, streams))
                    uncommitted = 0
                    lastCommit = .now
                }
            case .revoked(let partitions), .lost(let partitions):
                // The partitions' streams end here: their buffers release what they hold, then
                // what is processed is committed before the partitions move.
                for (id, stream) in streams where partitions.contains(TopicPartition(topic, stream.partition)) {
                    await stream.deliverClosed(.terminated, onError: report)
                    streams[id] = nil
                }
                if case .revoked = event, !processed.isEmpty { try? await commit(Self.committable(processed, streams)) }
                for partition in partitions {
                    processed[partition] = nil
                    assembler.forget(partition: partition.partition)
                }
            case .error(let error):
                logger.warning("topic consumer", metadata: ["error": "\(error)", "topic": "\(topic)"])
            case .assigned, .partitionEnd:
                break
            }
        }
        if options != .manual && !processed.isEmpty { try? await commit(Self.committable(processed, streams)) }
    }

    /// Per partition, the next offset to commit: past every processed package, but not past the
    /// oldest package whose rows a stream's buffer still holds (a crash must redeliver them).
    static func committable(_ processed: [TopicPartition: Int64], _ streams: [String: StreamConsumer]) -> [TopicPartition: Int64] {
        var result = processed
        for stream in streams.values {
            guard let held = stream.oldestHeldOffset else { continue }
            let partition = result.keys.first { $0.partition == stream.partition }
            if let partition, held < result[partition]! { result[partition] = held }
        }
        return result
    }

    /// Commits every processed package now.
    public func commit() async throws {
        try await consumer.commit()
    }

    /// Stops `run()` and leaves the group.
    public func close() async {
        await consumer.close()
    }

    private func commit(_ processed: [TopicPartition: Int64]) async throws {
        try consumer.storeOffsets(processed.map { TopicPartitionOffset($0.key, offset: $0.value) })
        try await consumer.commit()
    }

    private func handle(_ package: PackageAssembler.Assembled, streams: inout [String: StreamConsumer]) async {
        let id = QuixCodec.streamID(fromKey: package.key?[...])
        guard id != QuixCodec.keepAliveKey else { return }
        let message: DecodedMessage
        do {
            message = try QuixCodec.decode(package.value[...])
        } catch {
            report(error, "stream \(id), partition \(package.partition), offset \(package.offset)")
            return
        }
        let stream: StreamConsumer
        if let known = streams[id] {
            stream = known
        } else {
            stream = StreamConsumer(id: id, partition: package.partition)
            streams[id] = stream
            handlers.withLock { $0.streamReceived }?(stream)
        }
        if await stream.deliver(message, offset: package.offset, timestampMilliseconds: package.timestampMilliseconds, onError: report) {
            streams[id] = nil  // ended: a later package with this id starts a new stream
        }
    }

    private func report(_ error: any Error, _ context: String) {
        logger.error("package not handled", metadata: ["error": "\(error)", "where": "\(context)"])
        handlers.withLock { $0.error }?(error, context)
    }
}
