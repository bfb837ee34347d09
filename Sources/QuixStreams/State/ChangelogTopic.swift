import Logging
import QuixKafka

/// The changelog topic of a consumer's state cannot serve it: it has too few partitions, or it
/// is missing and could not be created. The detail says what to do.
public struct ChangelogTopicError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }
        /// The changelog topic has fewer partitions than the input topic.
        public static let tooFewPartitions = Code(name: "tooFewPartitions")
        /// The changelog topic does not exist and could not be created.
        public static let notCreated = Code(name: "notCreated")
        /// An assigned changelog partition does not exist (found while restoring).
        public static let missingPartition = Code(name: "missingPartition")
    }

    public var code: Code
    /// The changelog topic.
    public var topic: String
    /// What was found and what to do.
    public var detail: String

    public var description: String { "\(code): \(detail)" }
}

/// Checks a state's changelog topic when a consumer starts, before it subscribes (so before
/// any partition is assigned and restored from it): each input partition needs the changelog
/// partition of the same number. A changelog with fewer partitions than the input stops the
/// consumer at once; a missing one is created, compacted, with one partition per input
/// partition: with CreateTopics on a cluster that has a controller, or by asking a development
/// broker (`MockCluster.topicRequestsTopic`), whose mock cluster has none. Where it cannot be
/// created, the consumer stops at once with what to create.
enum ChangelogTopic {
    /// How long a created topic may take to appear in the metadata.
    static let creationDeadline: Duration = .seconds(5)
    private static let pollInterval: Duration = .milliseconds(50)

    /// Makes sure `changelog` exists with at least as many partitions as `input`, creating it
    /// when it is missing; throws `ChangelogTopicError` when it cannot serve.
    static func ensure(_ changelog: String, input: String, settings: KafkaClientSettings, logger: Logger) async throws {
        var adminSettings = AdminSettings(client: settings)
        adminSettings.requestTimeout = .seconds(10)
        let admin = try KafkaAdmin(settings: adminSettings, logger: logger)
        let topics = try await admin.metadata()  // every topic: a request for all topics never auto-creates one
        guard let inputTopic = topics.first(where: { $0.name == input }) else {
            throw StreamError(.invalidStreamID, "topic \"\(input)\" does not exist")
        }
        let wanted = Wanted(topic: changelog, input: input, partitions: inputTopic.partitions.count, brokers: settings.bootstrapServers)
        if let existing = topics.first(where: { $0.name == changelog }) {
            try wanted.check(existing.partitions.count)
            return
        }
        let how: String
        if topics.contains(where: { $0.name == MockCluster.topicRequestsTopic }) {
            try await request(wanted, admin: admin, settings: settings, logger: logger)
            how = "asked the development broker"
        } else {
            try await create(wanted, admin: admin)
            how = "CreateTopics"
        }
        logger.info("changelog topic created", metadata: ["topic": "\(changelog)", "partitions": "\(wanted.partitions)", "how": "\(how)"])
    }

    /// The error to stop a restore with when `error` says an assigned changelog partition (or
    /// the topic) does not exist: waiting for its records would wait for what cannot arrive.
    static func missingPartition(_ error: KafkaError, topic: String) -> ChangelogTopicError? {
        let missing = [KafkaErrorCode.unknownPartition, .unknownTopic].map(\.rawValue)
        guard let code = error.librdkafkaCode, missing.contains(code) else { return nil }
        return ChangelogTopicError(
            code: .missingPartition, topic: topic,
            detail: "restoring from \(topic): \(error.detail); the changelog topic needs a partition for each partition of the input topic")
    }

    // MARK: Creating

    /// CreateTopics, where the cluster has a controller to take it.
    private static func create(_ wanted: Wanted, admin: KafkaAdmin) async throws {
        guard try await admin.controller() != nil else {
            throw wanted.notCreated(
                "the cluster names no controller, so it cannot create topics (librdkafka's mock cluster without a quixd "
                    + "development broker serving it?)")
        }
        do {
            // An existing topic is no error: another replica may have created it a moment ago.
            try await admin.createTopics([
                NewTopic(name: wanted.topic, partitions: Int32(wanted.partitions), configs: ["cleanup.policy": "compact"])
            ])
        } catch {
            throw wanted.notCreated("CreateTopics failed: \(error)")
        }
        guard try await appeared(wanted, admin: admin) else {
            throw wanted.notCreated("CreateTopics succeeded, but the topic was not in the metadata after \(creationDeadline)")
        }
    }

    /// A topic request to the development broker, which serves `MockCluster.topicRequestsTopic`.
    private static func request(_ wanted: Wanted, admin: KafkaAdmin, settings: KafkaClientSettings, logger: Logger) async throws {
        let producer = try KafkaProducer(settings: ProducerSettings(client: settings), logger: logger)
        do {
            try await producer.deliver(MockCluster.TopicRequest(topic: wanted.topic, partitions: wanted.partitions).message)
        } catch {
            await producer.close()
            throw wanted.notCreated("the development broker did not take the request: \(error)")
        }
        await producer.close()
        guard try await appeared(wanted, admin: admin) else {
            throw wanted.notCreated(
                "the development broker did not create it within \(creationDeadline) (is it a quixd broker that serves "
                    + "\(MockCluster.topicRequestsTopic)?)")
        }
    }

    /// Waits (up to `creationDeadline`) for the topic to be in the metadata; checks its partitions.
    private static func appeared(_ wanted: Wanted, admin: KafkaAdmin) async throws -> Bool {
        let deadline = ContinuousClock.now + creationDeadline
        while true {
            if let found = try await admin.metadata(topic: wanted.topic).first, !found.partitions.isEmpty {
                try wanted.check(found.partitions.count)
                return true
            }
            guard ContinuousClock.now < deadline else { return false }
            try await Task.sleep(for: pollInterval)
        }
    }

    /// The changelog topic an input topic needs, and the errors that say what to do about it.
    private struct Wanted {
        let topic: String
        let input: String
        let partitions: Int
        let brokers: [String]

        private var bootstrap: String { brokers.isEmpty ? "BROKER:9092" : brokers.joined(separator: ",") }

        func check(_ found: Int) throws(ChangelogTopicError) {
            guard found < partitions else { return }
            let uncovered = found + 1 == partitions ? "\(found)" : "\(found)–\(partitions - 1)"
            throw ChangelogTopicError(
                code: .tooFewPartitions, topic: topic,
                detail: "changelog topic \"\(topic)\" has \(found) partitions, fewer than the \(partitions) of input topic \"\(input)\": "
                    + "the state of input partitions \(uncovered) would have no changelog partition. Add partitions (records "
                    + "already there keep theirs), e.g. kafka-topics.sh --bootstrap-server \(bootstrap) --alter --topic \(topic) "
                    + "--partitions \(partitions)")
        }

        func notCreated(_ reason: String) -> ChangelogTopicError {
            ChangelogTopicError(
                code: .notCreated, topic: topic,
                detail: "changelog topic \"\(topic)\" does not exist and could not be created: \(reason). Create it, compacted, "
                    + "with \(partitions) partitions (one per partition of input topic \"\(input)\"), e.g. kafka-topics.sh "
                    + "--bootstrap-server \(bootstrap) --create --topic \(topic) --partitions \(partitions) --config cleanup.policy=compact")
        }
    }
}
