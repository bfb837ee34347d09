import OrderedCollections
import QuixProtocol
import Testing

@Suite("the json message format")
struct JSONRowCodecTests {
    private func decode(_ text: String, kafka: Int64? = 7) throws(QuixProtocolError) -> DecodedMessage {
        try JSONRowCodec.decode(Array(text.utf8)[...], kafkaTimestampMilliseconds: kafka) { $0 == "iso" ? 42 : nil }
    }

    private func frame(_ text: String, kafka: Int64? = 7) throws -> TimeseriesFrame {
        guard case .frame(let frame) = try decode(text, kafka: kafka) else {
            Issue.record("not a frame: \(text)")
            return TimeseriesFrame()
        }
        return frame
    }

    @Test("a row: numbers, booleans, texts, nulls and tags become one row's cells; the timestamp as ns, text or the Kafka time")
    func row() throws {
        let row = try frame(#"{"x": 1.5, "on": true, "off": false, "name": "a\"b", "gone": null, "tags": {"car": "c1"}, "timestamp": 100}"#)
        #expect(row.timestamps == [100])
        #expect(row["x"]?[0] == 1.5 && row["on"]?[0] == 1 && row["off"]?[0] == 0)
        #expect(row["gone"] != nil && row["gone"]?[0] == nil, "null is a missing cell of a numeric column")
        #expect(row.strings["name"] == [#"a"b"#])
        #expect(row.tags["car"] == ["c1"])
        #expect(Array(row.numeric.keys) == ["gone", "off", "on", "x"], "columns in name order")
        #expect(try frame(#"{"timestamp": "iso", "x": 1}"#).timestamps == [42])
        #expect(try frame(#"{"x": 1}"#, kafka: 7).timestamps == [7_000_000], "no timestamp: the Kafka timestamp in ns")
        #expect(try frame(#"{"timestamp": null, "x": 1}"#, kafka: 3).timestamps == [3_000_000])
    }

    @Test("an object with a text event is an event; its value is the text, or the JSON text of any other value")
    func event() throws {
        #expect(
            try decode(#"{"event": "door", "value": "open", "tags": {"b": "2", "a": "1"}, "timestamp": 5}"#)
                == .model(.eventData([EventData(id: "door", timestamp: 5, value: "open", tags: ["a": "1", "b": "2"])])))
        #expect(try decode(#"{"event": "n", "value": 12.50, "timestamp": 5}"#) == .model(.eventData([EventData(id: "n", timestamp: 5, value: "12.50")])))
        #expect(
            try decode(#"{"event": "o", "value": {"a": [1, 2]}, "timestamp": 5}"#)
                == .model(.eventData([EventData(id: "o", timestamp: 5, value: #"{"a": [1, 2]}"#)])))
    }

    @Test("bad input is refused with what was wrong, deep nesting included")
    func refused() {
        let cases: [(String, String)] = [
            (#"[1, 2]"#, "expected a JSON object"),
            (#"{"x": [1]}"#, #""x" must be a number, a boolean, a text or null"#),
            (#"{"timestamp": "soon"}"#, "is not ISO-8601 or ns"),
            (#"{"timestamp": 1.5}"#, ""),
            (#"{"tags": {"a": 1}}"#, #"tag "a" must be a text"#),
            (#"{"tags": [1]}"#, #""tags" must be an object of texts"#),
            (#"{"x": 1"#, ""),
            (#"{"x": 1} trailing"#, ""),
            (String(repeating: #"{"a":"#, count: 5_000) + "1" + String(repeating: "}", count: 5_000), "nesting"),
        ]
        for (text, message) in cases {
            let error = #expect(throws: QuixProtocolError.self, "\(text.prefix(30))") { try decode(text) }
            #expect(error?.description.contains(message) == true, "\(text.prefix(30)): \(String(describing: error))")
        }
        let noTime = #expect(throws: QuixProtocolError.self) { try decode(#"{"x": 1}"#, kafka: nil) }
        #expect(noTime?.code == .missingMember)
    }

    @Test("rows are written one object each, members in name order, doubles that read back exactly, binary as base64, missing cells as null")
    func write() throws {
        var frame = TimeseriesFrame(timestamps: [1, 2])
        frame["x"] = [0.1, nil]
        frame["n"] = [3, 1e300]
        frame.setStrings("s", ["é\n", nil])
        frame.setBinary("b", [[1, 2, 3], nil])
        frame.setTags("car", ["c1", nil])
        let rows = JSONRowCodec.encode(frame).map { String(decoding: $0, as: UTF8.self) }
        #expect(
            rows == [
                #"{"b":"AQID","n":3.0,"s":"é\n","tags":{"car":"c1"},"timestamp":1,"x":0.1}"#,
                #"{"b":null,"n":1E+300,"s":null,"timestamp":2,"x":null}"#,
            ])
        for (index, row) in JSONRowCodec.encode(frame).enumerated() {
            let back = try self.frame(String(decoding: row, as: UTF8.self))
            #expect(back.timestamps == [frame.timestamps[index]])
            #expect(back["x"]?[0] == frame["x"]?[index] && back["n"]?[0] == frame["n"]?[index], "numbers read back exactly")
        }
        let event = EventData(id: "e", timestamp: 9, value: "v", tags: ["t": "1"])
        #expect(String(decoding: JSONRowCodec.encode(event), as: UTF8.self) == #"{"event":"e","tags":{"t":"1"},"timestamp":9,"value":"v"}"#)
        #expect(try decode(String(decoding: JSONRowCodec.encode(event), as: UTF8.self)) == .model(.eventData([event])))
    }
}
