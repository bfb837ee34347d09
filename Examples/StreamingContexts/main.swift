// The "Streaming contexts" example of Quix Streams 0.5, in Swift: one stream, bus-123AAAV, with
// its properties, buffered Lat/Long time-series and a driver_bell event every 200 rows, all in
// order on one partition; then the stream is closed.
//
//   swift run StreamingContexts --brokers 127.0.0.1:9092 --topic data [--rows 1000]
import ArgumentParser
import Foundation
import QuixStreams

@main
struct StreamingContexts: AsyncParsableCommand {
    @Option(help: "Bootstrap servers.") var brokers: String
    @Option(help: "The topic to write.") var topic = "data"
    @Option(help: "Rows to send.") var rows = 1_000

    func run() async throws {
        let producer = try KafkaStreamingClient(brokers: brokers).topicProducer(topic)
        let stream = try producer.createStream("bus-123AAAV")
        try stream.updateProperties {
            $0.name = "Bus 123 AAAV"
            $0.location = "/transport/buses"
            $0.metadata = ["route": "123", "operator": "city"]
        }
        try stream.addParameterDefinition(ParameterDefinition(id: "Lat", unit: "deg"), location: "/position")
        try stream.addParameterDefinition(ParameterDefinition(id: "Long", unit: "deg"), location: "/position")
        try stream.addEventDefinition(EventDefinition(id: "driver_bell", name: "Driver bell", level: .information))
        stream.configureBuffer(TimeseriesBufferConfiguration(packetSize: 100))
        let start = Int64(Date().timeIntervalSince1970) * 1_000_000_000
        for index in 0..<rows {
            let time = start + Int64(index) * 10_000_000
            try await stream.addTimestamp(nanoseconds: time)
                .addValue("Lat", sin(Double(index) / 100) + sin(Double(index)) / 5)
                .addValue("Long", sin(Double(index) / 200) + sin(Double(index)) / 5)
                .publish()
            if index % 200 == 0 {
                try await stream.addEvent(atNanoseconds: time).addValue("driver_bell", "Doors 3 bell activated by passenger").publish()
            }
        }
        try await stream.close()
        try await producer.close()
        print("Sent \(rows) rows and \((rows + 199) / 200) events to bus-123AAAV")
    }
}
