// The "Support for stateful processing" example of Quix Streams 0.5, in Swift: a running sum of
// gForceX per stream, kept in the stream's state, written back as the column gForceX_sum. The
// state lives in LMDB under --state-dir and is checkpointed with the input offsets, so a
// restart (or a crash) neither loses nor double-counts a row.
//
//   swift run RunningSum --brokers B --input in --output out --group g --state-dir ./state
//   (as a bench peer, W2 of the shared harness, it reads BOOTSTRAP, IN_TOPIC, OUT_TOPIC, GROUP and
//   STATE_DIR from the environment and sums gForceX itself: pass --signed)
import ArgumentParser
import Foundation
import QuixStreams
import Synchronization

@main
struct RunningSum: AsyncParsableCommand {
    private static let environment = ProcessInfo.processInfo.environment

    @Option(help: "Bootstrap servers.") var brokers = environment["BOOTSTRAP"] ?? "127.0.0.1:9092"
    @Option(help: "The topic to read.") var input = environment["IN_TOPIC"] ?? "in"
    @Option(help: "The topic to write.") var output = environment["OUT_TOPIC"] ?? "out"
    @Option(help: "The consumer group.") var group = environment["GROUP"] ?? "running-sum"
    @Option(help: "The state directory.") var stateDir = environment["STATE_DIR"] ?? "state"
    @Option(help: "Commit (and checkpoint the state) after this many packages.") var commitEvery = 5_000
    @Flag(help: "Sum gForceX as it is, not its absolute value (the README sums absolute values).") var signed = false
    @Option(name: .customLong("kafka"), help: "A librdkafka property, key=value (repeatable).") var kafkaProperties: [String] = []
    @Flag(help: "Keep the sums in memory, not in the state store: not durable; it measures what the state costs.")
    var inMemory = false

    func validate() throws {
        for property in kafkaProperties where !property.contains("=") {
            throw ValidationError("--kafka expects key=value, found \(property)")
        }
    }

    func run() async throws {
        let properties = kafkaProperties
        let client = KafkaStreamingClient(brokers: brokers) { settings in
            for property in properties {
                let parts = property.split(separator: "=", maxSplits: 1).map(String.init)
                settings.librdkafka[parts[0]] = parts[1]
            }
        }
        let producer = try client.topicProducer(output)
        let consumer = try TopicConsumer(
            client: client, topic: input, group: group, startFrom: .earliest,
            commit: CommitOptions(everyPackages: commitEvery, interval: .seconds(5)),
            state: inMemory ? nil : StateOptions(directory: stateDir))
        let (signed, inMemory) = (signed, inMemory)
        let memory = Mutex([String: Double]())
        consumer.onStreamReceived { stream in
            stream.onFrameReceived { stream, frame in
                guard let values = frame["gForceX"] else { return }
                let state = inMemory ? nil : try stream.state()
                var sum = try state?.get("gForceX_sum", default: 0.0) ?? memory.withLock { $0[stream.streamID, default: 0] }
                var sums: [Double?] = []
                for value in values {
                    if let value { sum += signed ? value : abs(value) }
                    sums.append(sum)
                }
                if let state { state.set("gForceX_sum", sum) } else { memory.withLock { $0[stream.streamID] = sum } }
                var enriched = frame
                enriched["gForceX_sum"] = NumericColumn(sums)
                try await producer.getOrCreateStream(stream.streamID).publish(enriched)
            }
        }
        // Output first, offsets second: what a commit covers has reached the output topic.
        consumer.onCommitting { _, _ in try await producer.flush() }
        consumer.onError { error, context in FileHandle.standardError.write(Data("\(context): \(error)\n".utf8)) }
        try await consumer.run()
        try await producer.close()
    }
}
