// The speeding-camera example of Quix Streams 0.5, in Swift.
//
// `camera` writes a vehicle's telemetry: speed and a camera frame (binary) per row.
// `tickets` reads telemetry and, for each frame with a row above the limit, publishes a
// "ticket" event on the vehicle's stream of the output topic: a JSON document with the vehicle,
// time, speed, fine and the photo of the fastest moment (base64).
//
//   swift run SpeedingCamera camera --brokers B --topic telemetry --vehicle car-7 [--rows 50]
//   swift run SpeedingCamera tickets --brokers B --input telemetry --output tickets [--limit 130]
import ArgumentParser
import Foundation
import QuixStreams
import Synchronization

@main
struct SpeedingCamera: AsyncParsableCommand {
    static let configuration = CommandConfiguration(subcommands: [Camera.self, Tickets.self])
}

struct Camera: AsyncParsableCommand {
    @Option(help: "Bootstrap servers.") var brokers: String
    @Option(help: "The topic to write.") var topic = "telemetry"
    @Option(help: "The vehicle (stream id).") var vehicle = "car-7"
    @Option(help: "Rows to send.") var rows = 50

    func run() async throws {
        let producer = try KafkaStreamingClient(brokers: brokers).topicProducer(topic)
        let stream = try producer.createStream(vehicle)
        stream.configureBuffer(TimeseriesBufferConfiguration(packetSize: 10))
        let start: Int64 = 1_700_000_000_000_000_000
        for index in 0..<rows {
            let speed = 100 + 40 * sin(Double(index) / 8)  // peaks at 140 km/h
            let photo = Array("frame-\(index)".utf8)  // stands in for a JPEG
            try await stream.addTimestamp(nanoseconds: start + Int64(index) * 100_000_000)
                .addValue("speed", speed).addValue("camera_frame", photo).publish()
        }
        try await stream.close()
        try await producer.close()
        print("Sent \(rows) rows of \(vehicle)")
    }
}

struct Tickets: AsyncParsableCommand {
    @Option(help: "Bootstrap servers.") var brokers: String
    @Option(help: "The telemetry topic.") var input = "telemetry"
    @Option(help: "The topic for tickets.") var output = "tickets"
    @Option(help: "The consumer group.") var group = "speeding-camera"
    @Option(help: "Speed limit, km/h.") var limit = 130.0
    @Option(help: "Stop after this many streams have closed.") var streams: Int?

    func run() async throws {
        let client = KafkaStreamingClient(brokers: brokers)
        let tickets = try client.topicProducer(output)
        let consumer = try TopicConsumer(client: client, topic: input, group: group, startFrom: .earliest)
        let (limit, stop) = (self.limit, streams)
        let closed = Counter()
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { stream, frame in
                guard let speed = frame["speed"] else { return }
                let speeding = frame.filter(speed > limit)
                guard let fastest = speeding["speed"].flatMap({ column in column.indices.max { (column[$0] ?? 0) < (column[$1] ?? 0) } })
                else { return }
                let top = speeding["speed"]![fastest]!
                let time = speeding.timestamps[fastest]
                let ticket: [String: Any] = [
                    "vehicle": stream.streamID, "time": time, "speed": top, "fine": (top - limit) * 100,
                    "photo_proof": Data(speeding.binary["camera_frame"]?[fastest] ?? []).base64EncodedString(),
                ]
                let document = String(decoding: try JSONSerialization.data(withJSONObject: ticket, options: .sortedKeys), as: UTF8.self)
                try await tickets.getOrCreateStream(stream.streamID).addEvent(atNanoseconds: time).addValue("ticket", document).publish()
                print("ticket \(document)")
            }
            stream.onStreamClosed { stream, _ in
                try await tickets.getOrCreateStream(stream.streamID).close()
                if let stop, closed.increment() >= stop { await consumer.close() }
            }
        }
        try await consumer.run()
        try await tickets.close()
    }
}

/// A thread-safe count.
final class Counter: Sendable {
    private let value = Mutex(0)
    func increment() -> Int { value.withLock { $0 += 1; return $0 } }
}
