import ArgumentParser
import Foundation
import Logging
import QuixKafka
import QuixPipeline
import QuixStreams

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run pipelines: the daemon.",
        discussion: """
            Flags override the config file (--config), whose keys QUIXD_* environment variables \
            override, which overrides defaults. Pipelines are the files (or directories of .yaml \
            files) given here, else those of the config file. Without brokers, quixd starts an \
            embedded development broker (librdkafka's mock cluster), feeds each pipeline's sample \
            data into its input (--sample, or samples/TOPIC.csv next to the pipeline file) and prints \
            what the pipelines write. SIGTERM or SIGINT stops every pipeline (checkpoint, leave \
            the group) within the shutdown grace; SIGHUP reloads the pipeline files.
            """)

    @Option(help: "The daemon config file (quixd.yaml).") var config: String?
    @Option(help: "Bootstrap servers, host:port[,host:port...]; none starts the development broker.") var brokers: String?
    @Option(name: .customLong("state-dir"), help: "The state directory.") var stateDirectory: String?
    @Option(help: "Address of /healthz, /readyz and /metrics (host:port, or off).") var http: String?
    @Option(
        name: .customLong("set"),
        help: "Override a key (repeatable): spec.… and metadata.… keys apply to every pipeline file, others to the config.")
    var overrides: [String] = []
    @Option(help: "Development broker only: a CSV of rows to feed into the pipelines' input (stream and timestamp columns).")
    var sample: String?
    @Argument(help: "Pipeline files or directories.") var pipelines: [String] = []

    func run() async throws {
        let pipelineOverrides = overrides.filter { $0.hasPrefix("spec.") || $0.hasPrefix("metadata.") }
        var settings: DaemonConfig
        do {
            settings = try DaemonConfigLoader.load(file: config, overrides: overrides.filter { !pipelineOverrides.contains($0) })
        } catch {
            for mistake in error.errors { report(mistake.description) }
            throw ExitCode(2)
        }
        if let brokers { settings.kafka.brokers = brokers.split(separator: ",").map(String.init) }
        if let stateDirectory { settings.stateDirectory = stateDirectory }
        if let http { settings.httpListen = http == "off" ? nil : http }
        if !pipelines.isEmpty { settings.pipelines = pipelines }

        LoggingSystem.bootstrap { label in DaemonLogHandler(label: label, format: settings.logFormat, level: settings.logLevel) }
        var logger = Logger(label: "quixd")
        logger.logLevel = Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info
        // systemd (Type=notify): readiness, reloads, stopping and watchdog pings, when it asks.
        let notifier = SystemdNotifier.fromEnvironment(logger: logger)
        notifier.startWatchdog()
        defer { notifier.stopWatchdog() }

        let files = PipelineFiles.find(settings.pipelines)
        guard !files.isEmpty else {
            report("no pipelines: name pipeline files, or list them under pipelines: in the config")
            throw ExitCode(2)
        }
        let loaded: [(file: String, pipeline: Pipeline)]
        do {
            loaded = try PipelineFiles.load(files, overrides: pipelineOverrides)
        } catch {
            for mistake in error.errors { report(mistake.description) }
            throw ExitCode(2)
        }
        logger.info("quixd \(QuixdVersion.current) starting; effective configuration:\n\(settings.masked)")

        var development: DevelopmentBroker?
        if settings.kafka.brokers.isEmpty {
            let broker = try DevelopmentBroker(logger: logger)
            try broker.createTopics(for: loaded.map(\.pipeline))
            settings.kafka.brokers = [broker.cluster.bootstrapServers]
            development = broker
        }
        let client = KafkaStreamingClient(brokers: settings.kafka.brokers.joined(separator: ","), logger: logger) { client in
            client.clientID = settings.kafka.clientID
            Self.apply(settings.kafka, to: &client)
        }
        let metrics = PipelineMetrics()
        let daemon = Daemon(
            sources: settings.pipelines, overrides: pipelineOverrides, client: client, stateDirectory: settings.stateDirectory,
            groupInstanceID: settings.kafka.groupInstanceID, metrics: metrics, logger: logger)
        var server: OperationsServer?
        if let address = settings.httpListen {
            let operations = OperationsServer(address: address, metrics: metrics, readiness: { await daemon.readiness() }, logger: logger)
            try await operations.start()
            server = operations
        }
        let signals = SignalStream([SIGTERM, SIGINT, SIGHUP])
        do {
            try await daemon.start(loaded)
        } catch {
            notifier.stopping(status: "a pipeline could not start: \(error)")
            logger.error("a pipeline could not start", metadata: ["error": "\(error)"])
            _ = await daemon.shutdown(grace: settings.shutdownGrace)
            throw ExitCode(1)
        }
        if let development {
            try await development.feedSamples(loaded, explicit: sample, client: client)
            development.showOutputs(loaded, client: client)
        }
        notifier.ready(status: "\(loaded.count) pipelines running")
        var exitCode: Int32 = 0
        loop: for await signal in signals.events(orWhile: { await !daemon.allFailed }) {
            switch signal {
            case SIGHUP:
                logger.info("SIGHUP: reloading pipeline files")
                notifier.reloading()
                await daemon.reload()
                notifier.ready(status: "pipeline files reloaded")
            case .none:
                notifier.stopping(status: "every pipeline stopped on an error")
                logger.error("every pipeline stopped on an error; quixd exits")
                exitCode = 1
                break loop
            default:
                notifier.stopping()
                logger.info("stopping: every pipeline checkpoints and leaves its group", metadata: ["signal": "\(signal!)", "grace": "\(settings.shutdownGrace)"])
                if await !daemon.shutdown(grace: settings.shutdownGrace) {
                    logger.error("pipelines did not stop within the shutdown grace")
                    exitCode = 1
                }
                break loop
            }
        }
        await server?.stop()
        await development?.stop()
        logger.info("quixd stopped")
        if exitCode != 0 { throw ExitCode(exitCode) }
    }

    /// Security and pass-through librdkafka properties (static membership is the consumers').
    static func apply(_ kafka: DaemonConfig.Kafka, to client: inout KafkaClientSettings) {
        if let value = kafka.securityProtocol, let parsed = KafkaClientSettings.Security.SecurityProtocol(rawValue: value) {
            client.security.protocol = parsed
        }
        client.security.saslMechanism = kafka.saslMechanism
        client.security.saslUsername = kafka.saslUsername
        client.security.saslPassword = kafka.saslPassword
        client.security.caLocation = kafka.caLocation
        for (key, value) in kafka.properties { client.librdkafka[key] = value }
    }
}

/// Signals as an async sequence. Each signal's default action is replaced while quixd runs.
final class SignalStream {
    private let stream: AsyncStream<Int32>
    private let sources: [any DispatchSourceSignal]

    init(_ numbers: [Int32]) {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        self.stream = stream
        sources = numbers.map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            return source
        }
    }

    /// The signals as they arrive, and nil once `condition` turns false (checked every second).
    func events(orWhile condition: @escaping @Sendable () async -> Bool) -> AsyncStream<Int32?> {
        let signals = stream
        return AsyncStream { continuation in
            let task = Task {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await signal in signals { continuation.yield(signal) }
                    }
                    group.addTask {
                        while !Task.isCancelled, await condition() { try? await Task.sleep(for: .seconds(1)) }
                        if !Task.isCancelled { continuation.yield(nil) }
                    }
                    await group.next()
                    group.cancelAll()
                }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
