import Foundation
import Glibc
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import QuixKafka
import QuixProtocol
import QuixStreams
import Synchronization
import Testing

// quixd run as a child process, and what tests read from the mock cluster around it.

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The pipeline files under pipelines/ (not their tests).
func examplePipelines() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent("pipelines").path)
        .filter { $0.hasSuffix(".yaml") && !$0.hasSuffix(".test.yaml") }.sorted()
        .map { repository.appendingPathComponent("pipelines/\($0)").path }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it for port 0).
func freePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// quixd run as a child process, its standard error collected.
final class DaemonProcess: Sendable {
    let process: Process
    private let errors = LogBuffer()

    private final class LogBuffer: Sendable {
        let data = Mutex(Data())
    }

    /// - Parameter environment: variables added to this process's environment.
    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        process = Process()
        process.executableURL = try quixd()
        process.arguments = ["run"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = FileHandle.nullDevice
        let errors = errors
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            errors.data.withLock { $0.append(data) }
        }
        try process.run()
    }

    var log: String { String(decoding: errors.data.withLock { $0 }, as: UTF8.self) }

    /// Sends SIGTERM and waits for the exit status.
    func terminate(within limit: Duration = .seconds(40)) async throws -> Int32 {
        process.terminate()
        let deadline = ContinuousClock.now + limit
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning, "quixd did not exit within \(limit) of SIGTERM")
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        return process.terminationStatus
    }

    func waitForLog(_ text: String, within limit: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + limit
        while !log.contains(text) {
            guard process.isRunning, ContinuousClock.now < deadline else {
                Issue.record("quixd did not log \"\(text)\"; its log:\n\(log)")
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// Every message of `topic` until none arrived for `quiet`, by partition order.
func messages(_ cluster: MockCluster, _ topic: String, partitions: Int32, quiet: Duration = .seconds(3)) async throws -> [KafkaMessage] {
    let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
    try consumer.assign((0..<partitions).map { TopicPartitionOffset(topic, $0, offset: KafkaOffset.beginning) })
    let result = drain(consumer, quiet: quiet)
    await consumer.close()
    return result
}

/// Polls until nothing arrived for `quiet` (blocking: the child processes are what is tested).
func drain(_ consumer: KafkaConsumer, quiet: Duration) -> [KafkaMessage] {
    var result: [KafkaMessage] = []
    var last = ContinuousClock.now
    while ContinuousClock.now - last < quiet {
        if case .messages(let batch)? = consumer.poll(timeout: .milliseconds(200)) {
            result += batch
            last = .now
        }
    }
    return result
}

/// The time-series rows of Quix packages, by stream, in order.
func frames(_ messages: [KafkaMessage]) throws -> (rows: [String: TimeseriesFrame], events: [String: [EventData]]) {
    var assembler = PackageAssembler()
    var frames: [String: [TimeseriesFrame]] = [:]
    var events: [String: [EventData]] = [:]
    for message in messages {
        for package in assembler.add(partition: message.partition, key: message.key.map(Array.init), offset: message.offset, timestampMilliseconds: nil, value: message.value ?? []) {
            let stream = QuixCodec.streamID(fromKey: package.key?[...])
            switch try QuixCodec.decode(package.value[...]) {
            case .model(.timeseries(let data)): frames[stream, default: []].append(TimeseriesFrame(data))
            case .model(.eventData(let list)): events[stream, default: []] += list
            default: break
            }
        }
    }
    return (frames.mapValues { TimeseriesFrame.concatenate($0) }, events)
}

func committed(_ cluster: MockCluster, group: String, topic: String, partitions: Int32) async throws -> [Int64] {
    let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: group))
    let offsets = try await consumer.committed((0..<partitions).map { TopicPartition(topic, $0) })
    await consumer.close()
    return offsets.sorted { $0.partition < $1.partition }.map(\.offset)
}

func endOffsets(_ cluster: MockCluster, _ topic: String, partitions: Int32) async throws -> [Int64] {
    let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [cluster.bootstrapServers], group: nil))
    var ends: [Int64] = []
    for partition in 0..<partitions { ends.append(try await consumer.watermarks(TopicPartition(topic, partition)).high) }
    await consumer.close()
    return ends
}

/// GET `path` on 127.0.0.1:`port`: the status code and body.
func httpGet(_ port: Int, _ path: String) async throws -> (Int, String) {
    let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
}
