import Synchronization

/// Runs async sections one at a time, in the order they asked. A stream's writes and its
/// buffer's timer both release rows and send them; the lock keeps each release and its sends
/// together, so messages leave in the order their rows were released. Uncontended, it takes
/// one mutex round trip and never suspends.
final class AsyncSerialLock: Sendable {
    private struct State {
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    nonisolated(nonsending) func withLock<T>(_ body: nonisolated(nonsending) () async throws -> T) async rethrows -> T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        let acquired = state.withLock { state in
            if state.held { return false }
            state.held = true
            return true
        }
        guard !acquired else { return }
        await withCheckedContinuation { continuation in
            let acquiredNow = state.withLock { state in
                if state.held {
                    state.waiters.append(continuation)
                    return false
                }
                state.held = true
                return true
            }
            if acquiredNow { continuation.resume() }
        }
    }

    /// Hands the lock to the first waiter, if any (it stays held), or frees it.
    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiters.isEmpty else {
                state.held = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
