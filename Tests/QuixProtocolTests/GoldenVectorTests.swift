import Foundation
import OrderedCollections
import QuixProtocol
import QuixTestSupport
import Testing

@Suite("golden vectors of quixstreams 0.5.7")
struct GoldenVectorTests {
    @Test("every message decodes, and re-encodes from its model to the identical bytes", arguments: Vectors.files)
    func reencodesIdentically(file: String) throws {
        let messages = try Vectors.messages(file)
        #expect(!messages.isEmpty)
        for message in messages {
            let reading = try TransportPackage.decode(message.value[...])
            guard case .package(let package) = reading else {
                Issue.record("\(file) offset \(message.record.offset): not a package")
                continue
            }
            guard case .model(let model) = try QuixCodec.decode(package) else {
                Issue.record("\(file) offset \(message.record.offset): not a known model")
                continue
            }
            let setting: TimeseriesCodec =
                package.format == .binary ? .protobuf : package.codec == CodecID.compactJSON ? .compactJSON : .json
            let encoded = QuixCodec.encode(model, timeseriesCodec: setting)
            #expect(encoded == message.value, "\(file) offset \(message.record.offset): \(String(decoding: encoded.prefix(400), as: UTF8.self))")
            if message.parts.count > 1 {
                let id = MessageSplit.header(of: message.parts[0][...])!.messageID
                #expect(try MessageSplit.split(encoded, messageID: id) == message.parts, "\(file): the parts differ")
            }
        }
    }

    @Test("basic: properties, definitions, data and end mean what the scenario wrote")
    func basicMeaning() throws {
        let models = try Vectors.models("basic").map(\.model)
        #expect(models.count == 6)
        guard case .streamProperties(let properties) = models[0] else { Issue.record("0 is no properties"); return }
        #expect(properties.name == "Basic stream")
        #expect(properties.location == "/vehicles/car-1")
        #expect(Array(properties.metadata.keys) == ["driver", "lap"] && properties.metadata["lap"] == "3")
        #expect(properties.parents == ["parent-stream-1"])
        #expect(properties.timeOfRecording == "2023-01-02T03:04:05")
        guard case .parameterDefinitions(let definitions) = models[1] else { Issue.record("1 is no definitions"); return }
        #expect(definitions.parameters.map(\.id) == ["speed", "label"])
        #expect(definitions.parameters[0].minimumValue == 0 && definitions.parameters[0].maximumValue == 400)
        #expect(definitions.parameters[0].unit == "km/h" && definitions.parameters[0].format == "{0:0.0}")
        #expect(definitions.parameters[0].customProperties == #"{"c":1}"#)
        #expect(definitions.parameterGroups.first?.name == "chassis")
        #expect(definitions.parameterGroups.first?.childGroups.first?.parameters.map(\.id) == ["rpm", "gear"])
        guard case .eventDefinitions(let events) = models[2] else { Issue.record("2 is no event definitions"); return }
        #expect(events.events.map(\.level) == [.critical, nil], "trace is not written")
        #expect(events.events.map(\.effectiveLevel) == [.critical, .information], "an absent level reads as information")
        #expect(events.eventGroups.first?.events.first?.id == "lap_start")
        guard case .timeseries(let data) = models[3] else { Issue.record("3 is no data"); return }
        #expect(data.timestamps == [1_700_000_000_000_000_000])
        #expect(data.numericValues["speed"] == [123.5] && data.numericValues["rpm"] == [9000])
        #expect(data.stringValues["label"] == ["hello é中"])
        #expect(data.binaryValues["blob"] == [[0, 1, 2, 250, 255]])
        #expect(data.tagValues["driver"] == ["Alice"] && data.tagValues["team"] == ["red"])
        #expect(models[5] == .streamEnd(.closed))
    }

    @Test("timeseries variants: NaN and infinities, nulls, an explicit epoch")
    func variants() throws {
        let models = try Vectors.models("timeseries_variants").filter { $0.stream == "stream-variants" }
        let data = models.compactMap { if case .timeseries(let data) = $0.model { data } else { nil } }
        try #require(data.count == 2)
        let first = data[0]
        #expect(first.numericValues["a"]?[2]?.isNaN == true)
        #expect(first.numericValues["a"]?[3] == .infinity && first.numericValues["b"]?[3] == -.infinity)
        #expect(first.numericValues["b"]?[0] == nil)
        #expect(first.stringValues["s"] == ["x", nil, "", nil])
        #expect(first.tagValues["only"] == [nil, nil, nil, nil])
        #expect(data[1].epoch == 1_700_000_000_000_000_000 && data[1].timestamps == [0, 5_000_000, 10_000_000])
        #expect(data[1].binaryValues["bin"] == [[1, 2], nil, []])
    }

    @Test("the three codecs carry the same timeseries data")
    func codecsAgree() throws {
        func timeseries(_ file: String) throws -> TimeseriesData {
            try Vectors.models(file).compactMap { if case .timeseries(let data) = $0.model { data } else { nil } }.first!
        }
        let json = try timeseries("codec_json_explicit")
        #expect(try timeseries("codec_compact_json") == json)
        #expect(try timeseries("codec_protobuf") == json)
        #expect(json.numericValues["a"] == [1.5, 2.5, nil, 2.0])
        #expect(json.stringValues["s"] == ["x", "x", "y", nil])
    }

    @Test("events: one message per publish, with every value of a builder")
    func events() throws {
        let batches = try Vectors.models("events").compactMap { if case .eventData(let events) = $0.model { events } else { nil } }
        #expect(batches.map(\.count) == [1, 2, 1])
        #expect(batches[1].map(\.id) == ["door", "horn"] && batches[1].allSatisfy { $0.tags["who"] == "bob" })
        #expect(batches[2][0].value == #"{"json": true}"#)
    }

    @Test("close types and the 3 MB split value")
    func closeAndSplit() throws {
        let ends = try Vectors.models("close_types").compactMap { entry -> (String, StreamEndType)? in
            if case .streamEnd(let type) = entry.model { (entry.stream, type) } else { nil }
        }
        #expect(Dictionary(uniqueKeysWithValues: ends) == ["stream-closed": .closed, "stream-aborted": .aborted, "stream-terminated": .terminated])
        let big = try Vectors.models("split").compactMap { if case .timeseries(let data) = $0.model { data.binaryValues["big"] } else { nil } }
        #expect(big.count == 1)
        let value = try #require(big.first?.first ?? nil)
        #expect(value.count == 3_000_000)
        let expected = (0..<3_000_000).map { UInt8($0 % 251) }
        // Compared by first difference: Swift Testing's diff of two 3 MB arrays is too slow.
        let firstDifference = value.indices.first { value[$0] != expected[$0] }
        #expect(firstDifference == nil, "the merged value differs from byte \(firstDifference ?? -1)")
    }
}
