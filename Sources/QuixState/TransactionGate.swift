import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counts the transactions open on one environment so the map can be remapped with none open:
/// `mdb_env_set_mapsize` unmaps the file, and every pointer a live transaction (or `mdb_env_info`)
/// holds into it would dangle.
///
/// Not a `pthread_rwlock`: with `MDB_NOTLS` a read transaction may end on another thread than the
/// one that began it, and a rwlock must be released by its owner.
final class TransactionGate: Sendable {
    private let active = Mutex(0)

    /// Call before a transaction begins; blocks only while a remap runs.
    func enter() { active.withLock { $0 += 1 } }

    /// Call after the transaction ended.
    func leave() { active.withLock { $0 -= 1 } }

    /// Runs `body` once no transaction is open, holding new ones back while it runs. Returns `nil`
    /// when transactions stayed open until `timeout` passed.
    func whenIdle<R>(timeout: Duration, _ body: () -> R) -> R? {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            let result: R? = active.withLock { count in count == 0 ? body() : nil }
            if result != nil || clock.now >= deadline { return result }
            usleep(1_000)
        }
    }
}
