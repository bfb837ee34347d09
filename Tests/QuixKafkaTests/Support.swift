import Foundation
import QuixKafka
import Synchronization
import Testing

/// A topic name no other test uses.
func uniqueTopic(_ prefix: String = "t") -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8))"
}

struct TimedOut: Error, CustomStringConvertible {
    var description: String
}

/// Runs `body` and fails with `TimedOut` if it has not finished within `limit`.
func withTimeout<T: Sendable>(
    _ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try? await Task.sleep(for: limit)
            return nil
        }
        defer { group.cancelAll() }
        guard case .some(.some(let value)) = try await group.next() else {
            throw TimedOut(description: "\(what): not done after \(limit)")
        }
        return value
    }
}

/// Waits, checking every 10 ms, until `condition` holds; fails after `limit`.
func eventually(
    _ limit: Duration = .seconds(30), _ what: String, _ condition: @Sendable () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + limit
    while clock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    throw TimedOut(description: "\(what): not true after \(limit)")
}

/// Consumes `consumer`'s events until `done` returns true for the messages seen so far.
/// Returns every message, in the order received.
func consume(
    _ consumer: KafkaConsumer, limit: Duration = .seconds(60), what: String = "consume",
    until done: @escaping @Sendable ([KafkaMessage]) -> Bool
) async throws -> [KafkaMessage] {
    try await withTimeout(limit, what) {
        var messages: [KafkaMessage] = []
        for await event in consumer.events {
            if case .messages(let batch) = event { messages += batch }
            if done(messages) { break }
        }
        return messages
    }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
func text(_ bytes: ArraySlice<UInt8>?) -> String { bytes.map { String(decoding: $0, as: UTF8.self) } ?? "<nil>" }

/// A thread-safe value for counters and records shared with delivery handlers.
final class Shared<Value: Sendable>: Sendable {
    private let state: Mutex<Value>
    init(_ value: Value) { state = Mutex(value) }
    func update<T>(_ body: (inout Value) -> T) -> T { state.withLock { body(&$0) } }
    var value: Value { state.withLock { $0 } }
}

/// CRC-32 (IEEE), the hash of librdkafka's `consistent_random` partitioner, written out here so
/// the test checks librdkafka's placement against an independent computation.
func crc32(_ data: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in data {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = (crc >> 1) ^ (0xEDB8_8320 & (0 &- (crc & 1))) }
    }
    return ~crc
}

/// Consumer settings for a fresh group on `cluster`. The session timeout is short because the
/// mock's group coordinator makes a joining member wait `session.timeout.ms - 1 s` whenever
/// the group is already rebalancing, even after the last member left (see `MockClusterQuirkTests`).
func groupSettings(_ cluster: MockCluster, group: String = uniqueTopic("g")) -> ConsumerSettings {
    var settings = ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: group)
    settings.sessionTimeout = .seconds(6)
    return settings
}

/// A fresh mock cluster with one new topic and a producer for it: the setup most tests share.
struct Fixture {
    let cluster: MockCluster
    let topic = uniqueTopic()
    let producer: KafkaProducer

    init(
        brokers: Int = 1, partitions: Int = 1, replicationFactor: Int = 1,
        producer configure: (inout ProducerSettings) -> Void = { _ in }
    ) throws {
        cluster = try MockCluster(brokers: brokers)
        try cluster.createTopic(topic, partitions: partitions, replicationFactor: replicationFactor)
        var settings = ProducerSettings(bootstrapServers: [cluster.bootstrapServers])
        configure(&settings)
        producer = try KafkaProducer(settings: settings)
    }

    /// A consumer outside any group, reading `partitions` of the topic from the beginning.
    func reader(partitions: [Int32] = [0], configure: (inout ConsumerSettings) -> Void = { _ in }) throws -> KafkaConsumer {
        var settings = ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil)
        configure(&settings)
        let consumer = try KafkaConsumer(settings: settings)
        try consumer.assign(partitions.map { TopicPartitionOffset(topic, $0, offset: KafkaOffset.beginning) })
        return consumer
    }
}
