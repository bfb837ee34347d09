import Foundation
import Logging
import QuixPipeline
import QuixStreams

/// The pipelines of one quixd process: each runs in its own task with its own consumer group;
/// a SIGHUP reloads their files (a file with mistakes is refused and its pipeline keeps
/// running), a SIGTERM stops them all within the grace period.
actor Daemon {
    struct Running {
        let runner: PipelineRunner
        let task: Task<Void, Never>
        /// The pipeline as loaded, to tell whether a reload changed it.
        let pipeline: Pipeline
    }

    private let sources: [String]
    private let overrides: [String]
    private let client: KafkaStreamingClient
    private let stateDirectory: String
    private let groupInstanceID: String?
    private let metrics: PipelineMetrics
    private let logger: Logger
    private var running: [String: Running] = [:]
    /// Pipelines that stopped on an error, by file.
    private var failed: [String: String] = [:]

    init(
        sources: [String], overrides: [String], client: KafkaStreamingClient, stateDirectory: String, groupInstanceID: String?,
        metrics: PipelineMetrics, logger: Logger
    ) {
        self.groupInstanceID = groupInstanceID
        self.sources = sources
        self.overrides = overrides
        self.client = client
        self.stateDirectory = stateDirectory
        self.metrics = metrics
        self.logger = logger
    }

    /// Starts every pipeline.
    func start(_ pipelines: [(file: String, pipeline: Pipeline)]) throws {
        for (file, pipeline) in pipelines { try launch(pipeline, file: file) }
    }

    private func launch(_ pipeline: Pipeline, file: String) throws {
        let runner = try PipelineRunner(
            pipeline: pipeline, file: file, registry: compiledStages, client: client, stateDirectory: stateDirectory,
            groupInstanceID: groupInstanceID, metrics: metrics, logger: logger)
        let task = Task { [weak self] in
            do {
                try await runner.run()
            } catch {
                await self?.pipelineFailed(file, error)
            }
        }
        running[file] = Running(runner: runner, task: task, pipeline: pipeline)
        failed[file] = nil
    }

    private func pipelineFailed(_ file: String, _ error: any Error) {
        failed[file] = "\(error)"
    }

    /// Whether every pipeline stopped on an error (the process should exit and be restarted).
    var allFailed: Bool { !running.isEmpty && running.keys.allSatisfy { failed[$0] != nil } }

    func readiness() -> [PipelineReadiness] {
        running.values.sorted { $0.pipeline.name < $1.pipeline.name }.map { entry in
            let (ready, reason) = entry.runner.readiness
            return (entry.pipeline.name, ready, reason)
        }
    }

    /// Re-reads the pipeline files: changed pipelines restart, new ones start, removed ones stop.
    /// A file with mistakes is refused (its errors logged) and what runs from it keeps running.
    func reload() async {
        let files = PipelineFiles.find(sources)
        var next: [String: Pipeline] = [:]
        for file in files {
            do {
                next[file] = try PipelineFiles.load(file, overrides: overrides)
            } catch {
                for mistake in error.errors { logger.error("reload refused a pipeline file; what runs from it keeps running", metadata: ["error": "\(mistake)"]) }
                if let current = running[file] { next[file] = current.pipeline }
            }
        }
        for (file, entry) in running where next[file] != entry.pipeline {
            logger.info("reload stops a pipeline", metadata: ["pipeline": "\(entry.pipeline.name)", "file": "\(file)"])
            await entry.runner.stop()
            await entry.task.value
            running[file] = nil
        }
        for file in next.keys.sorted() where running[file] == nil {
            do {
                try launch(next[file]!, file: file)
                logger.info("reload started a pipeline", metadata: ["pipeline": "\(next[file]!.name)", "file": "\(file)"])
            } catch {
                logger.error("reload could not start a pipeline", metadata: ["file": "\(file)", "error": "\(error)"])
            }
        }
    }

    /// Stops every pipeline (each checkpoints and leaves its group); false if they did not all
    /// finish within `grace`.
    func shutdown(grace: Duration) async -> Bool {
        let entries = Array(running.values)
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { stops in
                    for entry in entries {
                        stops.addTask {
                            await entry.runner.stop()
                            await entry.task.value
                        }
                    }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: grace)
                return false
            }
            let finished = await group.next() ?? false
            group.cancelAll()
            return finished
        }
    }
}
