import Foundation
import OrderedCollections
import QuixKafka
import QuixProtocol
import QuixStreams
import QuixTestSupport
import Synchronization
import Testing

/// What the handlers saw, per stream, as short lines.
private final class Seen: Sendable {
    let lines = Mutex([String: [String]]())
    let errors = Mutex([String]())
    func add(_ stream: StreamConsumer, _ line: String) { lines.withLock { $0[stream.streamID, default: []].append(line) } }
}

/// Attaches handlers that record every callback of every stream.
private func record(_ consumer: TopicConsumer, into seen: Seen) {
    consumer.onStreamReceived { stream in
        stream.onPropertiesChanged { stream, properties in seen.add(stream, "properties \(properties.name ?? "-")") }
        stream.onParameterDefinitionsChanged { stream, definitions in
            seen.add(stream, "parameters \(definitions.parameters.map(\.id)) groups \(definitions.parameterGroups.map(\.name))")
        }
        stream.onEventDefinitionsChanged { stream, definitions in seen.add(stream, "events \(definitions.events.map(\.id))") }
        stream.onFrameReceived { stream, frame in
            seen.add(stream, "rows \(frame.rowCount) numeric \(frame.numeric.keys.sorted()) tags \(frame.tags.keys.sorted())")
        }
        stream.onEventReceived { stream, event in seen.add(stream, "event \(event.id)=\(event.value)") }
        stream.onStreamClosed { stream, type in seen.add(stream, "closed \(type.rawValue)") }
    }
    consumer.onError { error, context in seen.errors.withLock { $0.append("\(context): \(error)") } }
}

/// Runs `consumer` until `done` holds, then closes it.
private func consume(_ consumer: TopicConsumer, until done: @escaping @Sendable () -> Bool) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await consumer.run() }
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        while !done() && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
        await consumer.close()
        try await group.waitForAll()
        #expect(done(), "not done within 60 s")
    }
}

@Suite("the topic consumer", .timeLimit(.minutes(3)))
struct TopicConsumerTests {
    @Test("reads what quixstreams 0.5.7 wrote: properties, definitions, data, events, each end type")
    func readsTheReference() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("reference", partitions: 4)
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        for file in ["basic", "events", "close_types"] {
            for message in try Vectors.messages(file) {
                for part in message.parts {
                    try await producer.send(OutgoingMessage(topic: "reference", key: message.record.key, value: part, partition: message.record.partition))
                }
            }
        }
        try await producer.flush()

        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers)
        let consumer = try TopicConsumer(client: client, topic: "reference", group: nil, startFrom: .earliest)
        let seen = Seen()
        record(consumer, into: seen)
        try await consume(consumer) { seen.lines.withLock { $0.values.flatMap { $0 }.filter { $0.hasPrefix("closed") }.count } == 5 }

        let lines = seen.lines.withLock { $0 }
        #expect(lines["stream-basic"] == [
            "properties Basic stream", "parameters [\"speed\", \"label\"] groups [\"chassis\"]",
            "events [\"crash\", \"trace_evt\"]", "rows 1 numeric [\"rpm\", \"speed\"] tags [\"driver\", \"team\"]",
            "properties Basic stream (renamed)", "closed Closed",
        ])
        #expect(lines["stream-events"]?.filter { $0.hasPrefix("event ") } == [
            "event door=open", "event door=closed", "event horn=beep", #"event note={"json": true}"#,
        ])
        #expect(lines["stream-aborted"]?.last == "closed Aborted" && lines["stream-terminated"]?.last == "closed Terminated")
        #expect(lines["stream-notclosed"]?.contains { $0.hasPrefix("closed") } == false, "no StreamEnd was sent for it")
        #expect(seen.errors.withLock { $0 }.isEmpty)
    }

    @Test("a handler that throws is reported with its stream, and the stream goes on")
    func throwingHandler() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("throws", partitions: 1)
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers)
        let topicProducer = try client.topicProducer("throws")
        let stream = try topicProducer.createStream("s")
        for value in [1.0, -1, 2] { try await stream.addTimestamp(nanoseconds: 1_000 + Int64(value * 10)).addValue("v", value).publish() }
        try await stream.close()
        try await topicProducer.close()

        struct Negative: Error {}
        let consumer = try TopicConsumer(client: client, topic: "throws", group: nil, startFrom: .earliest)
        let seen = Seen()
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { stream, frame in
                if let value = frame["v"]?[0], value < 0 { throw Negative() }
                seen.add(stream, "value \(frame["v"]?[0] ?? .nan)")
            }
            stream.onStreamClosed { stream, _ in seen.add(stream, "closed") }
        }
        consumer.onError { error, context in seen.errors.withLock { $0.append("\(context): \(error)") } }
        try await consume(consumer) { seen.lines.withLock { $0["s"]?.last == "closed" } }
        #expect(seen.lines.withLock { $0["s"] } == ["value 1.0", "value 2.0", "closed"])
        #expect(seen.errors.withLock { $0 } == ["a handler of stream s: Negative()"])
    }

    @Test("commits cover exactly the processed packages: the next member resumes after them")
    func commitsProcessedPackages() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("commits", partitions: 1)
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers)
        let topicProducer = try client.topicProducer("commits")
        let stream = try topicProducer.createStream("s")
        for index in 0..<10 { try await stream.addTimestamp(nanoseconds: Int64(index)).addValue("v", Double(index)).publish() }
        try await topicProducer.flush()  // 11 packages: the properties, then 10 rows

        let group = "g-\(UUID().uuidString.prefix(8))"
        let counted = Mutex(0)
        let first = try TopicConsumer(
            client: KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" },
            topic: "commits", group: group, startFrom: .earliest, commit: CommitOptions(everyPackages: 1, interval: nil))
        first.onStreamReceived { stream in stream.onFrameReceived { _, _ in counted.withLock { $0 += 1 } } }
        try await consume(first) { counted.withLock { $0 } == 10 }

        try await stream.addTimestamp(nanoseconds: 100).addValue("v", 100).publish()
        try await topicProducer.close()
        let later = Mutex([Double]())
        let second = try TopicConsumer(
            client: KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" },
            topic: "commits", group: group, startFrom: .earliest)
        second.onStreamReceived { stream in stream.onFrameReceived { _, frame in later.withLock { $0.append(frame["v"]?[0] ?? .nan) } } }
        try await consume(second) { !later.withLock { $0 }.isEmpty }
        #expect(later.withLock { $0 } == [100], "only the package after the committed ones")
    }

    @Test("a manual commit commits what is processed, between the committing and committed notifications")
    func manualCommit() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("manual", partitions: 1)
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers) { $0.librdkafka["session.timeout.ms"] = "6000" }
        let topicProducer = try client.topicProducer("manual")
        let stream = try topicProducer.createStream("s")
        for index in 0..<10 { try await stream.addTimestamp(nanoseconds: Int64(index)).addValue("v", Double(index)).publish() }
        try await topicProducer.close()  // 11 packages: the properties, then 10 rows

        let group = "g-\(UUID().uuidString.prefix(8))"
        let consumer = try TopicConsumer(client: client, topic: "manual", group: group, startFrom: .earliest, commit: .manual)
        let log = Mutex([String]())
        let frames = Mutex(0)
        consumer.onStreamReceived { stream in stream.onFrameReceived { _, _ in frames.withLock { $0 += 1 } } }
        consumer.onCommitting { _, _ in log.withLock { $0.append("committing") } }
        consumer.onCommitted { _, offsets in log.withLock { $0.append("committed \(offsets.map { "\($0.partition):\($0.offset)" })") } }
        let probe = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: group))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await consumer.run() }
            while frames.withLock({ $0 }) < 10 { try await Task.sleep(for: .milliseconds(20)) }
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await probe.committed([TopicPartition("manual", 0)]).first?.offset ?? -1 < 0, "nothing committed before commit()")
            try await consumer.commit()
            #expect(log.withLock { $0 } == ["committing", "committed [\"0:11\"]"])
            #expect(try await probe.committed([TopicPartition("manual", 0)]).first?.offset == 11)
            try await consumer.commit()
            #expect(log.withLock { $0 }.count == 2, "nothing new to commit: no notification")
            await consumer.close()
            try await tasks.waitForAll()
        }
    }

    @Test("revocation: revoking, then the moved streams close, their offsets commit, then streams revoked")
    func revocation() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("moving", partitions: 2)
        let settings: @Sendable (inout KafkaClientSettings) -> Void = { $0.librdkafka["session.timeout.ms"] = "6000" }
        let topicProducer = try KafkaStreamingClient(brokers: cluster.bootstrapServers, configure: settings).topicProducer("moving")
        for index in 0..<8 {
            let stream = try topicProducer.createStream("s\(index)")
            try await stream.addTimestamp(nanoseconds: 1).addValue("v", Double(index)).publish()
        }
        try await topicProducer.close()

        let group = "g-\(UUID().uuidString.prefix(8))"
        let first = try TopicConsumer(
            client: KafkaStreamingClient(brokers: cluster.bootstrapServers, configure: settings), topic: "moving", group: group,
            startFrom: .earliest, commit: CommitOptions(everyPackages: 1_000, interval: nil))
        let log = Mutex([String]())
        let partitionOf = Mutex([String: Int32]())
        first.onStreamReceived { stream in
            partitionOf.withLock { $0[stream.streamID] = stream.partition }
            stream.onStreamClosed { stream, type in log.withLock { $0.append("closed \(stream.streamID) \(type.rawValue)") } }
        }
        first.onRevoking { _, partitions in log.withLock { $0.append("revoking \(partitions.map(\.partition))") } }
        first.onCommitted { _, offsets in log.withLock { $0.append("committed \(offsets.map { "\($0.partition):\($0.offset)" })") } }
        first.onStreamsRevoked { _, streams in log.withLock { $0.append("revoked \(streams.map(\.streamID).sorted())") } }
        let errors = Mutex([String]())
        first.onError { error, _ in errors.withLock { $0.append("\(error)") } }
        let second = try TopicConsumer(
            client: KafkaStreamingClient(brokers: cluster.bootstrapServers, configure: settings), topic: "moving", group: group,
            startFrom: .earliest, commit: .manual)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await first.run() }
            let clock = ContinuousClock()
            var deadline = clock.now + .seconds(30)
            while partitionOf.withLock({ $0.count }) < 8 && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            tasks.addTask { try await second.run() }
            deadline = clock.now + .seconds(30)
            while !log.withLock({ $0.contains { $0.hasPrefix("revoked") } }) && clock.now < deadline { try await Task.sleep(for: .milliseconds(20)) }
            await first.close()
            await second.close()
            try await tasks.waitForAll()
        }
        let lines = log.withLock { $0 }
        let revoking = try #require(lines.first, "no revocation within 30 s")
        let moved = try #require(Int32(revoking.dropFirst("revoking [".count).dropLast()), "one partition moves: \(lines)")
        let streams = partitionOf.withLock { $0 }.filter { $0.value == moved }.keys.sorted()
        let high = try await KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
            .watermarks(TopicPartition("moving", moved)).high
        // Streams close in no particular order; the commit covers both partitions' processed packages.
        let others = lines.filter { !$0.hasPrefix("committed") }
        #expect(Set(others.dropFirst().prefix(streams.count)) == Set(streams.map { "closed \($0) Terminated" }), "\(lines)")
        #expect(others.dropFirst(streams.count + 1).first == "revoked \(streams)", "\(lines)")
        if errors.withLock({ $0 }).contains(where: { $0.contains("REBALANCE_IN_PROGRESS") }) {
            // The mock coordinator sometimes answers a commit made during a cooperative
            // rebalance with REBALANCE_IN_PROGRESS; the offsets are then redelivered, not lost.
            withKnownIssue("the mock cluster refused the commit during the rebalance", isIntermittent: true) {
                Issue.record("commit during revocation refused: \(errors.withLock { $0 })")
            }
        } else {
            #expect(lines.dropFirst(streams.count + 1).first?.contains("\"\(moved):\(high)\"") == true, "\(lines)")
        }
    }
}

extension TopicConsumerTests {
    @Test("timeLag() is the data time between the newest message read and the last one processed, and 0 once all are processed")
    func timeLag() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("late", partitions: 1)
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        for (row, milliseconds) in [1_000, 5_000, 9_000].enumerated() {
            var frame = TimeseriesFrame(timestamps: [Int64(row)])
            frame["v"] = [Double(row)]
            try await producer.send(
                OutgoingMessage(topic: "late", key: Array("s".utf8), value: QuixCodec.encode(frame), timestampMilliseconds: Int64(milliseconds)))
        }
        try await producer.flush()
        await producer.close()

        let consumer = try TopicConsumer(client: KafkaStreamingClient(brokers: cluster.bootstrapServers), topic: "late", group: nil, startFrom: .earliest)
        let gate = Mutex(false)
        let handled = Mutex(0)
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { _, _ in
                // The second package waits: the first is processed, the third read.
                if handled.withLock({ $0 }) == 1 { while !gate.withLock({ $0 }) { try? await Task.sleep(for: .milliseconds(5)) } }
                handled.withLock { $0 += 1 }
            }
        }
        let seen = Mutex<[Int64]>([])
        let caughtUp = Mutex(false)
        try await consume(consumer) {
            if caughtUp.withLock({ $0 }) { return true }  // the consumer has stopped: no lag to read
            if let lag = consumer.timeLag()[TopicPartition("late", 0)] {
                seen.withLock { if $0.last != lag { $0.append(lag) } }
                if lag == 8_000 { gate.withLock { $0 = true } }
            }
            let done = handled.withLock { $0 } == 3 && consumer.timeLag()[TopicPartition("late", 0)] == 0
            caughtUp.withLock { $0 = done }
            return done
        }
        #expect(seen.withLock { $0 }.contains(8_000), "9 s read, 1 s processed: \(seen.withLock { $0 })")
        #expect(seen.withLock { $0 }.last == 0)
    }
}
