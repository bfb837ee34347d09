import Foundation
import QuixKafka
import OrderedCollections
import QuixProtocol
import QuixTestSupport
import Synchronization
import Testing

/// The built `quixd` executable, next to the test bundle.
func quixd() throws -> URL {
    let url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("quixd")
    try #require(FileManager.default.isExecutableFile(atPath: url.path), "quixd is not built at \(url.path)")
    return url
}

/// Runs quixd with `arguments` and `input`; returns its exit code, standard output and error.
func runQuixd(_ arguments: [String], input: Data = Data()) async throws -> (status: Int32, output: String, error: String) {
    try await runProcess(try quixd(), arguments, input: input)
}

/// Runs a program to completion, feeding `input` and collecting both outputs.
func runProcess(_ executable: URL, _ arguments: [String], input: Data = Data()) async throws -> (status: Int32, output: String, error: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
    process.standardInput = stdin
    process.standardOutput = stdout
    process.standardError = stderr
    try process.run()
    let collected = Mutex((Data(), Data()))
    let readers = [
        Thread { let data = stdout.fileHandleForReading.readDataToEndOfFile(); collected.withLock { $0.0 = data } },
        Thread { let data = stderr.fileHandleForReading.readDataToEndOfFile(); collected.withLock { $0.1 = data } },
    ]
    readers.forEach { $0.start() }
    try stdin.fileHandleForWriting.write(contentsOf: input)
    try stdin.fileHandleForWriting.close()
    while process.isRunning || readers.contains(where: { !$0.isFinished }) { try await Task.sleep(for: .milliseconds(10)) }
    let (output, error) = collected.withLock { $0 }
    return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
}

/// Every package of `topic`, assembled, by stream id, in order.
func packages(_ cluster: MockCluster, _ topic: String, expected: Int) async throws -> [String: [[UInt8]]] {
    let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
    try consumer.assign((0..<4).map { TopicPartitionOffset(topic, $0, offset: KafkaOffset.beginning) })
    var assembler = PackageAssembler()
    var result: [String: [[UInt8]]] = [:]
    var count = 0
    for await event in consumer.events {
        guard case .messages(let batch) = event else { continue }
        for message in batch {
            for package in assembler.add(
                partition: message.partition, key: message.key.map(Array.init), offset: message.offset,
                timestampMilliseconds: nil, value: message.value ?? [])
            {
                result[QuixCodec.streamID(fromKey: package.key?[...]), default: []].append(Array(package.value))
                count += 1
            }
        }
        if count >= expected { break }
    }
    await consumer.close()
    return result
}

@Suite("quixd consume and produce", .timeLimit(.minutes(3)))
struct ConsumeProduceTests {
    @Test("consume | produce copies every golden vector: the copy's packages are byte-identical")
    func copyIsFaithful() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["source", "copy"] { try cluster.createTopic(topic, partitions: 4) }
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        var packageCount = 0
        for file in ["basic", "timeseries_variants", "events", "close_types", "split", "codec_compact_json", "codec_protobuf", "multi_stream"] {
            for message in try Vectors.messages(file) {
                for part in message.parts {
                    try await producer.send(
                        OutgoingMessage(topic: "source", key: message.record.key, value: part, partition: message.record.partition))
                }
                packageCount += 1
            }
        }
        try await producer.flush()

        let consumed = try await runQuixd([
            "consume", "--brokers", cluster.bootstrapServers, "--topic", "source", "--from-beginning", "--count", "\(packageCount)",
            "--timeout", "30s",
        ])
        #expect(consumed.status == 0, "\(consumed.error)")
        let lines = consumed.output.split(separator: "\n")
        #expect(lines.count == packageCount)
        #expect(lines.contains { $0.contains(#""parts":5"#) }, "the split message is one line")
        #expect(lines.contains { $0.contains(#""codec":"PB-Pd","envelope":"binary""#) })
        let streams = Set(try lines.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }.map { $0["stream"] as! String })
        let summary = try #require(consumed.error.split(separator: "\n").last.map(String.init))
        #expect(summary.hasPrefix("consume: \(packageCount) messages from source, \(streams.count) streams ("), "\(summary)")
        #expect(summary.contains(" StreamEnd") && summary.contains(" ParameterData") && summary.hasSuffix("), 0 errors"), "\(summary)")

        let produced = try await runQuixd(
            ["produce", "--brokers", cluster.bootstrapServers, "--topic", "copy"], input: Data(consumed.output.utf8))
        #expect(produced.status == 0, "\(produced.error)")

        let original = try await packages(cluster, "source", expected: packageCount)
        let copy = try await packages(cluster, "copy", expected: packageCount)
        #expect(Set(copy.keys) == Set(original.keys))
        for (stream, values) in original {
            #expect(copy[stream] == values, "stream \(stream) differs")
        }
    }

    @Test("bad JSON lines are reported with their line numbers, the good ones are sent, the exit code is 1")
    func badJSONLines() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("lines", partitions: 1)
        let input = """
            {"stream":"s1","model":"StreamEnd","value":{}}
            this is not json
            {"stream":"s1","model":"ParameterData","value":{"Timestamps":"no"}}

            {"model":"StreamEnd","value":{}}
            {"stream":"s2","model":"StreamEnd","value":{"StreamEndType":"Aborted"}}
            """
        let result = try await runQuixd(["produce", "--brokers", cluster.bootstrapServers, "--topic", "lines"], input: Data(input.utf8))
        #expect(result.status == 1)
        #expect(result.error.contains("line 2: "))
        #expect(result.error.contains("line 3: wrongType"))
        #expect(result.error.contains("line 5: missingMember"))
        #expect(!result.error.contains("line 1:") && !result.error.contains("line 6:"))
        let sent = try await packages(cluster, "lines", expected: 2)
        #expect(sent["s1"]?.count == 1 && sent["s2"]?.count == 1)
    }

    @Test("a large input shows its progress on standard error, a line per tenth when not on a terminal")
    func produceProgress() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("big", partitions: 1)
        let rows = (0..<10_000).map { "\(1_700_000_000_000_000_000 + $0 * 1_000_000),\($0)" }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-\(UUID().uuidString).csv")
        try ("timestamp,speed\n" + rows.joined(separator: "\n")).write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await runQuixd([
            "produce", "--brokers", cluster.bootstrapServers, "--topic", "big", "--input", file.path, "--stream", "car-1", "--batch", "1",
        ])
        #expect(result.status == 0, "\(result.error)")
        let lines = result.error.split(separator: "\n").filter { $0.hasSuffix(" records sent") }.map(String.init)
        // The stream's properties, then 10,000 rows, one a record.
        #expect(result.error.contains("produce: 10001 records in 10001 messages to big"), "\(result.error)")
        #expect(lines == ["1/10001 records sent"] + (1...10).map { "\($0 * 1_000 + 1)/10001 records sent" }, "\(result.error)")
    }

    @Test("CSV rows become timeseries packets of one stream; bad rows are named")
    func csvImport() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("csv", partitions: 1)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-\(UUID().uuidString).csv")
        try """
            timestamp,speed,gear,label
            1700000000000000000,10.5,1,"a, quoted"
            2023-11-14T22:13:20.001Z,11,,b
            not-a-time,12,2,c
            1700000000003000000,13
            1700000000004000000,14,3,d
            """.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try await runQuixd([
            "produce", "--brokers", cluster.bootstrapServers, "--topic", "csv", "--input", file.path, "--stream", "car-1",
            "--batch", "2", "--close",
        ])
        #expect(result.status == 1)
        #expect(result.error.contains("csv line 4: \"not-a-time\" is no timestamp"))
        #expect(result.error.contains("csv line 5: 2 fields, the header has 4"))

        let packages = try await packages(cluster, "csv", expected: 4)["car-1"] ?? []
        let models = try packages.map { value -> QuixModel in
            guard case .model(let model) = try QuixCodec.decode(value[...]) else { throw QuixProtocolError(.wrongType, "no model") }
            return model
        }
        try #require(models.count == 4, "properties, two packets, end: \(models)")
        #expect(models[0] == .streamProperties(StreamProperties()))
        #expect(models[3] == .streamEnd(.closed))
        guard case .timeseries(let first) = models[1], case .timeseries(let second) = models[2] else {
            Issue.record("no timeseries")
            return
        }
        #expect(first.timestamps == [1_700_000_000_000_000_000, 1_700_000_000_001_000_000])
        #expect(first.numericValues["speed"] == [10.5, 11] && first.numericValues["gear"] == [1, nil])
        #expect(first.stringValues["label"] == ["a, quoted", "b"])
        #expect(second.timestamps == [1_700_000_000_004_000_000] && second.numericValues["gear"] == [3])
    }
}
