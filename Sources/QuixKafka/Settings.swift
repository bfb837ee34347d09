import CRdKafka

/// Connection settings every Kafka client shares: where the brokers are and how to reach them.
public struct KafkaClientSettings: Sendable, Hashable {
    /// `host:port` of one or more bootstrap brokers.
    public var bootstrapServers: [String]
    public var clientID = "quixd"
    public var security = Security()
    /// Any librdkafka property (see librdkafka's CONFIGURATION.md), applied last so it wins.
    public var librdkafka: [String: String] = [:]

    public init(bootstrapServers: [String]) {
        self.bootstrapServers = bootstrapServers
    }

    /// How the client authenticates and encrypts; passed to librdkafka unchanged.
    public struct Security: Sendable, Hashable {
        public enum SecurityProtocol: String, Sendable, Hashable {
            case plaintext, ssl
            case saslPlaintext = "sasl_plaintext"
            case saslSSL = "sasl_ssl"
        }

        public var `protocol` = SecurityProtocol.plaintext
        /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, ...
        public var saslMechanism: String?
        public var saslUsername: String?
        public var saslPassword: String?
        /// PEM file of the certificate authorities that signed the brokers' certificates.
        public var caLocation: String?
        public var certificateLocation: String?
        public var keyLocation: String?
        public var keyPassword: String?

        public init() {}

        func properties() -> [String: String] {
            var properties = ["security.protocol": `protocol`.rawValue]
            properties["sasl.mechanism"] = saslMechanism
            properties["sasl.username"] = saslUsername
            properties["sasl.password"] = saslPassword
            properties["ssl.ca.location"] = caLocation
            properties["ssl.certificate.location"] = certificateLocation
            properties["ssl.key.location"] = keyLocation
            properties["ssl.key.password"] = keyPassword
            return properties
        }
    }

    func validate() throws(KafkaError) {
        let servers = bootstrapServers.filter { !$0.isEmpty }
        guard !servers.isEmpty else {
            throw KafkaError(code: .invalidSetting, detail: "bootstrapServers: expected at least one host:port")
        }
    }

    func properties() -> [String: String] {
        var properties = security.properties()
        properties["bootstrap.servers"] = bootstrapServers.joined(separator: ",")
        properties["client.id"] = clientID
        return properties
    }
}

/// Settings of a `KafkaProducer`. The defaults favour safety: idempotence on, acks from all
/// in-sync replicas, and librdkafka's `consistent_random` partitioner (CRC-32 of the key, as the
/// Quix Streams 0.5 producers use, so a stream keeps its partition whoever writes it).
public struct ProducerSettings: Sendable, Hashable {
    public var client: KafkaClientSettings
    /// Exactly-once per partition for retries (`enable.idempotence`).
    public var idempotence = true
    /// How long librdkafka waits to fill a batch (`linger.ms`).
    public var linger: Duration = .milliseconds(5)
    /// Upper bound on messages waiting in the local queue; `send` waits when it is reached.
    public var queueMaxMessages = 100_000
    /// Upper bound on bytes waiting in the local queue, in KiB.
    public var queueMaxKilobytes = 1_048_576
    /// A message not delivered in this time fails with `_MSG_TIMED_OUT`.
    public var messageTimeout: Duration = .seconds(300)
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    public var compression = "none"
    /// Set to use transactions (`initTransactions` and the rest).
    public var transactionalID: String?
    /// A transaction not committed in this time is aborted by the broker. With transactions,
    /// `messageTimeout` is capped at this value, as librdkafka requires.
    public var transactionTimeout: Duration = .seconds(60)
    /// Largest message the producer accepts (`message.max.bytes`).
    public var maxMessageBytes = 1_000_000

    public init(client: KafkaClientSettings) {
        self.client = client
    }

    public init(bootstrapServers: [String]) {
        self.init(client: KafkaClientSettings(bootstrapServers: bootstrapServers))
    }

    func properties() -> [String: String] {
        var properties = client.properties()
        properties["enable.idempotence"] = String(idempotence)
        properties["acks"] = "all"
        properties["partitioner"] = "consistent_random"
        properties["linger.ms"] = String(linger.milliseconds)
        properties["queue.buffering.max.messages"] = String(queueMaxMessages)
        properties["queue.buffering.max.kbytes"] = String(queueMaxKilobytes)
        properties["message.timeout.ms"] = String(
            transactionalID == nil ? messageTimeout.milliseconds : min(messageTimeout, transactionTimeout).milliseconds)
        properties["compression.codec"] = compression
        properties["message.max.bytes"] = String(maxMessageBytes)
        if let transactionalID {
            properties["transactional.id"] = transactionalID
            properties["transaction.timeout.ms"] = String(transactionTimeout.milliseconds)
        }
        properties.merge(client.librdkafka) { _, override in override }
        return properties
    }
}

/// Settings of a `KafkaConsumer`.
public struct ConsumerSettings: Sendable, Hashable {
    public enum StartFrom: String, Sendable, Hashable {
        case earliest, latest
    }

    /// What the consumer's thread does while the application is `maxBufferedMessages` behind.
    public enum Backpressure: String, Sendable, Hashable {
        /// Pause the assigned partitions and keep polling, as a group member must (rebalances,
        /// `max.poll.interval.ms`). A pause drops what librdkafka had prefetched for them, which
        /// is fetched again after the resume.
        case pause
        /// Take nothing from librdkafka until the application has caught up; librdkafka stops
        /// fetching by itself once its prefetch (`prefetchKilobytes`) is full. Nothing fetched is
        /// dropped and fetched again, so a reader that reads partitions to their end (a state
        /// restore) goes at the speed of the slower of fetching and applying. Callbacks wait
        /// meanwhile, so only for consumers that `assign` (`subscribe` refuses it). It also keeps
        /// clear of librdkafka before 2.1.0, whose batch consume could skip offsets around a
        /// pause or resume (librdkafka #4208).
        case stopPolling
    }

    public var client: KafkaClientSettings
    /// The consumer group. Required for `subscribe` and commits; `assign` works without one.
    public var group: String?
    /// Where to start when the group has no committed offset (`auto.offset.reset`).
    public var startFrom = StartFrom.earliest
    /// Static membership (`group.instance.id`): a restarted member with the same id gets its
    /// partitions back without a rebalance, if it returns within the session timeout.
    public var groupInstanceID: String?
    public var sessionTimeout: Duration = .seconds(45)
    public var maxPollInterval: Duration = .seconds(300)
    /// `cooperative-sticky` by default: a rebalance moves only the partitions that must move.
    public var assignmentStrategy = "cooperative-sticky"
    /// Commit stored offsets in the background. Offsets are never stored automatically:
    /// the application stores an offset once the message's effects are durable.
    public var autoCommit = true
    public var autoCommitInterval: Duration = .seconds(5)
    /// Messages taken from librdkafka per poll.
    public var maxBatch = 1_000
    /// Messages the consumer keeps ready for the application; beyond this `backpressure` holds
    /// fetching back until the application has taken half of them.
    public var maxBufferedMessages = 20_000
    /// How the consumer holds back while the application is `maxBufferedMessages` behind.
    public var backpressure = Backpressure.pause
    /// With `.pause`, how long the consumer's thread first only waits (takes nothing, so
    /// librdkafka keeps what it prefetched) for the application to take half of what it holds,
    /// before it pauses the partitions. An application that is busy, not stuck, catches up
    /// within it, and nothing is fetched twice; callbacks (a rebalance) wait at most this long.
    /// Zero pauses at once. Less than `maxPollInterval`.
    public var holdBeforePausing: Duration = .zero
    /// How long librdkafka postpones a partition's next fetch once its prefetch queue is full
    /// (`fetch.queue.backoff.ms`, default 1 s): set it for a reader that must keep the queue
    /// full, such as a state restore or a consumer with a backlog. librdkafka before 2.2 has no
    /// such setting and would wait up to a second; when this is set, the consumer wakes its
    /// fetchers instead once it has taken half of a queue it let fill (`FetchWaker`).
    public var fetchQueueBackoff: Duration?
    /// librdkafka's prefetch budget per consumer in KiB (`queued.max.messages.kbytes`).
    public var prefetchKilobytes = 16_384
    /// Report `.partitionEnd` when the consumer reaches the end of a partition.
    public var reportPartitionEnd = false
    /// Copy each message's headers into `KafkaMessage.headers`. A reader that never looks at
    /// them turns this off: librdkafka parses a message's headers into a list of its own (an
    /// allocation per message) only when asked for them.
    public var readsHeaders = true
    /// How long a revocation waits for the application to move past the `.revoked` event
    /// (its chance to finish in-flight work and commit) before partitions are handed over.
    public var revocationTimeout: Duration = .seconds(30)
    /// When set, `events` yields `.idle` after this long without an event, so the application
    /// can act on time (timeouts, interval commits) while no message arrives. The poll thread
    /// checks it at least every 100 ms.
    public var idleInterval: Duration?

    public init(client: KafkaClientSettings, group: String?) {
        self.client = client
        self.group = group
    }

    public init(bootstrapServers: [String], group: String?) {
        self.init(client: KafkaClientSettings(bootstrapServers: bootstrapServers), group: group)
    }

    func validate() throws(KafkaError) {
        try client.validate()
        guard (1...1_000_000).contains(maxBatch) else {
            throw KafkaError(code: .invalidSetting, detail: "maxBatch: expected 1...1000000, found \(maxBatch)")
        }
        guard holdBeforePausing >= .zero, holdBeforePausing < maxPollInterval else {
            throw KafkaError(
                code: .invalidSetting, detail: "holdBeforePausing: expected 0 up to maxPollInterval (\(maxPollInterval)), found \(holdBeforePausing)")
        }
        guard maxBufferedMessages >= maxBatch else {
            throw KafkaError(
                code: .invalidSetting,
                detail: "maxBufferedMessages: expected at least maxBatch (\(maxBatch)), found \(maxBufferedMessages)")
        }
        if let group, group.isEmpty {
            throw KafkaError(code: .invalidSetting, detail: "group: expected a non-empty name or none")
        }
        if let idleInterval, idleInterval <= .zero {
            throw KafkaError(code: .invalidSetting, detail: "idleInterval: expected a positive duration, found \(idleInterval)")
        }
    }

    func properties() -> [String: String] {
        var properties = client.properties()
        // librdkafka needs a group.id for a high-level consumer even when it only assigns.
        properties["group.id"] = group ?? "quixd-assign-only"
        properties["group.instance.id"] = groupInstanceID
        properties["auto.offset.reset"] = startFrom.rawValue
        properties["session.timeout.ms"] = String(sessionTimeout.milliseconds)
        properties["max.poll.interval.ms"] = String(maxPollInterval.milliseconds)
        properties["partition.assignment.strategy"] = assignmentStrategy
        properties["enable.auto.commit"] = String(autoCommit && group != nil)
        properties["auto.commit.interval.ms"] = String(autoCommitInterval.milliseconds)
        properties["enable.auto.offset.store"] = "false"
        properties["queued.max.messages.kbytes"] = String(prefetchKilobytes)
        properties["enable.partition.eof"] = String(reportPartitionEnd)
        if let fetchQueueBackoff, !FetchWaker.neededByLibrdkafka {
            properties["fetch.queue.backoff.ms"] = String(fetchQueueBackoff.milliseconds)
        }
        properties.merge(client.librdkafka) { _, override in override }
        return properties
    }
}

/// Settings of a `KafkaAdmin` client.
public struct AdminSettings: Sendable, Hashable {
    public var client: KafkaClientSettings
    /// How long an admin request may take.
    public var requestTimeout: Duration = .seconds(30)

    public init(client: KafkaClientSettings) { self.client = client }
    public init(bootstrapServers: [String]) { self.init(client: KafkaClientSettings(bootstrapServers: bootstrapServers)) }

    func properties() -> [String: String] {
        client.properties().merging(client.librdkafka) { _, override in override }
    }
}

extension Duration {
    /// Whole milliseconds, as librdkafka's `*.ms` properties take them.
    var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    var timeoutMilliseconds: Int32 { Int32(clamping: milliseconds) }
}
