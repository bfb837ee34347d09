import Foundation

/// The thread that commits state: LMDB write transactions end in a commit and an fsync, which
/// must not block a worker (the partitions on it would stall) or a thread of the cooperative
/// pool. One thread serves the process; checkpoints of all partitions queue on it.
final class StateCommitter: @unchecked Sendable {  // `jobs` is guarded by `condition`
    static let shared = StateCommitter()

    private let condition = NSCondition()
    private var jobs: [@Sendable () -> Void] = []

    private init() {
        // Lives as long as the process.
        let thread = Thread { self.serve() }
        thread.name = "quix-state-commit"
        thread.start()
    }

    /// Runs `body` on the state thread and returns what it returned (or throws what it threw).
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            jobs.append { continuation.resume(with: Result { try body() }) }
            condition.signal()
            condition.unlock()
        }
    }

    private func serve() {
        var batch: [@Sendable () -> Void] = []
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            swap(&batch, &jobs)
            condition.unlock()
            for job in batch { job() }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
