// The "Producing time-series data" example of Quix Streams 0.5, in Swift: ParameterA, a sine
// wave, every 10 ms for 30 s (or --seconds), through a buffer that releases every 100 ms of
// data time; then the stream is closed.
//
//   swift run ProduceTimeseries --brokers 127.0.0.1:9092 --topic mytesttopic [--seconds 30]
import ArgumentParser
import Foundation
import QuixStreams

@main
struct ProduceTimeseries: AsyncParsableCommand {
    @Option(help: "Bootstrap servers.") var brokers: String
    @Option(help: "The topic to write.") var topic = "mytesttopic"
    @Option(help: "How long to send.") var seconds = 30.0
    @Option(help: "The stream id (a GUID when absent).") var stream: String?

    func run() async throws {
        let client = KafkaStreamingClient(brokers: brokers)
        let producer = try client.topicProducer(topic)
        let stream = try producer.createStream(self.stream)
        try stream.updateProperties { $0.name = "Hello World Swift stream" }
        try stream.addParameterDefinition(ParameterDefinition(id: "ParameterA", minimumValue: -1.2, maximumValue: 1.2))
        stream.configureBuffer(TimeseriesBufferConfiguration(timeSpan: .milliseconds(100)))

        print("Sending values for \(seconds) seconds to stream \(stream.streamID).")
        for index in 0..<Int(seconds * 100) {
            let now = Int64(Date().timeIntervalSince1970 * 1_000_000) * 1_000
            try await stream.addTimestamp(nanoseconds: now)
                .addValue("ParameterA", sin(Double(index) / 200) + sin(Double(index)) / 5)
                .publish()
            try await Task.sleep(for: .milliseconds(10))
        }
        print("Closing stream")
        try await stream.close()
        try await producer.close()
    }
}
