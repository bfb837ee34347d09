import Foundation
import QuixKafka
import QuixPipeline
import QuixStreams

/// Rows of a sample CSV: a `stream` column (the stream id), a `timestamp` column (ns or
/// ISO-8601), numeric columns, and binary columns named `NAME:base64`; other texts are string
/// columns.
struct SampleData {
    var streams: [String: TimeseriesFrame] = [:]
    var order: [String] = []
    var rows = 0

    init(csv: String, file: String) throws {
        var lines = csv.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw SampleDataError("\(file): empty") }
        let header = lines.removeFirst().split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let streamIndex = header.firstIndex(of: "stream"), let timeIndex = header.firstIndex(of: "timestamp") else {
            throw SampleDataError("\(file):1: needs stream and timestamp columns")
        }
        var cells: [String: [[String]]] = [:]
        for (index, line) in lines.enumerated() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard fields.count == header.count else { throw SampleDataError("\(file):\(index + 2): \(fields.count) fields, the header has \(header.count)") }
            if cells[fields[streamIndex]] == nil { order.append(fields[streamIndex]) }
            cells[fields[streamIndex], default: []].append(fields)
        }
        for (stream, rows) in cells {
            var frame = TimeseriesFrame(timestamps: try rows.map { fields in
                guard let time = MessageFormats.timestamp(fields[timeIndex]) else { throw SampleDataError("\(file): bad timestamp \"\(fields[timeIndex])\"") }
                return time
            })
            for (column, name) in header.enumerated() where column != streamIndex && column != timeIndex {
                let values = rows.map { $0[column] }
                if name.hasSuffix(":base64") {
                    frame.setBinary(String(name.dropLast(7)), values.map { $0.isEmpty ? nil : Data(base64Encoded: $0).map(Array.init) })
                } else if values.allSatisfy({ $0.isEmpty || Double($0) != nil }) {
                    frame[name] = NumericColumn(values.map { Double($0) })
                } else {
                    frame.setStrings(name, values.map { $0.isEmpty ? nil : $0 })
                }
            }
            streams[stream] = frame
            self.rows += rows.count
        }
    }

    /// Writes the rows, ten per message in the Quix format (one per message otherwise).
    func produce(to topic: String, format: Pipeline.DataFormat, client: KafkaStreamingClient) async throws -> Int {
        if format == .quix {
            let producer = try client.topicProducer(topic)
            for id in order {
                let stream = try producer.getOrCreateStream(id)
                try stream.updateProperties { $0.name = "vehicle \(id)" }
                let frame = streams[id]!
                for name in frame.numeric.keys { try stream.addParameterDefinition(ParameterDefinition(id: name, name: name)) }
                for start in stride(from: 0, to: frame.rowCount, by: 10) {
                    try await stream.publish(frame.rows(Array(start..<min(start + 10, frame.rowCount))))
                }
            }
            try await producer.close()
        } else {
            let producer = try KafkaProducer(settings: ProducerSettings(client: client.settings))
            for id in order {
                let frame = streams[id]!
                let values = format == .json ? MessageFormats.encodeJSON(frame).map(Optional.some) : MessageFormats.encodeRaw(frame)
                for value in values { try await producer.send(OutgoingMessage(topic: topic, key: Array(id.utf8), value: value)) }
            }
            try await producer.flush()
            await producer.close()
        }
        return rows
    }
}

/// A sample CSV that cannot be read: the file (and line) and what is wrong.
struct SampleDataError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}
