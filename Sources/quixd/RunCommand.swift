import ArgumentParser
import Foundation
import Logging
import QuixKafka
import QuixPipeline
import QuixStreams
import ServiceLifecycle
import UnixSignals

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
            the group) within the shutdown grace (exit 0; 1 when the grace ran out or a final \
            checkpoint failed); SIGHUP reloads the pipeline files.
            """)

    @Option(help: "The daemon config file (quixd.yaml).") var config: String?
    @Option(help: "Bootstrap servers, host:port[,host:port...]; none starts the development broker.") var brokers: String?
    @Option(name: .customLong("state-dir"), help: "The state directory.") var stateDirectory: String?
    @Option(help: "Address of /healthz, /readyz and /metrics (host:port, or off).") var http: String?
    @Option(
        name: .customLong("set"),
        help: "Override a key (repeatable): spec.… and metadata.… keys apply to every pipeline file, others to the config.")
    var overrides: [String] = []
    @Option(help: "Worker threads for the pipelines' partitions (default: the cores quixd may use, from its CPU affinity and cgroup quota).")
    var workers: Int?
    @Option(help: "Development broker only: a CSV of rows to feed into the pipelines' input (stream and timestamp columns).")
    var sample: String?
    @Option(
        name: .customLong("reset-state"),
        help: "A stage id whose kept state may be dropped when the pipeline changed its shape (repeatable); otherwise such a pipeline is refused.")
    var resetState: [String] = []
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
        if let workers {
            guard workers >= 1 else {
                report("--workers: expected at least 1, found \(workers)")
                throw ExitCode(2)
            }
            settings.workers = workers
        }

        LoggingSystem.bootstrap { [settings] label in DaemonLogHandler(label: label, format: settings.logFormat, level: settings.logLevel) }
        var logger = Logger(label: "quixd")
        logger.logLevel = Logger.Level(rawValue: settings.logLevel.rawValue) ?? .info
        // systemd (Type=notify): readiness, reloads, stopping and watchdog pings, when it asks.
        let notifier = SystemdNotifier.fromEnvironment(logger: logger)
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
        // A pipeline whose kept state another version shaped differently is refused before anything runs.
        let reset = Set(resetState)
        let checkState: @Sendable (Pipeline, Pipeline?) throws -> Void = { [settings] pipeline, running in
            try StateCompatibility.check(pipeline, replacing: running, stateDirectory: settings.stateDirectory, registry: compiledStages, reset: reset)
        }
        do {
            for (_, pipeline) in loaded { try checkState(pipeline, nil) }
        } catch {
            report("\(error)")
            throw ExitCode(2)
        }
        logger.info("quixd \(QuixdVersion.current) starting; effective configuration:\n\(settings.masked)")
        let pool = WorkerPool.configureShared(workers: settings.workers ?? WorkerPool.defaultWorkerCount())
        logger.info("partitions run on \(pool.workers.count) worker threads", metadata: ["workers": "\(pool.workers.count)"])

        var broker: DevelopmentBroker?
        if settings.kafka.brokers.isEmpty {
            let development = try DevelopmentBroker(pipelines: loaded, sample: sample, logger: logger)
            settings.kafka.brokers = [development.cluster.bootstrapServers]
            broker = development
        }
        let client = KafkaStreamingClient(brokers: settings.kafka.brokers.joined(separator: ","), logger: logger) { client in
            client.clientID = settings.kafka.clientID
            Self.apply(settings.kafka, to: &client)
        }
        let metrics = PipelineMetrics()
        let supervisor = PipelineSupervisor(
            pipelines: loaded, sources: settings.pipelines, overrides: pipelineOverrides, notifier: notifier,
            grace: settings.shutdownGrace, logger: logger, check: checkState
        ) { [settings, logger] pipeline, file in
            try PipelineRunner(
                pipeline: pipeline, file: file, registry: compiledStages, client: client, stateDirectory: settings.stateDirectory,
                groupInstanceID: settings.kafka.groupInstanceID, metrics: metrics, resetState: reset, logger: logger)
        }
        // Watchdog pings only while every pipeline makes progress or is idle (ProgressWatch).
        let checkpoints = (loaded.map(\.pipeline.checkpointInterval).max() ?? .seconds(1)) * 10
        let progress = ProgressWatch(stallAfter: max((notifier.watchdogTimeout ?? .zero) * 2, checkpoints), logger: logger)
        notifier.startWatchdog { progress.isHealthy(metrics: metrics.exposition(), readiness: supervisor.readiness()) }
        let server = settings.httpListen.map {
            OperationsServer(
                address: $0, metrics: metrics, readiness: { supervisor.readiness() },
                status: settings.statusPage ? { @Sendable in supervisor.statusReports() } : nil, logger: logger)
        }
        do {
            try await Self.serviceGroup(broker: broker, server: server, supervisor: supervisor, grace: settings.shutdownGrace, logger: logger)
                .run()
        } catch {
            logger.error("quixd stopped on an error", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
        logger.info("quixd stopped")
    }

    /// The daemon's service group: SIGTERM and SIGINT start the graceful shutdown, which stops
    /// the services in reverse order within `grace`: the pipelines first (they checkpoint while
    /// /metrics still answers), then the HTTP server, then the development broker, which the
    /// pipelines need until they have stopped. Whichever service ends, the others stop in order,
    /// and `run()` throws the first error.
    static func serviceGroup(
        broker: DevelopmentBroker?, server: OperationsServer?, supervisor: PipelineSupervisor, grace: Duration, logger: Logger
    ) -> ServiceGroup {
        let optional: [(any Service)?] = [broker, server, supervisor]
        let services = optional.compactMap { $0 }
        var configuration = ServiceGroupConfiguration(
            services: services.map {
                .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup)
            },
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = grace
        return ServiceGroup(configuration: configuration)
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
