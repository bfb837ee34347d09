import Foundation
import Synchronization

/// A pipeline at a glance, for the status page and `/status.json`.
public struct PipelineStatusReport: Sendable, Codable, Hashable {
    public var name: String
    /// `starting`, `running`, `stopped` or `failed`.
    public var phase: String
    public var ready: Bool
    /// Why it is (not) ready, as `/readyz` says.
    public var reason: String
    public var input: String
    public var outputs: [String]
    public var partitions: [Partition]
    /// Messages per second over the last sample, and the samples of the last 10 minutes (oldest first).
    public var inputRate: Double
    public var outputRate: Double
    public var inputHistory: [Double]
    public var outputHistory: [Double]
    public var checkpoints: Int
    /// Seconds since the Unix epoch.
    public var lastCheckpoint: Double?
    public var lastCheckpointSeconds: Double?
    public var rebalances: Int
    /// The newest first.
    public var failures: [Failure]

    public struct Partition: Sendable, Codable, Hashable {
        public var topic: String
        public var partition: Int32
        /// Messages after what is processed.
        public var lag: Int64?
        /// Milliseconds of data time behind the newest message.
        public var timeLagMilliseconds: Int64?
        public var stateBytes: Int64?
    }

    /// A message the pipeline could not process, and what became of it.
    public struct Failure: Sendable, Codable, Hashable {
        /// Seconds since the Unix epoch.
        public var time: Double
        public var stage: String
        public var code: String
        public var error: String
        public var stream: String
        /// `topic[partition]@offset`
        public var source: String
        /// `dead-lettered`, `skipped` or `stopped`.
        public var outcome: String
    }

    public init(name: String, phase: String, ready: Bool, reason: String, input: String = "", outputs: [String] = []) {
        self.name = name
        self.phase = phase
        self.ready = ready
        self.reason = reason
        self.input = input
        self.outputs = outputs
        partitions = []
        inputRate = 0
        outputRate = 0
        inputHistory = []
        outputHistory = []
        checkpoints = 0
        rebalances = 0
        failures = []
    }
}

/// What a runner counts for its status report: messages in and out sampled into rates (one
/// sample per 10 s, the last 10 minutes), checkpoints, rebalances, and the last 20 failures.
final class PipelineActivity: Sendable {
    static let sampleEvery: Duration = .seconds(10)
    static let samples = 60
    static let failuresKept = 20

    private struct Counts {
        var samples: [(at: ContinuousClock.Instant, consumed: Int, produced: Int)] = []
        var checkpoints = 0
        var lastCheckpoint: (wall: Date, seconds: Double)?
        var rebalances = 0
        var failures: [PipelineStatusReport.Failure] = []
    }

    private let counts = Mutex(Counts())
    // Atomics: the output adds to `produced` for every message it sends.
    private let consumedTotal = Atomic<Int>(0)
    private let producedTotal = Atomic<Int>(0)

    func consumed(_ messages: Int) { consumedTotal.add(messages, ordering: .relaxed) }
    func produced(_ messages: Int) { producedTotal.add(messages, ordering: .relaxed) }
    func rebalanced() { counts.withLock { $0.rebalances += 1 } }

    func checkpointed(seconds: Double) {
        counts.withLock { counts in
            counts.checkpoints += 1
            counts.lastCheckpoint = (Date(), seconds)
        }
        sample()
    }

    func failed(_ failure: PipelineStatusReport.Failure) {
        counts.withLock { counts in
            counts.failures.insert(failure, at: 0)
            if counts.failures.count > Self.failuresKept { counts.failures.removeLast() }
        }
    }

    /// Adds a sample when the last is 10 s old (or there is none); called often enough by
    /// checkpoints and status requests.
    func sample(now: ContinuousClock.Instant = .now) {
        let (consumed, produced) = (consumedTotal.load(ordering: .relaxed), producedTotal.load(ordering: .relaxed))
        counts.withLock { counts in
            if let last = counts.samples.last, now - last.at < Self.sampleEvery { return }
            counts.samples.append((now, consumed, produced))
            if counts.samples.count > Self.samples + 1 { counts.samples.removeFirst() }
        }
    }

    /// Fills in the report's rates, history, checkpoints, rebalances and failures.
    func fill(_ report: inout PipelineStatusReport, now: ContinuousClock.Instant = .now) {
        sample(now: now)
        counts.withLock { counts in
            var input: [Double] = []
            var output: [Double] = []
            for (earlier, later) in zip(counts.samples, counts.samples.dropFirst()) {
                let seconds = max(0.001, (later.at - earlier.at) / .seconds(1))
                input.append(Double(later.consumed - earlier.consumed) / seconds)
                output.append(Double(later.produced - earlier.produced) / seconds)
            }
            report.inputHistory = input
            report.outputHistory = output
            report.inputRate = input.last ?? 0
            report.outputRate = output.last ?? 0
            report.checkpoints = counts.checkpoints
            report.lastCheckpoint = counts.lastCheckpoint?.wall.timeIntervalSince1970
            report.lastCheckpointSeconds = counts.lastCheckpoint?.seconds
            report.rebalances = counts.rebalances
            report.failures = counts.failures
        }
    }
}
