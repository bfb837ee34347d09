import Foundation
import Synchronization

/// A fixed pool of worker threads that partition tasks run on. Each worker is a Swift task
/// executor with a thread of its own: a task that prefers it runs every non-isolated `await`
/// of its partition's processing (decoding, handlers, stages, sends) on that thread, so the
/// partitions of a topic consumer spread over all workers and no thread of the cooperative
/// pool does the work.
///
/// One pool serves every topic consumer of a process (`WorkerPool.shared`, sized to the cores
/// the process may use), so two pipelines share the cores instead of each taking them all.
public final class WorkerPool: Sendable {
    public let workers: [Worker]

    /// A pool of `count` workers (at least 1).
    public init(count: Int) {
        workers = (0..<max(1, count)).map { Worker(index: $0) }
    }

    /// The process's pool, made on first use with `WorkerPool.defaultWorkerCount()` workers unless
    /// `configureShared(workers:)` came first.
    public static var shared: WorkerPool {
        sharedPool.withLock { pool in
            if let pool { return pool }
            let made = WorkerPool(count: defaultWorkerCount())
            pool = made
            return made
        }
    }

    /// Sets the number of workers of the shared pool; it takes effect if the pool was not made
    /// yet (call it at start, before any topic consumer runs). Returns the pool.
    @discardableResult
    public static func configureShared(workers: Int) -> WorkerPool {
        sharedPool.withLock { pool in
            if let pool { return pool }
            let made = WorkerPool(count: workers)
            pool = made
            return made
        }
    }

    private static let sharedPool = Mutex<WorkerPool?>(nil)

    /// The worker with the fewest partition tasks, for a newly assigned partition.
    func leastLoaded() -> Worker {
        workers.min { $0.load < $1.load }!
    }

    // MARK: Cores

    /// The cores this process may use: the CPUs of its affinity mask, capped by its cgroup's CPU
    /// quota (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up.
    /// A container limited to 1.5 CPUs on a 64-core host gets 2, not 64.
    public static func defaultWorkerCount() -> Int {
        var cores = affinityCount() ?? ProcessInfo.processInfo.activeProcessorCount
        if let quota = cgroupQuota() { cores = min(cores, Int(quota.rounded(.up))) }
        return max(1, cores)
    }

    /// The CPUs of the affinity mask, from `Cpus_allowed_list` in `/proc/self/status` (`0-3,6`).
    private static func affinityCount() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        var count = 0
        for range in line.dropFirst("Cpus_allowed_list:".count).split(separator: ",") {
            let bounds = range.trimmingCharacters(in: .whitespaces).split(separator: "-").compactMap { Int($0) }
            if bounds.count == 2 { count += bounds[1] - bounds[0] + 1 } else if bounds.count == 1 { count += 1 }
        }
        return count > 0 ? count : nil
    }

    /// CPUs the cgroup may use, or nil without a quota.
    static func cgroupQuota(root: String = "/sys/fs/cgroup") -> Double? {
        if let text = try? String(contentsOfFile: "\(root)/cpu.max", encoding: .utf8) {
            let fields = text.split(whereSeparator: \.isWhitespace)
            guard fields.count == 2, let quota = Double(fields[0]), let period = Double(fields[1]), period > 0 else { return nil }
            return quota / period
        }
        if let quotaText = try? String(contentsOfFile: "\(root)/cpu/cpu.cfs_quota_us", encoding: .utf8),
            let periodText = try? String(contentsOfFile: "\(root)/cpu/cpu.cfs_period_us", encoding: .utf8),
            let quota = Double(quotaText.trimmingCharacters(in: .whitespacesAndNewlines)),
            let period = Double(periodText.trimmingCharacters(in: .whitespacesAndNewlines)), quota > 0, period > 0
        {
            return quota / period
        }
        return nil
    }
}

/// One worker thread: a task executor that runs the jobs of the tasks preferring it, in order.
public final class Worker: TaskExecutor, @unchecked Sendable {  // every stored var is guarded by `condition`
    public let index: Int
    private let condition = NSCondition()
    private var jobs: [UnownedJob] = []
    private let assigned = Atomic(0)

    init(index: Int) {
        self.index = index
        // The thread keeps its worker for the life of the process, as the pool does.
        Thread { self.run() }.start()
    }

    /// Partition tasks on this worker now.
    var load: Int { assigned.load(ordering: .relaxed) }

    func taskAdded() { assigned.add(1, ordering: .relaxed) }
    func taskRemoved() { assigned.subtract(1, ordering: .relaxed) }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        condition.lock()
        jobs.append(unowned)
        condition.signal()
        condition.unlock()
    }

    /// The thread's body: run jobs as they come, for the life of the process.
    private func run() {
        // Named from within, for `top -H` and profilers: set before the thread started, the name
        // never reached the kernel and the thread kept its creator's.
        Thread.current.name = "quix-worker-\(index)"
        var batch: [UnownedJob] = []
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            swap(&batch, &jobs)
            condition.unlock()
            for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
