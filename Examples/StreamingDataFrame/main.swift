// The "What's Next" example of the Quix Streams 0.5 README, in Swift: a projection, a column
// computed from three others, its rolling mean over the last 10 minutes of each stream, and a
// loop that writes every row on. The rolling window is kept in the stream's state (LMDB under
// --state-dir), checkpointed with the input offsets and restored after a restart, with no code
// here for it; a row's offset commits once the loop has written it.
//
//   swift run StreamingDataFrame --brokers B --input telemetry --output g-force --state-dir ./state
import ArgumentParser
import Foundation
import QuixDataFrames
import QuixStreams

@main
struct StreamingDataFrameExample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "StreamingDataFrame")

    @Option(help: "Bootstrap servers.") var brokers = "127.0.0.1:9092"
    @Option(help: "The topic to read.") var input = "telemetry"
    @Option(help: "The topic to write.") var output = "g-force"
    @Option(help: "The consumer group.") var group = "g-force"
    @Option(help: "The state directory.") var stateDir = "state"
    @Option(help: "Only rows whose gForceTotal is above this.") var above = 0.0

    func run() async throws {
        let client = KafkaStreamingClient(brokers: brokers)
        let producer = try client.topicProducer(output)
        let consumer = try TopicConsumer(
            client: client, topic: input, group: group, startFrom: .earliest,
            commit: CommitOptions(everyPackages: 1_000, interval: .seconds(5)), state: StateOptions(directory: stateDir))
        let above = above
        consumer.onStreamReceived { consumerStream in
            // Create a projection for the columns we need.
            var df = consumerStream.dataFrame()
            df = df[["gForceX", "gForceY", "gForceZ"]]
            // A new feature from three columns.
            df["gForceTotal"] = df["gForceX"].abs() + df["gForceY"].abs() + df["gForceZ"].abs()
            // Its rolling mean over the last 10 minutes of the stream's data.
            df["gForceTotal_avg10m"] = df["gForceTotal"].rolling(.minutes(10)).mean()
            df = df[df["gForceTotal"] > above]
            // Loop through the stream row by row as data flows through the service.
            Task {
                do {
                    let producerStream = try producer.getOrCreateStream(consumerStream.streamID)
                    for try await row in df {
                        print(row.streamID, row.timestamp, row["gForceTotal"]!, row["gForceTotal_avg10m"]!)
                        try await producerStream.publish(TimeseriesFrame([row]))
                    }
                } catch {
                    FileHandle.standardError.write(Data("\(consumerStream.streamID): \(error)\n".utf8))
                }
            }
        }
        // Output first, offsets second: what a commit covers has reached the output topic.
        consumer.onCommitting { _, _ in try await producer.flush() }
        consumer.onError { error, context in FileHandle.standardError.write(Data("\(context): \(error)\n".utf8)) }
        try await consumer.run()
        try await producer.close()
    }
}
