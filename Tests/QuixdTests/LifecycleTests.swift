import Foundation
import Glibc
import Logging
import QuixKafka
import QuixPipeline
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing
@testable import quixd

/// A pipeline file that doubles `x` of JSON rows from `rows` into `out`.
private func pipelineFile(in directory: String, name: String = "double") throws -> String {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    let file = "\(directory)/\(name).yaml"
    try """
        apiVersion: quixd/v1
        kind: Pipeline
        metadata: { name: \(name) }
        spec:
          input: { topic: rows, format: json }
          stages: [{ id: double, uses: compute, with: { column: y, expression: "x * 2" } }]
          output: { topic: out, format: json }
        """.write(toFile: file, atomically: true, encoding: .utf8)
    return file
}

private func temporaryDirectory() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("quixd-lifecycle-\(UUID().uuidString)").path
}

/// A pipeline that runs until stopped, then does `stopping` (whose error its `run()` throws).
private final class StandInPipeline: SupervisedPipeline {
    let pipeline: Pipeline
    private let stopped: AsyncStream<Void>
    private let stopper: AsyncStream<Void>.Continuation
    private let stopping: @Sendable () async throws -> Void
    private let failAtOnce: (any Error)?
    private let starting: @Sendable () async -> Void

    /// `starting` runs before the pipeline says it has started.
    init(
        _ pipeline: Pipeline, failAtOnce: (any Error)? = nil, stopping: @escaping @Sendable () async throws -> Void = {},
        starting: @escaping @Sendable () async -> Void = {}
    ) {
        self.pipeline = pipeline
        (stopped, stopper) = AsyncStream.makeStream(of: Void.self)
        self.stopping = stopping
        self.failAtOnce = failAtOnce
        self.starting = starting
    }

    var readiness: (ready: Bool, reason: String) { (true, "standing in") }

    func run(started: @escaping @Sendable () -> Void) async throws {
        if let failAtOnce { throw failAtOnce }
        await starting()
        started()
        for await _ in stopped {}
        try await stopping()
    }

    func stop() async { stopper.finish() }
}

private struct FinalCheckpointFailed: Error {}

/// GET `path` on 127.0.0.1:`port` over a plain socket (URLSession on Linux was seen to trap
/// when a server went away during a request): the response's status line.
private func statusLine(_ port: Int, _ path: String) async throws -> Substring? {
    try await rawHTTP(host: "127.0.0.1", port: UInt16(port), "GET \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .split(separator: "\r\n").first
}

/// The daemon's service group (as `quixd run` makes it) around stand-in pipelines.
private func daemonGroup(
    _ pipelines: [StandInPipeline], file: String, port: Int?, notifier: SystemdNotifier = SystemdNotifier(socketPath: nil)
) -> ServiceGroup {
    let logger = Logger(label: "test")
    let byName = Dictionary(uniqueKeysWithValues: pipelines.map { ($0.pipeline.name, $0) })
    let supervisor = PipelineSupervisor(
        pipelines: pipelines.map { (file, $0.pipeline) }, sources: [file], overrides: [], notifier: notifier,
        grace: .seconds(20), logger: logger
    ) { pipeline, _ in byName[pipeline.name]! }
    let server = port.map { OperationsServer(address: "127.0.0.1:\($0)", metrics: PipelineMetrics(), readiness: { supervisor.readiness() }) }
    return Run.serviceGroup(broker: nil, server: server, supervisor: supervisor, grace: .seconds(20), logger: logger)
}

@Suite("the daemon's lifecycle: one service group, pipelines stopped first, exit codes", .serialized, .timeLimit(.minutes(2)))
struct LifecycleTests {
    @Test("graceful shutdown stops the pipelines while the HTTP server still answers, then the server")
    func pipelinesStopBeforeTheServer() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try pipelineFile(in: directory)
        let port = freePort()
        let answered = Mutex<Substring?>(nil)
        let pipeline = StandInPipeline(try PipelineLoader.load(file: file)) {
            let status = try? await statusLine(port, "/metrics")
            answered.withLock { $0 = status ?? nil }
        }
        let group = daemonGroup([pipeline], file: file, port: port)
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let deadline = ContinuousClock.now + .seconds(10)
                while await (try? rawHTTP(host: "127.0.0.1", port: UInt16(port), "GET /readyz HTTP/1.1\r\nConnection: close\r\n\r\n"))?
                    .hasSuffix("\r\n\r\ndouble ready: standing in\n") != true
                {
                    try #require(ContinuousClock.now < deadline, "/readyz never reported the pipeline")
                    try await Task.sleep(for: .milliseconds(50))
                }
                trigger.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
        #expect(answered.withLock { $0 } == "HTTP/1.1 200 OK", "/metrics answered while the pipeline stopped")
        await #expect(throws: (any Error).self, "then the server stopped") { try await statusLine(port, "/healthz") }
    }

    @Test("READY=1 goes to systemd only once every pipeline's run() has started, not when it is launched")
    func readyAfterThePipelinesStarted() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try pipelineFile(in: directory)
        let socketPath = "\(directory)/notify"
        let socket = try NotifySocket(socketPath)
        let (gate, opener) = AsyncStream.makeStream(of: Void.self)
        let pipeline = StandInPipeline(try PipelineLoader.load(file: file), starting: { for await _ in gate {} })
        let group = daemonGroup([pipeline], file: file, port: nil, notifier: SystemdNotifier(socketPath: socketPath))
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                #expect(try await socket.receive(within: .milliseconds(500)) == nil, "READY=1 before the pipeline started")
                opener.finish()
                #expect(try await socket.receive() == "READY=1\nSTATUS=1 pipelines running")
                trigger.triggerGracefulShutdown()
                #expect(try await socket.receive() == "STOPPING=1")
                try await tasks.waitForAll()
            }
        }
    }

    @Test("a pipeline whose run() throws while stopping (its final checkpoint failed): the group throws, quixd exits non-zero")
    func failedFinalCheckpoint() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = try pipelineFile(in: directory)
        let group = daemonGroup([StandInPipeline(try PipelineLoader.load(file: file)) { throw FinalCheckpointFailed() }], file: file, port: nil)
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask {
                    let error = await #expect(throws: PipelineSupervisor.StopFailed.self) { try await group.run() }
                    #expect(error?.description.contains("double: FinalCheckpointFailed") == true, "\(String(describing: error))")
                }
                try await Task.sleep(for: .milliseconds(200))
                trigger.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
        }
    }

    @Test("every pipeline stopped on an error: the group ends on its own, with an error")
    func everyPipelineFailed() async throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try pipelineFile(in: directory, name: "first"), second = try pipelineFile(in: directory, name: "second")
        let pipelines = [
            StandInPipeline(try PipelineLoader.load(file: first), failAtOnce: FinalCheckpointFailed()),
            StandInPipeline(try PipelineLoader.load(file: second), failAtOnce: FinalCheckpointFailed()),
        ]
        let supervisor = PipelineSupervisor(
            pipelines: zip([first, second], pipelines).map { ($0, $1.pipeline) }, sources: [directory], overrides: [],
            notifier: SystemdNotifier(socketPath: nil), grace: .seconds(20), logger: Logger(label: "test")
        ) { pipeline, _ in pipelines.first { $0.pipeline.name == pipeline.name }! }
        await #expect(throws: PipelineSupervisor.AllPipelinesFailed.self) {
            try await Run.serviceGroup(broker: nil, server: nil, supervisor: supervisor, grace: .seconds(20), logger: Logger(label: "test")).run()
        }
    }

    @Test("SIGTERM with pipelines that cannot stop within the shutdown grace (a broker answering after 10 s): quixd exits 1 when the grace is over")
    func graceRunsOut() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["rows", "out"] { try cluster.createTopic(topic, partitions: 1) }
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DaemonProcess([
            "--brokers", cluster.bootstrapServers, "--http", "off", "--set", "shutdown.grace=2s",
            "--set", "kafka.properties={session.timeout.ms: 6000}", try pipelineFile(in: directory),
        ])
        try await daemon.waitForLog("partitions assigned")
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [cluster.bootstrapServers]))
        try await producer.send(OutgoingMessage(topic: "rows", key: Array("s".utf8), value: Array(#"{"timestamp": 1, "x": 1}"#.utf8)))
        try await producer.flush()
        await producer.close()
        while try await endOffsets(cluster, "out", partitions: 1) != [1] { try await Task.sleep(for: .milliseconds(50)) }
        // The message is processed; its commit (at the checkpoint SIGTERM makes) will wait 10 s.
        try cluster.setLatency(broker: 1, .seconds(10))
        let started = ContinuousClock.now
        let status = try await daemon.terminate(within: .seconds(20))
        let after = ContinuousClock.now - started
        print("measured: quixd exited \(status) \(after) after SIGTERM, with a 2 s grace")
        #expect(status == 1, "\(daemon.log)")
        #expect(after < .seconds(6), "at the grace, not when the broker calls time out")
        #expect(daemon.log.contains("pipelines did not stop within the shutdown grace"), "\(daemon.log)")
    }

    @Test("SIGINT stops quixd gracefully too: exit 0")
    func sigint() async throws {
        let cluster = try MockCluster(brokers: 1)
        for topic in ["rows", "out"] { try cluster.createTopic(topic, partitions: 1) }
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let daemon = try DaemonProcess([
            "--brokers", cluster.bootstrapServers, "--http", "off", "--set", "kafka.properties={session.timeout.ms: 6000}",
            try pipelineFile(in: directory),
        ])
        try await daemon.waitForLog("partitions assigned")
        kill(daemon.process.processIdentifier, SIGINT)
        let deadline = ContinuousClock.now + .seconds(20)
        while daemon.process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!daemon.process.isRunning && daemon.process.terminationStatus == 0, "\(daemon.log)")
        #expect(daemon.log.contains("pipeline stopped") && daemon.log.contains("quixd stopped"), "\(daemon.log)")
    }
}
