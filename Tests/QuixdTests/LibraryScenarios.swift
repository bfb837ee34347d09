import Foundation
import QuixStreams
import Synchronization
import Testing

private let base: Int64 = 1_700_000_000_000_000_000
private let ms: Int64 = 1_000_000

/// The scenarios of Tests/Interop/q05.py written with this library's producer API, call for
/// call where the APIs match: the real 0.5.7 consumer must see the same callbacks for both.
/// Where the Swift API offers another path to the same data (the epoch, a whole frame), the
/// scenario takes it, so that path is checked too.
func writeLibraryScenario(_ name: String, to producer: TopicProducer) async throws {
    switch name {
    case "properties":
        let stream = try producer.createStream("properties-full")
        try stream.updateProperties {
            $0.name = "Full properties"
            $0.location = "/vehicles/car-1"
            $0.metadata = ["driver": "Alice", "lap": "3", "unicode": "\u{e9}\u{4e2d}"]
            $0.parents = ["parent-1", "parent-2"]
            $0.timeOfRecording = "2023-01-02T03:04:05"
        }
        try await stream.flush()
        try stream.updateProperties { $0.name = "Full properties (renamed)" }
        try await stream.flush()
        try await stream.close()
        try await producer.createStream("properties-empty").close()
    case "definitions":
        let stream = try producer.createStream("definitions-1")
        try stream.addParameterDefinition(
            ParameterDefinition(
                id: "speed", name: "Speed", description: "Vehicle speed", minimumValue: 0, maximumValue: 400, unit: "km/h",
                format: "{0:0.0}", customProperties: #"{"c":1}"#))
        try stream.addParameterDefinition(ParameterDefinition(id: "label"))
        try stream.addParameterDefinition(ParameterDefinition(id: "rpm", name: "RPM", minimumValue: 0, maximumValue: 20_000), location: "/chassis/engine")
        try stream.addParameterDefinition(
            ParameterDefinition(id: "gear", name: "Gear", description: "Selected gear", minimumValue: -1, maximumValue: 8), location: "/chassis/engine")
        try stream.addParameterDefinition(ParameterDefinition(id: "brake_temp", name: "Brake temperature", unit: "C"), location: "/chassis/brakes")
        try await stream.flush()
        try stream.addEventDefinition(
            EventDefinition(id: "crash", name: "Crash", description: "A crash happened", customProperties: #"{"x":2}"#, level: .critical))
        try stream.addEventDefinition(EventDefinition(id: "trace_evt", level: .trace))
        try stream.addEventDefinition(EventDefinition(id: "debug_evt", level: .debug))
        try stream.addEventDefinition(EventDefinition(id: "warn_evt", name: "Warn", level: .warning))
        try stream.addEventDefinition(EventDefinition(id: "lap_start", name: "Lap start", level: .information), location: "/race")
        try stream.addEventDefinition(EventDefinition(id: "dnf", name: "Did not finish", description: "Retired", level: .error), location: "/race")
        try await stream.flush()
        try await stream.close()
    case "timeseries":
        let stream = try producer.createStream("timeseries-1")
        var first = TimeseriesFrame(timestamps: [base, base + ms, base + 2 * ms])
        first["speed"] = [123.5, -0.25, 1e300]
        first["rpm"] = [9_000, nil, 0]
        first.setStrings("label", ["hello \u{e9}\u{4e2d}", "", nil])
        first.setBinary("blob", [[0, 1, 2, 250, 255], nil, [0]])
        first.setTags("driver", ["Alice", "Alice", nil])
        first.setTags("team", ["red", nil, nil])
        try await stream.publish(first)
        // The second packet in relative time, with the epoch set.
        stream.epoch = base
        var second = TimeseriesFrame(timestamps: (0..<5).map { Int64(10 + $0) * ms })
        second["speed"] = NumericColumn(values: (0..<5).map { 100 + Double($0) })
        second.setStrings("label", (0..<5).map { "row-\($0)" })
        second.setBinary("blob", (0..<5).map { [UInt8](repeating: UInt8($0), count: $0 + 1) })
        second.setTags("lap", (0..<5).map { "\($0)" })
        try await stream.publish(second)
        try await stream.close()
    case "buffered":
        let packet = try producer.createStream("buffered-packet")
        packet.configureBuffer(TimeseriesBufferConfiguration(packetSize: 3))
        for index in 0..<7 {
            try await packet.addTimestamp(nanoseconds: base + Int64(index) * 10 * ms)
                .addValue("v", Double(index)).addValue("s", "r\(index)").addTag("row", "\(index)").publish()
        }
        try await packet.close()
        let span = try producer.createStream("buffered-span")
        span.configureBuffer(TimeseriesBufferConfiguration(timeSpan: .milliseconds(100)))
        for offset in [0, 30, 60, 100, 130, 250, 260] {
            try await span.addTimestamp(nanoseconds: base + Int64(offset) * ms).addValue("v", Double(offset)).publish()
        }
        try await span.close()
    case "events":
        let stream = try producer.createStream("events-1")
        try await stream.addEvent(atNanoseconds: base).addValue("door", "open").publish()
        try await stream.addEvent(atNanoseconds: base + ms).addValue("door", "closed").addValue("horn", "beep")
            .addTag("who", "bob").addTag("seat", "1").publish()
        try await stream.publish([EventData(id: "note", timestamp: base + 2 * ms, value: #"{"json": true, "text": "é"}"#, tags: ["k": "v"])])
        try await stream.close()
    case "interleaved":
        let streams = try ["interleaved-A", "interleaved-B", "interleaved-C"].map { try producer.createStream($0) }
        for round in 0..<3 {
            for (index, stream) in streams.enumerated() {
                try await stream.addTimestamp(nanoseconds: base + Int64(round) * ms)
                    .addValue("v", Double(10 * index + round)).addTag("round", "\(round)").publish()
                try await stream.addEvent(atNanoseconds: base + Int64(round) * ms).addValue("tick", "\(index)/\(round)").publish()
            }
        }
        for stream in streams { try await stream.close() }
    case "close":
        for (name, end) in [("closed", StreamEndType.closed), ("aborted", .aborted), ("terminated", .terminated)] {
            let stream = try producer.createStream("close-\(name)")
            try await stream.addTimestamp(nanoseconds: base).addValue("v", 1.0).publish()
            try await stream.close(end)
        }
    case "large":
        let stream = try producer.createStream("large-1")
        try await stream.addTimestamp(nanoseconds: base).addValue("small", 1.0).publish()
        var big = TimeseriesFrame(timestamps: [base + ms])
        big.setBinary("big", [(0..<3_000_000).map { UInt8($0 % 251) }])
        try await stream.publish(big)
        try await stream.addTimestamp(nanoseconds: base + 2 * ms).addValue("small", 2.0).publish()
        try await stream.close()
    default:
        Issue.record("no library version of scenario \(name)")
    }
}

/// What the library's consumer handlers saw.
private final class Collected: Sendable {
    let view = Mutex([String: [String]]())
    let closed = Mutex(0)
    let failures = Mutex([String]())

    func add(_ model: QuixModel, _ stream: StreamConsumer) throws {
        let lines = try render(model, stream: stream.streamID)
        view.withLock { $0[stream.streamID, default: []] += lines }
    }
}

/// What this library's topic consumer reports for `topic`, rendered as q05.py renders the
/// reference consumer's callbacks, per stream in callback order. Stops once `streams` streams
/// have ended with a StreamEnd.
func libraryView(_ cluster: MockCluster, topic: String, streams: Int) async throws -> [String: [String]] {
    let client = KafkaStreamingClient(brokers: cluster.bootstrapServers)
    let consumer = try TopicConsumer(client: client, topic: topic, group: "g-\(UUID().uuidString.prefix(8))", startFrom: .earliest)
    let collected = Collected()
    consumer.onStreamReceived { stream in
        stream.onPropertiesChanged { stream, properties in try collected.add(.streamProperties(properties), stream) }
        stream.onParameterDefinitionsChanged { stream, definitions in try collected.add(.parameterDefinitions(definitions), stream) }
        stream.onEventDefinitionsChanged { stream, definitions in try collected.add(.eventDefinitions(definitions), stream) }
        stream.onDataReceived { stream, data in try collected.add(.timeseries(data), stream) }
        stream.onEventReceived { stream, event in try collected.add(.eventData([event]), stream) }
        stream.onStreamClosed { stream, type in
            try collected.add(.streamEnd(type), stream)
            let count = collected.closed.withLock { count in
                count += 1
                return count
            }
            if count == streams { await consumer.close() }
        }
    }
    consumer.onError { error, context in collected.failures.withLock { $0.append("\(context): \(error)") } }
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await consumer.run() }
        group.addTask {
            try await Task.sleep(for: .seconds(60))
            Issue.record("\(topic): \(collected.closed.withLock { $0 }) of \(streams) streams closed within 60 s")
            await consumer.close()
        }
        try await group.next()
        group.cancelAll()
    }
    let failures = collected.failures.withLock { $0 }
    #expect(failures.isEmpty, "\(topic): \(failures)")
    return collected.view.withLock { $0 }
}
