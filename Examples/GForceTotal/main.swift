// The "Support for DataFrames" pattern of Quix Streams 0.5, in Swift: read each time-series
// package as a frame, add a column with frame arithmetic, and publish it on the same stream of
// another topic. With the shared bench harness it is the W1 workload
// (gForceTotal = |gForceX| + |gForceY| + |gForceZ|).
//
//   swift run -c release GForceTotal --brokers B --input in --output out --group g
//   (as a bench peer it reads BOOTSTRAP, IN_TOPIC, OUT_TOPIC and GROUP from the environment)
import ArgumentParser
import Foundation
import QuixStreams

@main
struct GForceTotal: AsyncParsableCommand {
    private static let environment = ProcessInfo.processInfo.environment

    @Option(help: "Bootstrap servers.") var brokers = environment["BOOTSTRAP"] ?? "127.0.0.1:9092"
    @Option(help: "The topic to read.") var input = environment["IN_TOPIC"] ?? "in"
    @Option(help: "The topic to write.") var output = environment["OUT_TOPIC"] ?? "out"
    @Option(help: "The consumer group.") var group = environment["GROUP"] ?? "gforce-total"

    func run() async throws {
        let client = KafkaStreamingClient(brokers: brokers)
        let producer = try client.topicProducer(output)
        let consumer = try TopicConsumer(client: client, topic: input, group: group, startFrom: .earliest)
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { stream, frame in
                guard let x = frame["gForceX"], let y = frame["gForceY"], let z = frame["gForceZ"] else { return }
                var enriched = frame
                enriched["gForceTotal"] = x.abs() + y.abs() + z.abs()
                try await producer.getOrCreateStream(stream.streamID).publish(enriched)
            }
        }
        consumer.onError { error, context in FileHandle.standardError.write(Data("\(context): \(error)\n".utf8)) }
        try await consumer.run()
    }
}
