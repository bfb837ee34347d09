import Foundation
import Logging
import QuixPipeline
import QuixStreams
import ServiceLifecycle
import Synchronization
import UnixSignals

/// What the supervisor runs: a `PipelineRunner` (or a test's stand-in).
protocol SupervisedPipeline: Sendable {
    var pipeline: Pipeline { get }
    /// For `/readyz`.
    var readiness: (ready: Bool, reason: String) { get }
    /// For the status page.
    var statusReport: PipelineStatusReport { get }
    /// Runs until `stop()`; throws when the pipeline stops on an error. Calls `started` once
    /// it has started (logged "pipeline started"), before it reads.
    func run(started: @escaping @Sendable () -> Void) async throws
    /// Asks `run()` to checkpoint and return.
    func stop() async
}

extension PipelineRunner: SupervisedPipeline {}

extension SupervisedPipeline {
    /// What the supervisor knows without the runner's own report: its name and readiness.
    var statusReport: PipelineStatusReport {
        let (ready, reason) = readiness
        return PipelineStatusReport(name: pipeline.name, phase: ready ? "running" : "starting", ready: ready, reason: reason)
    }
}

/// The pipelines of one quixd process, as one Service of the daemon's ServiceGroup. Each
/// pipeline's `run()` is a child task of this service's `run()`, each with its own consumer group.
///
/// - SIGHUP reloads the pipeline files: a file with mistakes is refused (its errors logged) and
///   what runs from it keeps running; a changed pipeline restarts, a new one starts, a removed
///   one stops.
/// - Graceful shutdown stops every pipeline (each checkpoints and leaves its group) and waits for
///   them; the service group's grace bounds the wait: when it is over, quixd exits 1 at once.
/// - `run()` throws when every pipeline stopped on an error (quixd exits, to be restarted) and
///   when a pipeline's `run()` threw while stopping (its final checkpoint failed).
final class PipelineSupervisor: Service {
    /// Every pipeline stopped on an error.
    struct AllPipelinesFailed: Error, CustomStringConvertible {
        var description: String { "every pipeline stopped on an error" }
    }

    /// Pipelines whose `run()` threw while they stopped: what they processed last may not be
    /// checkpointed.
    struct StopFailed: Error, CustomStringConvertible {
        var failures: [String]
        var description: String { "pipelines failed while stopping: " + failures.joined(separator: "; ") }
    }

    /// Makes the runner of a pipeline loaded from a file.
    typealias Launcher = @Sendable (_ pipeline: Pipeline, _ file: String) throws -> any SupervisedPipeline

    private let initial: [(file: String, pipeline: Pipeline)]
    private let sources: [String]
    private let overrides: [String]
    private let launcher: Launcher
    /// Refuses a pipeline a reload must not start in place of the running one (its kept state
    /// has another shape).
    private let check: @Sendable (_ pipeline: Pipeline, _ running: Pipeline?) throws -> Void
    private let notifier: SystemdNotifier
    private let grace: Duration
    private let logger: Logger
    /// The pipelines `/readyz` reports on, by file: those not launched yet say "starting"; one
    /// that stopped on an error stays (and says so) until a reload replaces or removes it.
    private let reported: Mutex<[String: Reported]>
    /// Set when the graceful shutdown begins: a cancellation after it means the grace is over.
    private let stopping = Atomic<Bool>(false)

    /// - Parameters:
    ///   - pipelines: the pipelines to start, loaded from `sources` (files or directories),
    ///     which a reload reads again.
    ///   - grace: the shutdown grace the service group enforces (for the log).
    ///   - launcher: makes each pipeline's runner (also those a reload starts).
    init(
        pipelines: [(file: String, pipeline: Pipeline)], sources: [String], overrides: [String], notifier: SystemdNotifier,
        grace: Duration, logger: Logger, check: @escaping @Sendable (Pipeline, Pipeline?) throws -> Void = { _, _ in },
        launcher: @escaping Launcher
    ) {
        self.check = check
        initial = pipelines
        reported = Mutex(Dictionary(pipelines.map { ($0.file, Reported.starting($0.pipeline.name)) }) { _, last in last })
        self.sources = sources
        self.overrides = overrides
        self.launcher = launcher
        self.notifier = notifier
        self.grace = grace
        self.logger = logger
    }

    /// Each pipeline's readiness, by pipeline name.
    func readiness() -> [PipelineReadiness] {
        reported.withLock { Array($0.values) }.map { entry -> PipelineReadiness in
            switch entry {
            case .starting(let name):
                return (name, false, "starting")
            case .launched(let runner):
                let (ready, reason) = runner.readiness
                return (runner.pipeline.name, ready, reason)
            }
        }.sorted { $0.pipeline < $1.pipeline }
    }

    /// Each pipeline at a glance, by pipeline name (the status page).
    func statusReports() -> [PipelineStatusReport] {
        reported.withLock { Array($0.values) }.map { entry -> PipelineStatusReport in
            switch entry {
            case .starting(let name): PipelineStatusReport(name: name, phase: "starting", ready: false, reason: "starting")
            case .launched(let runner): runner.statusReport
            }
        }.sorted { $0.name < $1.name }
    }

    private enum Reported {
        case starting(String)
        case launched(any SupervisedPipeline)
    }

    func run() async throws {
        // Every runner is made before any runs: a pipeline that cannot start stops quixd.
        var runners: [(file: String, runner: any SupervisedPipeline)] = []
        do {
            for (file, pipeline) in initial { runners.append((file, try launcher(pipeline, file))) }
        } catch {
            notifier.stopping(status: "a pipeline could not start: \(error)")
            logger.error("a pipeline could not start", metadata: ["error": "\(error)"])
            throw error
        }
        let hangups = await UnixSignalsSequence(trapping: .sighup)
        try await withTaskCancellationHandler {
            try await supervise(runners, hangups: hangups)
        } onCancel: { [self] in
            // The service group cancels its services when the shutdown grace is over. Pipelines
            // stuck in a blocking call (a flush to a broker that is down) would not end on
            // cancellation, and the task tree would wait for them: quixd exits here instead.
            guard self.stopping.load(ordering: .sequentiallyConsistent) else { return }
            self.logger.error("pipelines did not stop within the shutdown grace; quixd exits without waiting for them")
            exit(1)
        }
    }

    // MARK: Supervising

    private enum Event: Sendable {
        /// The `run()` of launch `id` has started.
        case started(id: Int)
        /// The `run()` of launch `id` returned (nil) or threw.
        case ended(id: Int, error: (any Error)?)
        /// An exactly-once pipeline whose transaction was aborted starts again after its backoff.
        case restart(file: String, pipeline: Pipeline)
        case reload
        case shutdown
    }

    /// A launched pipeline.
    private struct Launched {
        let id: Int
        let runner: any SupervisedPipeline
        /// The pipeline as loaded, to tell whether a reload changed it.
        let pipeline: Pipeline
        var ending = Ending.no
        /// Its `run()` ended on its own (an error): it is reported, not running.
        var failed = false
    }

    private enum Ending: Equatable {
        case no
        /// Stopping for a reload; the pipeline that replaces it, if any, starts once it ended.
        case reload(replacement: Pipeline?)
        case shutdown
    }

    private func supervise(_ runners: [(file: String, runner: any SupervisedPipeline)], hangups: UnixSignalsSequence) async throws {
        let (events, sink) = AsyncStream.makeStream(of: Event.self)
        var launched: [String: Launched] = [:]
        var nextID = 0
        var stopFailures: [String] = []
        /// Per file, the restarts after aborted transactions in a row (for the backoff).
        var restarts: [String: Int] = [:]
        /// Launches whose `run()` has not started yet, and the `READY=1` status that waits for them:
        /// systemd hears that quixd is ready only once every pipeline it launched has started.
        var notStarted: Set<Int> = []
        var readyStatus: String?

        try await withThrowingTaskGroup(of: Void.self) { children in
            children.addTask {
                await cancelWhenGracefulShutdown { for await _ in hangups { sink.yield(.reload) } }
            }
            children.addTask {
                if (try? await gracefulShutdown()) != nil { sink.yield(.shutdown) }
            }
            func launch(_ runner: any SupervisedPipeline, file: String, pipeline: Pipeline) {
                nextID += 1
                let id = nextID
                launched[file] = Launched(id: id, runner: runner, pipeline: pipeline)
                reported.withLock { $0[file] = .launched(runner) }
                notStarted.insert(id)
                children.addTask {
                    do {
                        try await runner.run { sink.yield(.started(id: id)) }
                        sink.yield(.ended(id: id, error: nil))
                    } catch {
                        sink.yield(.ended(id: id, error: error))
                    }
                }
            }
            func stop(_ file: String, _ ending: Ending) {
                guard let entry = launched[file] else { return }
                launched[file]!.ending = ending
                if entry.ending == .no, !entry.failed {
                    let runner = entry.runner
                    children.addTask { await runner.stop() }
                }
            }
            func forget(_ file: String) {
                launched[file] = nil
                reported.withLock { $0[file] = nil }
            }
            /// Starts a pipeline a reload asks for; a pipeline that cannot start is logged.
            func start(_ pipeline: Pipeline, file: String) {
                do {
                    launch(try launcher(pipeline, file), file: file, pipeline: pipeline)
                    logger.info("reload started a pipeline", metadata: ["pipeline": "\(pipeline.name)", "file": "\(file)"])
                } catch {
                    logger.error("reload could not start a pipeline", metadata: ["file": "\(file)", "error": "\(error)"])
                }
            }
            /// Sends `READY=1` with `status` once every launched pipeline has started.
            func ready(_ status: String) {
                readyStatus = status
                notifyReadyOnceStarted()
            }
            func notifyReadyOnceStarted() {
                guard notStarted.isEmpty, let status = readyStatus else { return }
                readyStatus = nil
                if !stopping.load(ordering: .sequentiallyConsistent) { notifier.ready(status: status) }
            }
            func reloadDone() {
                if !launched.values.contains(where: { if case .reload = $0.ending { true } else { false } }) {
                    ready("pipeline files reloaded")
                }
            }

            for (file, runner) in runners { launch(runner, file: file, pipeline: runner.pipeline) }
            ready("\(runners.count) pipelines running")

            loop: for await event in events {
                defer { notifyReadyOnceStarted() }
                switch event {
                case .reload:
                    guard !stopping.load(ordering: .sequentiallyConsistent) else { continue }
                    logger.info("SIGHUP: reloading pipeline files")
                    notifier.reloading()
                    let next = reloadedPipelines(current: launched.mapValues(\.pipeline))
                    for (file, entry) in launched {
                        if case .reload = entry.ending {
                            launched[file]!.ending = .reload(replacement: next[file])
                        } else if next[file] != entry.pipeline {
                            if entry.failed {
                                forget(file)  // its run() has ended already
                            } else {
                                logger.info("reload stops a pipeline", metadata: ["pipeline": "\(entry.pipeline.name)", "file": "\(file)"])
                                stop(file, .reload(replacement: next[file]))
                            }
                        }
                    }
                    for file in next.keys.sorted() where launched[file] == nil { start(next[file]!, file: file) }
                    reloadDone()

                case .shutdown:
                    stopping.store(true, ordering: .sequentiallyConsistent)
                    notifier.stopping()
                    logger.info("stopping: every pipeline checkpoints and leaves its group", metadata: ["grace": "\(grace)"])
                    for (file, entry) in launched {
                        if entry.failed { forget(file) } else { stop(file, .shutdown) }
                    }

                case .restart(let file, let pipeline):
                    // Not if it was stopped, reloaded or replaced meanwhile.
                    guard !stopping.load(ordering: .sequentiallyConsistent), let entry = launched[file], entry.failed,
                        entry.pipeline == pipeline
                    else { continue }
                    forget(file)
                    start(pipeline, file: file)

                case .started(let id):
                    notStarted.remove(id)

                case .ended(let id, let error):
                    notStarted.remove(id)
                    guard let (file, entry) = launched.first(where: { $0.value.id == id }) else { continue }
                    if error == nil, entry.ending == .no { restarts[file] = nil }
                    switch entry.ending {
                    case .shutdown:
                        forget(file)
                        if let error {
                            logger.error("a pipeline failed while stopping", metadata: ["pipeline": "\(entry.pipeline.name)", "error": "\(error)"])
                            stopFailures.append("\(entry.pipeline.name): \(error)")
                        }
                    case .reload(let replacement):
                        forget(file)
                        if let error {
                            logger.error("a pipeline failed while stopping for a reload", metadata: ["pipeline": "\(entry.pipeline.name)", "error": "\(error)"])
                        }
                        if let replacement { start(replacement, file: file) }
                        reloadDone()
                    case .no:
                        launched[file]!.failed = true
                        if let error = error as? TransactionFailure {
                            // Aborted: its state went back to the last committed transaction;
                            // it starts again from there, after a backoff that grows while it
                            // keeps aborting (its /readyz says why meanwhile).
                            let attempt = (restarts[file] ?? 0) + 1
                            restarts[file] = attempt
                            let backoff = Self.restartBackoff(attempt)
                            logger.error(
                                "an exactly-once pipeline restarts from its last committed transaction",
                                metadata: ["pipeline": "\(entry.pipeline.name)", "error": "\(error)", "attempt": "\(attempt)", "in": "\(backoff)"])
                            let pipeline = entry.pipeline
                            let deadline = ContinuousClock.now + backoff
                            children.addTask { [self] in
                                // A shutdown does not wait for the backoff.
                                while ContinuousClock.now < deadline, !stopping.load(ordering: .sequentiallyConsistent) {
                                    try? await Task.sleep(for: .milliseconds(100))
                                }
                                sink.yield(.restart(file: file, pipeline: pipeline))
                            }
                            continue
                        }
                        if launched.values.allSatisfy(\.failed) {
                            readyStatus = nil
                            notifier.stopping(status: "every pipeline stopped on an error")
                            logger.error("every pipeline stopped on an error; quixd exits")
                            throw AllPipelinesFailed()
                        }
                    }
                }
                if stopping.load(ordering: .sequentiallyConsistent) && launched.isEmpty { break loop }
            }
            // Cancelled without a graceful shutdown (the group is going down): the pipelines
            // still stop in order.
            for file in launched.keys { stop(file, .shutdown) }
        }
        if !stopFailures.isEmpty { throw StopFailed(failures: stopFailures) }
    }

    /// 1, 2, 4 … 30 s: the wait before the `attempt`th restart in a row of an exactly-once
    /// pipeline whose transaction was aborted.
    static func restartBackoff(_ attempt: Int) -> Duration {
        min(.seconds(30), .seconds(1) * (1 << min(max(attempt - 1, 0), 5)))
    }

    /// The pipelines of the files as they are now; a file with mistakes keeps what runs from it.
    private func reloadedPipelines(current: [String: Pipeline]) -> [String: Pipeline] {
        var next: [String: Pipeline] = [:]
        for file in PipelineFiles.find(sources) {
            do {
                let pipeline = try PipelineFiles.load(file, overrides: overrides)
                if pipeline != current[file] { try check(pipeline, current[file]) }
                next[file] = pipeline
            } catch {
                // A file's mistakes one by one; a refused state shape as it is.
                for mistake in (error as? ConfigErrors)?.errors.map({ "\($0)" }) ?? ["\(error)"] {
                    logger.error("reload refused a pipeline file; what runs from it keeps running", metadata: ["error": "\(mistake)"])
                }
                if let running = current[file] { next[file] = running }
            }
        }
        return next
    }
}
