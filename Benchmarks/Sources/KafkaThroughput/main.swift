// Produce or consume N messages of a fixed size through QuixKafka and print the rate as JSON.
//
//   KafkaThroughput produce BROKERS TOPIC COUNT SIZE
//   KafkaThroughput consume BROKERS TOPIC COUNT
//
// produce: from the first send until the last delivery report (flush), every message keyed by one
// of 10,000 stream ids and tagged, its report counted by the producer's delivery handler, as an
// application that tracks acks would.
// consume: from assignment until COUNT messages have been handed to the application, reading
// every partition of TOPIC from the beginning.
import Foundation
import QuixKafka
import Synchronization

let arguments = CommandLine.arguments
guard arguments.count >= 5, let count = Int(arguments[4]) else {
    print("usage: KafkaThroughput produce|consume BROKERS TOPIC COUNT [SIZE]")
    exit(2)
}
let (mode, brokers, topic) = (arguments[1], arguments[2], arguments[3])
let clock = ContinuousClock()

func report(_ elapsed: Duration, bytes: Int, extra: String = "") {
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print(#"{"client":"quixkafka","mode":"\#(mode)","messages":\#(count),"seconds":\#(seconds),"msgs_per_s":\#(Int(Double(count) / seconds)),"mb_per_s":\#(Double(bytes) / seconds / 1e6)\#(extra)}"#)
}

switch mode {
case "produce":
    let size = arguments.count > 5 ? Int(arguments[5]) ?? 100 : 100
    let failures = Atomic(0)
    let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [brokers])) { report in
        if !report.isDelivered { failures.add(1, ordering: .relaxed) }
    }
    let payload = [UInt8](repeating: UInt8(ascii: "x"), count: size)
    let keys = (0..<10_000).map { Array("stream-\($0)".utf8) }  // as kcat's input lines
    let start = clock.now
    for index in 0..<count {
        try await producer.send(OutgoingMessage(topic: topic, key: keys[index % keys.count], value: payload), tag: UInt64(index))
    }
    try await producer.flush(timeout: .seconds(120))
    let elapsed = clock.now - start
    guard failures.load(ordering: .relaxed) == 0 else {
        print("\(failures.load(ordering: .relaxed)) messages failed")
        exit(1)
    }
    report(elapsed, bytes: count * size, extra: #","queue_full_waits":\#(producer.queueFullWaits)"#)
case "consume":
    let admin = try KafkaAdmin(settings: AdminSettings(bootstrapServers: [brokers]))
    guard let metadata = try await admin.metadata(topic: topic).first else {
        print("topic \(topic) not found")
        exit(1)
    }
    var settings = ConsumerSettings(bootstrapServers: [brokers], group: nil)
    settings.maxBatch = 10_000
    settings.maxBufferedMessages = 100_000
    settings.prefetchKilobytes = 65_536
    let consumer = try KafkaConsumer(settings: settings)
    let start = clock.now
    try consumer.assign(metadata.partitions.map { TopicPartitionOffset(topic, $0.id, offset: KafkaOffset.beginning) })
    var received = 0
    var bytes = 0
    for await event in consumer.events {
        if case .messages(let batch) = event {
            received += batch.count
            for message in batch { bytes += message.value?.count ?? 0 }
            if received >= count { break }
        }
    }
    report(clock.now - start, bytes: bytes)
    await consumer.close()
default:
    print("unknown mode \(mode)")
    exit(2)
}
