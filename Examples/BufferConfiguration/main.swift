// The "Built-in time-series buffers" example of Quix Streams 0.5, in Swift: read a topic through
// a buffer that releases every 100 rows or 100 ms of data time, whichever comes first, and
// write each released frame to the same stream of an output topic.
//
//   swift run BufferConfiguration --brokers 127.0.0.1:9092 --input mytesttopic --output buffered
import ArgumentParser
import QuixStreams
import Synchronization

@main
struct BufferConfiguration: AsyncParsableCommand {
    @Option(help: "Bootstrap servers.") var brokers: String
    @Option(help: "The topic to read.") var input = "mytesttopic"
    @Option(help: "The topic to write.") var output = "buffered"
    @Option(help: "The consumer group.") var group = "buffer-example"
    @Option(help: "Stop after this many streams have closed.") var streams: Int?

    func run() async throws {
        let client = KafkaStreamingClient(brokers: brokers)
        let producer = try client.topicProducer(output)
        let consumer = try TopicConsumer(client: client, topic: input, group: group, startFrom: .earliest)
        let closed = Mutex(0)
        let stop = streams
        consumer.onStreamReceived { stream in
            let buffer = stream.createBuffer(TimeseriesBufferConfiguration(packetSize: 100, timeSpan: .milliseconds(100)))
            buffer.onReleased { stream, frame in
                print("\(stream.streamID): released \(frame.rowCount) rows")
                try await producer.getOrCreateStream(stream.streamID).publish(frame)
            }
            stream.onStreamClosed { stream, type in
                try await producer.getOrCreateStream(stream.streamID).close(type)
                let count = closed.withLock { count in
                    count += 1
                    return count
                }
                if let stop, count >= stop { await consumer.close() }
            }
        }
        try await consumer.run()
        try await producer.close()
    }
}
