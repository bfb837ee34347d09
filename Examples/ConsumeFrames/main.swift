// The "Consuming time-series data" example of Quix Streams 0.5, in Swift: every time-series
// package of every stream, as a frame, printed; stops on Ctrl-C, or after --streams streams
// have closed.
//
//   swift run ConsumeFrames --brokers 127.0.0.1:9092 --topic mytesttopic --group empty-destination
import ArgumentParser
import QuixStreams
import Synchronization

@main
struct ConsumeFrames: AsyncParsableCommand {
    @Option(help: "Bootstrap servers.") var brokers: String
    @Option(help: "The topic to read.") var topic = "mytesttopic"
    @Option(help: "The consumer group.") var group = "empty-destination"
    @Option(help: "Stop after this many streams have closed.") var streams: Int?

    func run() async throws {
        let consumer = try TopicConsumer(
            client: KafkaStreamingClient(brokers: brokers), topic: topic, group: group, startFrom: .earliest)
        let closed = Mutex(0)
        let limit = streams
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { stream, frame in
                for row in 0..<frame.rowCount {
                    let values = frame.numeric.map { "\($0.key)=\($0.value[row].map { String($0) } ?? "-")" }.joined(separator: " ")
                    print("\(stream.streamID) \(frame.timestamps[row]) \(values)")
                }
            }
            stream.onStreamClosed { stream, type in
                print("\(stream.streamID) closed (\(type.rawValue))")
                let count = closed.withLock { count in
                    count += 1
                    return count
                }
                if let limit, count >= limit { await consumer.close() }  // run() then returns
            }
        }
        print("Listening to streams. Press CTRL-C to exit.")
        try await consumer.run()
    }
}
