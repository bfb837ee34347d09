import Foundation
import Glibc
import Logging
import Synchronization

/// quixd's side of systemd's service protocol (sd_notify(3)), with plain Glibc sockets instead
/// of libsystemd: state changes go as datagrams to the Unix socket in `NOTIFY_SOCKET` (a path,
/// or `@name` for an abstract socket), one newline-separated `KEY=value` list per datagram.
///
/// - `ready()`: `READY=1`, once every pipeline has started (also after a reload).
/// - `reloading()`: `RELOADING=1` and `MONOTONIC_USEC=` (systemd 253 and later want the
///   timestamp); send `ready()` again when the reload is done.
/// - `stopping()`: `STOPPING=1`, when a SIGTERM starts the shutdown.
/// - `status(_:)`: `STATUS=…`, a line `systemctl status` shows.
/// - `startWatchdog(isHealthy:)`: `WATCHDOG=1` every half of `WATCHDOG_USEC`, from a background
///   task, when the unit has `WatchdogSec=` (and `WATCHDOG_PID`, if set, is this process), while
///   `isHealthy` says quixd makes progress (`ProgressWatch`); systemd restarts it otherwise.
///
/// Without `NOTIFY_SOCKET` (not started by systemd, or `Type=simple`) every call does nothing.
/// Sending never throws: a lost notification is logged, and quixd keeps running.
final class SystemdNotifier: Sendable {
    /// Where the datagrams go: an absolute path, or `@name` for an abstract socket; nil: nowhere.
    let socketPath: String?
    /// The service manager's watchdog timeout (`WATCHDOG_USEC`); nil when there is no watchdog.
    let watchdogTimeout: Duration?
    private let logger: Logger?
    private let watchdog = Mutex<Task<Void, Never>?>(nil)

    /// A notifier for `socketPath` (nil, empty, or neither `/…` nor `@…`: a notifier that does
    /// nothing) whose watchdog, if started, pings every half of `watchdogTimeout`.
    init(socketPath: String?, watchdogTimeout: Duration? = nil, logger: Logger? = nil) {
        let usable = socketPath.flatMap { path in path.hasPrefix("/") || (path.hasPrefix("@") && path.count > 1) ? path : nil }
        self.socketPath = usable
        self.watchdogTimeout = usable == nil ? nil : watchdogTimeout.flatMap { $0 > .zero ? $0 : nil }
        self.logger = logger
    }

    /// The notifier systemd asks for through the environment: `NOTIFY_SOCKET`, and `WATCHDOG_USEC`
    /// unless `WATCHDOG_PID` names another process.
    static func fromEnvironment(
        _ environment: [String: String] = ProcessInfo.processInfo.environment, processID: pid_t = getpid(), logger: Logger? = nil
    ) -> SystemdNotifier {
        var timeout: Duration?
        if let microseconds = environment["WATCHDOG_USEC"].flatMap({ Int64($0) }), microseconds > 0,
            environment["WATCHDOG_PID"].map({ pid_t($0) == processID }) ?? true
        {
            timeout = .microseconds(microseconds)
        }
        return SystemdNotifier(socketPath: environment["NOTIFY_SOCKET"], watchdogTimeout: timeout, logger: logger)
    }

    deinit { stopWatchdog() }

    /// Whether notifications go anywhere (quixd runs under systemd with `Type=notify`).
    var isEnabled: Bool { socketPath != nil }

    /// How often the watchdog pings: half the timeout, as sd_watchdog_enabled(3) advises.
    var watchdogInterval: Duration? { watchdogTimeout.map { $0 / 2 } }

    /// `READY=1`: startup (or a reload) is finished.
    func ready(status: String? = nil) {
        notify(["READY=1"] + Self.statusLine(status))
    }

    /// `RELOADING=1` with the `CLOCK_MONOTONIC` time: a reload starts; `ready()` ends it.
    func reloading(status: String? = nil) {
        notify(["RELOADING=1", "MONOTONIC_USEC=\(Self.monotonicMicroseconds())"] + Self.statusLine(status))
    }

    /// `STOPPING=1`: the shutdown has begun.
    func stopping(status: String? = nil) {
        notify(["STOPPING=1"] + Self.statusLine(status))
    }

    /// `STATUS=…`: free text for `systemctl status` (newlines become spaces).
    func status(_ text: String) {
        notify(Self.statusLine(text))
    }

    /// Pings `WATCHDOG=1` now and then every `watchdogInterval` from a detached task, while
    /// `isHealthy` says so, until `stopWatchdog()`. Does nothing without a watchdog timeout or
    /// when already started. Starting it early is harmless: systemd arms the watchdog once the
    /// start completes (`READY=1`) and ignores pings before. Without `isHealthy` every interval
    /// pings (the process runs); quixd passes whether its pipelines make progress, so that a
    /// stalled pipeline gets the process restarted. A missed ping is logged once, and so is the
    /// first ping after.
    ///
    /// The task runs at the default priority, not `.high`: on Linux, libdispatch gives a
    /// user-initiated worker thread nice -2, which an unprivileged service may not set, and
    /// then logs "Failed to set thread priority for worker thread … errno=13" for every new
    /// such thread (one every ping, as idle workers exit between them).
    func startWatchdog(isHealthy: @escaping @Sendable () async -> Bool = { true }) {
        guard let path = socketPath, let interval = watchdogInterval else { return }
        let logger = logger
        watchdog.withLock { task in
            guard task == nil else { return }
            task = Task.detached {
                var withheld = false
                while !Task.isCancelled {
                    if await isHealthy() {
                        if withheld { logger?.notice("systemd watchdog: progress again, pings resume") }
                        withheld = false
                        if let failure = Self.send("WATCHDOG=1", to: path) {
                            logger?.warning("systemd watchdog ping failed", metadata: ["socket": "\(path)", "error": "\(failure)"])
                        }
                    } else if !withheld {
                        withheld = true
                        logger?.error("systemd watchdog: no progress, pings withheld; systemd restarts quixd when WatchdogSec passes without one")
                    }
                    try? await Task.sleep(for: interval)
                }
            }
        }
    }

    /// Stops the watchdog pings (the process's exit stops them too).
    func stopWatchdog() {
        watchdog.withLock { task in
            task?.cancel()
            task = nil
        }
    }

    /// Sends `assignments` (`KEY=value` each) as one datagram; false when there is no socket or
    /// the send failed (logged).
    @discardableResult
    func notify(_ assignments: [String]) -> Bool {
        guard let path = socketPath, !assignments.isEmpty else { return false }
        if let failure = Self.send(assignments.joined(separator: "\n"), to: path) {
            logger?.warning("systemd notification failed", metadata: ["socket": "\(path)", "error": "\(failure)", "message": "\(assignments)"])
            return false
        }
        return true
    }

    private static func statusLine(_ status: String?) -> [String] {
        guard let status else { return [] }
        return ["STATUS=" + status.map { $0.isNewline ? " " : String($0) }.joined()]
    }

    /// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC` with.
    static func monotonicMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1_000
    }

    /// One datagram to `path` (`@name`: the abstract socket `\0name`) on a fresh socket, as
    /// sd_notify does; nil on success, else what failed.
    static func send(_ message: String, to path: String) -> String? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var name = Array(path.utf8)
        let abstract = name.first == UInt8(ascii: "@")
        if abstract { name[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        // A path needs room for its terminating NUL; an abstract name is counted by length.
        guard !name.isEmpty, name.count + (abstract ? 0 : 1) <= capacity else { return "socket path longer than \(capacity - 1) bytes" }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: name) }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path) ?? MemoryLayout<sa_family_t>.size
        let length = socklen_t(pathOffset + name.count + (abstract ? 0 : 1))

        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return "socket: \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        let bytes = Array(message.utf8)
        while true {
            let sent = bytes.withUnsafeBytes { buffer in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, buffer.baseAddress, buffer.count, 0, $0, length) }
                }
            }
            if sent >= 0 { return sent == bytes.count ? nil : "sendto: sent \(sent) of \(bytes.count) bytes" }
            if errno != EINTR { return "sendto: \(String(cString: strerror(errno)))" }
        }
    }
}

/// The systemd watchdog's question, whether quixd makes progress, answered from what its
/// pipelines report: `/readyz` (a pipeline with input waiting that stopped reading is
/// "stalled") and `/metrics` (checkpoints done, messages read). A pipeline makes progress while
/// its checkpoints succeed; one that read nothing since its last checkpoint is idle, which is
/// fine however long it lasts. It is stalled when `stallAfter` passed since its last checkpoint
/// while it read input (its checkpoints fail: a full disk, an output that takes nothing), or
/// when readiness says so. Pipelines that are starting, joining their group or restoring state
/// read nothing, so they count as idle: a broker outage alone does not get quixd restarted.
final class ProgressWatch: Sendable {
    /// How long a pipeline may read without a checkpoint (in quixd run: twice `WatchdogSec`, or
    /// ten checkpoint intervals of the slowest pipeline, whichever is longer).
    let stallAfter: Duration
    private let logger: Logger?
    private let seen = Mutex<[String: Seen]>([:])
    /// Since when each pipeline's readiness has said its state checkpoints fail (its failing
    /// partitions are paused, so it reads nothing more and the count above cannot show it).
    private let failingSince = Mutex<[String: ContinuousClock.Instant]>([:])

    private struct Seen {
        var checkpoints: Double
        /// When the checkpoint count last moved (or the pipeline was first seen), and how many
        /// messages it had read then.
        var since: ContinuousClock.Instant
        var consumedThen: Double
        var stalled = false
    }

    init(stallAfter: Duration, logger: Logger? = nil) {
        self.stallAfter = stallAfter
        self.logger = logger
    }

    /// Whether every pipeline makes progress or is idle: `metrics` is the Prometheus text of
    /// `PipelineMetrics`, `readiness` what `/readyz` reports.
    func isHealthy(metrics: String, readiness: [PipelineReadiness], now: ContinuousClock.Instant = .now) -> Bool {
        let checkpoints = Self.sums(of: "quixd_checkpoint_seconds_count", in: metrics)
        let consumed = Self.sums(of: "quixd_messages_in_total", in: metrics)
        var healthy = true
        seen.withLock { seen in
            for (pipeline, count) in checkpoints {
                let read = consumed[pipeline] ?? 0
                var entry = seen[pipeline] ?? Seen(checkpoints: count, since: now, consumedThen: read)
                if count != entry.checkpoints { entry = Seen(checkpoints: count, since: now, consumedThen: read) }
                let stalled = now - entry.since > stallAfter && read > entry.consumedThen
                if stalled && !entry.stalled {
                    logger?.error(
                        "pipeline makes no progress: no checkpoint while it reads input",
                        metadata: ["pipeline": "\(pipeline)", "since": "\(now - entry.since)", "read": "\(Int(read - entry.consumedThen))"])
                }
                entry.stalled = stalled
                seen[pipeline] = entry
                if stalled { healthy = false }
            }
        }
        for entry in readiness where entry.reason.hasPrefix("stalled") {
            logger?.error("pipeline makes no progress", metadata: ["pipeline": "\(entry.pipeline)", "readiness": "\(entry.reason)"])
            healthy = false
        }
        let failing = failingSince.withLock { failingSince in
            let now = now
            failingSince = Dictionary(uniqueKeysWithValues: readiness.filter { $0.reason.hasPrefix("checkpoints failing") }.map { entry in
                (entry.pipeline, failingSince[entry.pipeline] ?? now)
            })
            return failingSince.filter { now - $0.value > stallAfter }.keys.sorted()
        }
        for pipeline in failing {
            logger?.error("pipeline makes no progress: its state checkpoints keep failing", metadata: ["pipeline": "\(pipeline)"])
            healthy = false
        }
        return healthy
    }

    /// The samples of `metric` in Prometheus text, summed per `pipeline` label.
    static func sums(of metric: String, in text: String) -> [String: Double] {
        var sums: [String: Double] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix(metric + "{") {
            guard let start = line.range(of: "pipeline=\""), let end = line[start.upperBound...].firstIndex(of: "\""),
                let value = line.split(separator: " ").last.flatMap({ Double($0) })
            else { continue }
            sums[String(line[start.upperBound..<end]), default: 0] += value
        }
        return sums
    }
}
