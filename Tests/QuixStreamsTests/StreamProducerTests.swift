import OrderedCollections
import QuixKafka
import QuixProtocol
import QuixStreams
import QuixTestSupport
import Testing

private let base: Int64 = 1_700_000_000_000_000_000
private let ms: Int64 = 1_000_000

/// The values of every message in `topic` (4 partitions), read to the end of each partition,
/// in offset order per partition, partitions in order.
private func values(_ cluster: MockCluster, _ topic: String) async throws -> [[UInt8]] {
    let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
    var remaining = 0
    for partition in Int32(0)..<4 { remaining += Int(try await consumer.watermarks(TopicPartition(topic, partition)).high) }
    try consumer.assign((0..<4).map { TopicPartitionOffset(topic, $0, offset: KafkaOffset.beginning) })
    var messages: [KafkaMessage] = []
    if remaining > 0 {
        for await event in consumer.events {
            if case .messages(let batch) = event { messages += batch }
            if messages.count >= remaining { break }
        }
    }
    await consumer.close()
    return messages.sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }.map { Array($0.value ?? []) }
}

@Suite("the stream producer writes what quixstreams 0.5.7 writes", .timeLimit(.minutes(2)))
struct StreamProducerTests {
    @Test("the basic scenario: properties, definitions, data, renamed properties, close; byte for byte")
    func basicScenario() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("basic", partitions: 4)
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("basic")
        let stream = try producer.createStream("stream-basic")
        try stream.updateProperties {
            $0.name = "Basic stream"
            $0.location = "/vehicles/car-1"
            $0.metadata = ["driver": "Alice", "lap": "3"]
            $0.parents = ["parent-stream-1"]
            $0.timeOfRecording = "2023-01-02T03:04:05"
        }
        try await stream.flush()
        try stream.addParameterDefinition(
            ParameterDefinition(
                id: "speed", name: "Speed", description: "Vehicle speed", minimumValue: 0, maximumValue: 400, unit: "km/h",
                format: "{0:0.0}", customProperties: #"{"c":1}"#))
        try stream.addParameterDefinition(ParameterDefinition(id: "rpm", name: "RPM", minimumValue: 0, maximumValue: 20_000), location: "/chassis/engine")
        try stream.addParameterDefinition(ParameterDefinition(id: "gear"), location: "/chassis/engine")
        try stream.addParameterDefinition(ParameterDefinition(id: "label"))
        try await stream.flush()
        try stream.addEventDefinition(
            EventDefinition(id: "crash", name: "Crash", description: "A crash happened", customProperties: #"{"x":2}"#, level: .critical))
        try stream.addEventDefinition(EventDefinition(id: "lap_start", name: "Lap start", level: .information), location: "/race")
        try stream.addEventDefinition(EventDefinition(id: "trace_evt", level: .trace))
        try await stream.flush()
        var frame = TimeseriesFrame(timestamps: [base])
        frame["speed"] = [123.5]
        frame["rpm"] = [9000]
        frame.setStrings("label", ["hello é中"])
        frame.setBinary("blob", [[0, 1, 2, 250, 255]])
        frame.setTags("driver", ["Alice"])
        frame.setTags("team", ["red"])
        try await stream.publish(frame)
        try stream.updateProperties { $0.name = "Basic stream (renamed)" }
        try await stream.flush()
        try await stream.close()
        try await producer.close()

        let expected = try Vectors.messages("basic").map(\.value)
        #expect(try await values(cluster, "basic") == expected)
    }

    @Test("events: definitions, a builder with one and with two values, a published event; byte for byte")
    func eventsScenario() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("events", partitions: 4)
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("events")
        let stream = try producer.getOrCreateStream("stream-events")
        try stream.addEventDefinition(EventDefinition(id: "door", name: "Door", description: "Door state", level: .warning))
        try await stream.flush()
        try await stream.addEvent(atNanoseconds: base).addValue("door", "open").publish()
        try await stream.addEvent(atNanoseconds: base + ms).addValue("door", "closed").addValue("horn", "beep").addTag("who", "bob").publish()
        try await stream.publish([EventData(id: "note", timestamp: base + 2 * ms, value: #"{"json": true}"#, tags: ["k": "v"])])
        try await stream.close()
        try await producer.close()

        let expected = try Vectors.messages("events").map(\.value)
        #expect(try await values(cluster, "events") == expected)
    }

    @Test("packet-size buffer through the row builder, then close: byte for byte")
    func bufferedScenario() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("packet", partitions: 4)
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("packet")
        let stream = try producer.createStream("stream-packet")
        stream.configureBuffer(TimeseriesBufferConfiguration(packetSize: 3))
        for index in 0..<7 {
            try await stream.addTimestamp(nanoseconds: base + Int64(index) * 10 * ms).addValue("v", Double(index)).addTag("row", "\(index)").publish()
        }
        try await stream.close()
        try await producer.close()

        let expected = try Vectors.messages("buffer_packet_size").map(\.value)
        #expect(try await values(cluster, "packet") == expected)
    }

    @Test("a buffer timeout releases held rows while nothing is written; byte for byte")
    func bufferTimeout() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("timeout", partitions: 4)
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("timeout")
        let stream = try producer.createStream("stream-timeout")
        stream.configureBuffer(TimeseriesBufferConfiguration(timeout: .milliseconds(300)))
        try await stream.addTimestamp(nanoseconds: base).addValue("v", 1.0).publish()
        try await stream.addTimestamp(nanoseconds: base + ms).addValue("v", 2.0).publish()
        try await Task.sleep(for: .seconds(1))
        // Nothing was written for a second: the clock alone must have sent the properties and
        // the two rows.
        #expect(try await values(cluster, "timeout").count == 2, "the held rows went out without a write")
        try await stream.addTimestamp(nanoseconds: base + 2 * ms).addValue("v", 3.0).publish()
        try await stream.close()
        try await producer.close()

        let expected = try Vectors.messages("buffer_timeout").map(\.value)
        #expect(try await values(cluster, "timeout") == expected)
    }

    @Test("changed properties and definitions go out on their own, 20 and 200 ms after the last change")
    func debouncedChanges() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("changes", partitions: 4)
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("changes")
        let stream = try producer.createStream("s")
        try stream.updateProperties { $0.name = "first" }
        try stream.updateProperties { $0.name = "second" }
        try stream.addParameterDefinition(ParameterDefinition(id: "speed"))
        try stream.addEventDefinition(EventDefinition(id: "crash"))
        try await Task.sleep(for: .seconds(1))
        let models = try await values(cluster, "changes").map { try QuixCodec.decode($0[...]) }
        #expect(models == [
            .model(.streamProperties(StreamProperties(name: "second"))),
            .model(.parameterDefinitions(ParameterDefinitions(parameters: [ParameterDefinition(id: "speed")]))),
            .model(.eventDefinitions(EventDefinitions(events: [EventDefinition(id: "crash")]))),
        ], "one message per kind, with the last change, without a flush")
        try await producer.close()
    }

    @Test("createTopicIfMissing leaves an existing topic alone, and reports a broker that cannot create one")
    func createTopicIfMissing() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("present", partitions: 2)
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers)
        #expect(try await client.createTopicIfMissing("present", partitions: 2) == false)
        // The mock cluster has no controller: CreateTopics fails there, and says so.
        await #expect(throws: KafkaError.self) { try await client.createTopicIfMissing("absent", partitions: 2, timeout: .seconds(2)) }
    }

    @Test("bad use is refused with a clear error: empty or long ids, a type change, publishing after close")
    func badUse() async throws {
        let cluster = try MockCluster(brokers: 1)
        let producer = try KafkaStreamingClient(brokers: cluster.bootstrapServers).topicProducer("bad")
        #expect(throws: StreamError(.invalidStreamID, "a stream id cannot be empty")) { try producer.createStream("") }
        let long = #expect(throws: StreamError.self) { try producer.createStream(String(repeating: "x", count: 1_025)) }
        #expect(long?.code == .invalidStreamID)
        let stream = try producer.createStream("s")
        try await stream.addTimestamp(nanoseconds: base).addValue("a", 1.0).publish()
        let changed = await #expect(throws: StreamError.self) { try await stream.addTimestamp(nanoseconds: base + 1).addValue("a", "one").publish() }
        #expect(changed?.code == .typeChanged)
        try await stream.close()
        let closed = await #expect(throws: StreamError.self) { try await stream.addTimestamp(nanoseconds: base + 2).addValue("a", 2.0).publish() }
        #expect(closed?.code == .closed)
        #expect(throws: StreamError.self) { try stream.updateProperties { $0.name = "late" } }
        try await producer.close()
    }
}
