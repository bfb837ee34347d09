import Foundation
import OrderedCollections
import QuixKafka
import QuixProtocol
import QuixStreams
import Synchronization
import Testing

/// The Python of `.venv-interop` (real quixstreams 0.5.7, made by scripts/setup-interop.sh), or
/// `QUIX_INTEROP_PYTHON`.
private let interopPython: URL = {
    if let path = ProcessInfo.processInfo.environment["QUIX_INTEROP_PYTHON"] { return URL(fileURLWithPath: path) }
    return repositoryRoot.appendingPathComponent(".venv-interop/bin/python")
}()

private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// Scenarios of Tests/Interop/q05.py and how many streams each closes.
let scenarios: [(name: String, streams: Int)] = [
    ("properties", 2), ("definitions", 1), ("timeseries", 1), ("buffered", 2), ("events", 1), ("interleaved", 3),
    ("close", 3), ("large", 1),
]

/// Runs q05.py (the real quixstreams 0.5.7) with `arguments`.
func q05(_ arguments: [String]) async throws -> String {
    let result = try await runProcess(interopPython, [repositoryRoot.appendingPathComponent("Tests/Interop/q05.py").path] + arguments)
    try #require(result.status == 0, "q05.py \(arguments.prefix(1)) exited \(result.status): \(result.error.suffix(2_000))")
    return result.output
}

/// What the real 0.5.7 consumer reports for `topic`, per stream, in callback order (as JSON
/// objects, without the stream-received lines).
func referenceView(_ cluster: MockCluster, topic: String, streams: Int) async throws -> [String: [String]] {
    let output = try await q05([
        "consume", "--brokers", cluster.bootstrapServers, "--topic", topic, "--group", "g-\(UUID().uuidString.prefix(8))",
        "--timeout", "30", "--expect-streams", "\(streams)",
    ])
    var view: [String: [String]] = [:]
    for line in output.split(separator: "\n") {
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
        let kind = object["kind"] as! String
        #expect(kind != "error", "the reference consumer's handler failed: \(line)")
        guard kind != "stream_received" else { continue }
        view[object["stream"] as! String, default: []].append(try canonical(object))
    }
    return view
}

/// One JSON text per object, keys sorted and numbers spelled by one serializer, for comparison.
private func canonical(_ object: [String: Any]) throws -> String {
    String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .fragmentsAllowed]), as: UTF8.self)
}

/// A JSON null for a missing value.
private func null(_ value: Any?) -> Any { value ?? NSNull() }

/// A number as q05.py prints it: non-finite values as the strings of the wire format.
private func number(_ value: Double) -> Any {
    if value.isNaN { return "NaN" }
    if value.isInfinite { return value > 0 ? "Infinity" : "-Infinity" }
    return value
}

/// A definitions tree as the reference consumer flattens it: every definition with its location
/// (`""` at the root, `/a/b` in groups a > b), sorted by (location, id).
private func flatten<Group: DefinitionGroup>(
    _ root: [Group.Member], _ groups: [Group], _ render: (Group.Member, String) -> [String: Any]
) -> [[String: Any]] {
    var flat: [[String: Any]] = root.map { render($0, "") }
    func walk(_ groups: [Group], under location: String) {
        for group in groups {
            flat += group.members.map { render($0, location + "/" + group.name) }
            walk(group.childGroups, under: location + "/" + group.name)
        }
    }
    walk(groups, under: "")
    return flat.sorted { ($0["location"] as! String, $0["id"] as! String) < ($1["location"] as! String, $1["id"] as! String) }
}

/// Our decoding of `topic`, rendered as q05.py renders the reference consumer's callbacks.
private func ourView(_ records: [QuixRecord]) throws -> [String: [String]] {
    var view: [String: [String]] = [:]
    for record in records {
        guard case .model(let model) = record.message else {
            Issue.record("\(record.stream): not a model: \(record.message)")
            continue
        }
        view[record.stream, default: []] += try render(model, stream: record.stream)
    }
    return view
}

/// One model as q05.py prints the reference consumer's callbacks for it (an event package
/// fires one callback per event).
func render(_ model: QuixModel, stream: String) throws -> [String] {
    var object: [String: Any] = ["stream": stream]
    switch model {
    case .streamProperties(let properties):
        object["kind"] = "properties"
        object["name"] = null(properties.name)
        object["location"] = null(properties.location)
        object["metadata"] = Dictionary(uniqueKeysWithValues: properties.metadata.map { ($0.key, $0.value) })
        object["parents"] = properties.parents
        object["time_of_recording"] = null(properties.timeOfRecording)
    case .parameterDefinitions(let definitions):
        object["kind"] = "parameter_definitions"
        object["definitions"] = flatten(definitions.parameters, definitions.parameterGroups) { parameter, location in
            [
                "id": parameter.id, "name": null(parameter.name), "description": null(parameter.description),
                "location": location, "minimum_value": null(parameter.minimumValue.map(number)),
                "maximum_value": null(parameter.maximumValue.map(number)), "unit": null(parameter.unit),
                "format": null(parameter.format), "custom_properties": null(parameter.customProperties),
            ]
        }
    case .eventDefinitions(let definitions):
        object["kind"] = "event_definitions"
        object["definitions"] = flatten(definitions.events, definitions.eventGroups) { event, location in
            [
                "id": event.id, "name": null(event.name), "description": null(event.description), "location": location,
                "level": event.effectiveLevel.rawValue, "custom_properties": null(event.customProperties),
            ]
        }
    case .timeseries(let data):
        object["kind"] = "timeseries"
        object["rows"] = data.timestamps.indices.map { row -> [String: Any] in
            [
                "timestamp": data.epoch + data.timestamps[row],
                "numeric": Dictionary(uniqueKeysWithValues: data.numericValues.compactMap { name, column in column[row].map { (name, number($0)) } }),
                "string": Dictionary(uniqueKeysWithValues: data.stringValues.compactMap { name, column in column[row].map { (name, $0) } }),
                "binary": Dictionary(uniqueKeysWithValues: data.binaryValues.compactMap { name, column in
                    column[row].map { (name, Data($0).base64EncodedString()) } }),
                "tags": Dictionary(uniqueKeysWithValues: data.tagValues.compactMap { name, column in column[row].map { (name, $0) } }),
            ]
        }
    case .eventData(let events):
        return try events.map { event in
            try canonical([
                "stream": stream, "kind": "event", "id": event.id, "timestamp": event.timestamp, "value": event.value,
                "tags": Dictionary(uniqueKeysWithValues: event.tags.map { ($0.key, $0.value) }),
            ])
        }
    case .streamEnd(let type):
        object["kind"] = "closed"
        object["end_type"] = type.rawValue
    }
    return [try canonical(object)]
}

/// Every record of a topic (one partition), read to its end with QuixKafka and QuixProtocol.
private func records(_ cluster: MockCluster, topic: String) async throws -> [QuixRecord] {
    let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
    let end = try await consumer.watermarks(TopicPartition(topic, 0)).high
    try consumer.assign([TopicPartitionOffset(topic, 0, offset: KafkaOffset.beginning)])
    var assembler = PackageAssembler()
    var records: [QuixRecord] = []
    var last: Int64 = -1
    for await event in consumer.events where last + 1 < end {
        guard case .messages(let batch) = event else { continue }
        for message in batch {
            last = message.offset
            for package in assembler.add(
                partition: message.partition, key: message.key.map(Array.init), offset: message.offset,
                timestampMilliseconds: message.timestampMilliseconds, value: message.value ?? [])
            {
                records.append(try QuixRecord(package))
            }
        }
        if last + 1 >= end { break }
    }
    await consumer.close()
    return records
}

/// Runs `body` for every element, at most `width` at a time.
func forEach<T: Sendable>(_ items: [T], width: Int, _ body: @escaping @Sendable (T) async throws -> Void) async throws {
    for start in stride(from: 0, to: items.count, by: width) {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for item in items[start..<min(items.count, start + width)] { group.addTask { try await body(item) } }
            try await group.waitForAll()
        }
    }
}

@Suite("interop with the real quixstreams 0.5.7", .serialized, .timeLimit(.minutes(6)))
struct InteropTests {
    @Test("""
        what 0.5.7 writes, quixd and the library's consumer read as 0.5.7 does; what quixd re-encodes and what the \
        library's producer writes, 0.5.7 reads as the original
        """)
    func bothDirections() async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: interopPython.path),
            "no quixstreams 0.5.7 venv at \(interopPython.path): run scripts/setup-interop.sh")
        let cluster = try MockCluster(brokers: 1)
        // The library also writes the time-series scenario with the other two codecs.
        let codecs: [(topic: String, scenario: String, codec: TimeseriesCodec)] =
            scenarios.map { ("lib-\($0.name)", $0.name, .json) }
            + [("lib-timeseries-compact", "timeseries", .compactJSON), ("lib-timeseries-protobuf", "timeseries", .protobuf)]
        for (name, _) in scenarios {
            try cluster.createTopic("py-\(name)", partitions: 1)
            try cluster.createTopic("swift-\(name)", partitions: 1)
        }
        for (topic, _, _) in codecs { try cluster.createTopic(topic, partitions: 1) }
        // 0.5.7 writes every scenario.
        try await forEach(scenarios, width: 4) { scenario in
            _ = try await q05(["produce", "--brokers", cluster.bootstrapServers, "--topic", "py-\(scenario.name)", "--scenario", scenario.name])
        }
        // quixd reads them, and writes them again with its own encoder (and splitter) through `quixd produce`.
        let decoded = Mutex([String: [QuixRecord]]())
        try await forEach(scenarios, width: 4) { scenario in
            let read = try await records(cluster, topic: "py-\(scenario.name)")
            decoded.withLock { $0[scenario.name] = read }
            let lines = read.map { String(decoding: $0.jsonLine(), as: UTF8.self) }.joined(separator: "\n")
            let produced = try await runQuixd(
                ["produce", "--brokers", cluster.bootstrapServers, "--topic", "swift-\(scenario.name)"], input: Data(lines.utf8))
            #expect(produced.status == 0, "\(scenario.name): \(produced.error)")
        }
        // The library's producer writes every scenario with its own API.
        let client = KafkaStreamingClient(brokers: cluster.bootstrapServers)
        try await forEach(codecs, width: 4) { (topic, scenario, codec) in
            let producer = try client.topicProducer(topic, codec: codec)
            try await writeLibraryScenario(scenario, to: producer)
            try await producer.close()
        }
        // 0.5.7 reads every topic, and the library's consumer reads 0.5.7's: the views must agree.
        let views = Mutex([String: [String: [String]]]())
        let streamCount = Dictionary(uniqueKeysWithValues: scenarios.map { ($0.name, $0.streams) })
        let topics = scenarios.flatMap { [("py-\($0.name)", $0.streams), ("swift-\($0.name)", $0.streams)] }
            + codecs.map { ($0.topic, streamCount[$0.scenario]!) }
        try await forEach(topics, width: 8) { (topic, streams) in
            let view = try await referenceView(cluster, topic: topic, streams: streams)
            views.withLock { $0[topic] = view }
        }
        try await forEach(scenarios, width: 4) { scenario in
            let view = try await libraryView(cluster, topic: "py-\(scenario.name)", streams: scenario.streams)
            views.withLock { $0["library-reads-py-\(scenario.name)"] = view }
        }
        let all = views.withLock { $0 }
        for (name, streams) in scenarios {
            let original = try #require(all["py-\(name)"])
            #expect(original.count == streams || name == "properties", "\(name): the reference saw \(original.keys.sorted())")
            let ours = try ourView(decoded.withLock { $0[name] ?? [] })
            #expect(ours == original, "\(name): quixd decodes differently from 0.5.7:\nours \(ours)\nreference \(original)")
            #expect(all["swift-\(name)"] == original, "\(name): 0.5.7 reads quixd's copy differently")
            #expect(all["lib-\(name)"] == original, "\(name): 0.5.7 reads the library's producer differently:\n\(all["lib-\(name)"] ?? [:])\nreference \(original)")
            #expect(all["library-reads-py-\(name)"] == original, "\(name): the library's consumer reads 0.5.7 differently:\n\(all["library-reads-py-\(name)"] ?? [:])\nreference \(original)")
        }
        for topic in ["lib-timeseries-compact", "lib-timeseries-protobuf"] {
            #expect(all[topic] == all["py-timeseries"], "0.5.7 reads \(topic) differently")
        }
        let large = decoded.withLock { $0["large"] ?? [] }
        #expect(large.contains { $0.parts == 5 }, "the 3 MB value arrived in 5 parts and was merged")
    }
}
