import Foundation
import Glibc
import QuixKafka
import QuixPipeline
import Synchronization
import Testing
import Yams

@testable import quixd

// What `deploy/` and `systemd/` promise, checked without containers (scripts/test-deploy.sh
// runs them for real): here the systemd notification protocol of SystemdNotifier and the
// watchdog's progress test; DeployKubernetesTests, DeployUnitTests and DeployImageTests check
// the manifests, the units and the Dockerfile.

@Suite("Deploy: SystemdNotifier speaks sd_notify over a Unix datagram socket", .timeLimit(.minutes(1)))
struct DeploySystemdNotifierTests {
    @Test("READY, RELOADING with MONOTONIC_USEC, STATUS and STOPPING, then WATCHDOG pings every half timeout until stopped")
    func datagrams() async throws {
        let directory = try deployTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let address = directory.appendingPathComponent("notify").path
        let socket = try NotifySocket(address)
        let notifier = SystemdNotifier(socketPath: address, watchdogTimeout: .milliseconds(200))
        #expect(notifier.isEnabled)
        #expect(notifier.watchdogInterval == .milliseconds(100))

        notifier.ready()
        #expect(try await socket.receive() == "READY=1")

        let before = SystemdNotifier.monotonicMicroseconds()
        notifier.reloading()
        let reloading = try #require(try await socket.receive())
        let after = SystemdNotifier.monotonicMicroseconds()
        let lines = reloading.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines.count == 2 && lines.first == "RELOADING=1", "\(reloading)")
        let stamp = try #require(lines.last.flatMap { $0.hasPrefix("MONOTONIC_USEC=") ? UInt64($0.dropFirst("MONOTONIC_USEC=".count)) : nil })
        #expect((before...after).contains(stamp), "MONOTONIC_USEC \(stamp) is not CLOCK_MONOTONIC now (\(before)...\(after))")

        notifier.ready(status: "1 pipeline running")
        #expect(try await socket.receive() == "READY=1\nSTATUS=1 pipeline running")
        notifier.status("restoring trip-stats\nfrom its changelog")
        #expect(try await socket.receive() == "STATUS=restoring trip-stats from its changelog")
        notifier.stopping()
        #expect(try await socket.receive() == "STOPPING=1")
        // No watchdog pings before startWatchdog().
        #expect(try await socket.receive(within: .milliseconds(300)) == nil)

        let started = ContinuousClock.now
        notifier.startWatchdog()
        notifier.startWatchdog()  // already running: not a second pinger
        var pings: [String] = []
        for _ in 0..<3 { pings.append(try await socket.receive(within: .seconds(3)) ?? "(nothing)") }
        let elapsed = ContinuousClock.now - started
        #expect(pings == ["WATCHDOG=1", "WATCHDOG=1", "WATCHDOG=1"])
        // The first ping goes at once, the next two 100 ms apart each: one pinger, not two.
        #expect(elapsed >= .milliseconds(190), "3 pings in \(elapsed)")

        notifier.stopWatchdog()
        try await Task.sleep(for: .milliseconds(150))
        while try await socket.receive(within: .zero) != nil {}  // one ping may have been in flight
        #expect(try await socket.receive(within: .milliseconds(400)) == nil, "pings after stopWatchdog()")
    }

    @Test("an abstract socket (@name) works; an unreachable socket fails softly")
    func abstractAndUnreachable() async throws {
        let address = "@quixd-deploy-test-\(UUID().uuidString)"
        let socket = try NotifySocket(address)
        let notifier = SystemdNotifier(socketPath: address)
        #expect(notifier.notify(["READY=1", "STATUS=up"]))
        #expect(try await socket.receive() == "READY=1\nSTATUS=up")
        #expect(notifier.watchdogInterval == nil)
        notifier.startWatchdog()  // no WATCHDOG_USEC: nothing
        #expect(try await socket.receive(within: .milliseconds(200)) == nil)

        let nowhere = SystemdNotifier(socketPath: "/nonexistent/quixd-notify")
        #expect(nowhere.isEnabled)
        #expect(!nowhere.notify(["READY=1"]))
        nowhere.ready()  // logged at most, never thrown
    }

    @Test("fromEnvironment: NOTIFY_SOCKET, WATCHDOG_USEC only for this WATCHDOG_PID, and nothing without NOTIFY_SOCKET")
    func environment() {
        let none = SystemdNotifier.fromEnvironment(["WATCHDOG_USEC": "30000000"])
        #expect(!none.isEnabled)
        #expect(none.watchdogTimeout == nil)
        #expect(!none.notify(["READY=1"]))
        none.ready()
        none.startWatchdog()
        none.stopWatchdog()

        let ours = SystemdNotifier.fromEnvironment(
            ["NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "\(getpid())"])
        #expect(ours.socketPath == "/run/systemd/notify")
        #expect(ours.watchdogTimeout == .seconds(30))
        #expect(ours.watchdogInterval == .seconds(15))

        let noPID = SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": "@/org/freedesktop/systemd1/notify", "WATCHDOG_USEC": "1000000"])
        #expect(noPID.socketPath == "@/org/freedesktop/systemd1/notify")
        #expect(noPID.watchdogTimeout == .seconds(1))

        let theirs = SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "\(getpid() + 1)"])
        #expect(theirs.isEnabled)
        #expect(theirs.watchdogTimeout == nil)

        #expect(SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "soon"]).watchdogTimeout == nil)
        #expect(SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "0"]).watchdogTimeout == nil)
        #expect(!SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": "relative/notify"]).isEnabled)
        #expect(!SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": ""]).isEnabled)
        #expect(!SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": "@"]).isEnabled)
    }
}


/// /metrics text of one pipeline: `checkpoints` done, `read` messages over two partitions.
private func metricsText(_ pipeline: String, checkpoints: Int, read: Int) -> String {
    """
    # TYPE quixd_messages_in_total counter
    quixd_messages_in_total{pipeline="\(pipeline)",topic="in",partition="0"} \(read / 2)
    quixd_messages_in_total{pipeline="\(pipeline)",topic="in",partition="1"} \(read - read / 2)
    quixd_checkpoint_seconds_bucket{pipeline="\(pipeline)",le="0.001"} 0
    quixd_checkpoint_seconds_count{pipeline="\(pipeline)"} \(checkpoints)
    quixd_checkpoint_seconds_sum{pipeline="\(pipeline)"} 0.5

    """
}

@Suite("Deploy: the watchdog pings only while the pipelines make progress (ProgressWatch)")
struct DeployProgressWatchTests {
    let start = ContinuousClock.now
    let ready: [PipelineReadiness] = [("p", true, "running, partitions [0,1], 0 messages behind")]

    @Test("an idle pipeline (nothing read since its last checkpoint) is healthy however long it idles")
    func idle() {
        let watch = ProgressWatch(stallAfter: .seconds(60))
        #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: 3, read: 100), readiness: ready, now: start))
        #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: 3, read: 100), readiness: ready, now: start + .seconds(3600)))
    }

    @Test("reading without a checkpoint is healthy until stallAfter, then stalled until the next checkpoint")
    func readingWithoutCheckpoints() {
        let watch = ProgressWatch(stallAfter: .seconds(60))
        #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: 3, read: 100), readiness: ready, now: start))
        #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: 3, read: 500), readiness: ready, now: start + .seconds(59)))
        #expect(!watch.isHealthy(metrics: metricsText("p", checkpoints: 3, read: 900), readiness: ready, now: start + .seconds(61)))
        #expect(!watch.isHealthy(metrics: metricsText("p", checkpoints: 3, read: 900), readiness: ready, now: start + .seconds(90)), "still stalled")
        #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: 4, read: 950), readiness: ready, now: start + .seconds(91)), "a checkpoint is progress")
    }

    @Test("state checkpoints that keep failing (their partitions paused, nothing read) count as no progress after stallAfter")
    func failingCheckpoints() {
        let watch = ProgressWatch(stallAfter: .seconds(60))
        let failing: [PipelineReadiness] = [("p", false, "checkpoints failing for partitions [3] for 0 s (input paused, retried): diskFull")]
        // Other partitions still checkpoint: the count moves, so only the readiness shows it.
        #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: 3, read: 100), readiness: failing, now: start))
        #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: 4, read: 100), readiness: failing, now: start + .seconds(59)))
        #expect(!watch.isHealthy(metrics: metricsText("p", checkpoints: 5, read: 100), readiness: failing, now: start + .seconds(61)))
        #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: 6, read: 100), readiness: ready, now: start + .seconds(62)), "recovered")
        #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: 7, read: 100), readiness: failing, now: start + .seconds(63)), "failing anew: a new window")
    }

    @Test("a pipeline that keeps checkpointing makes progress")
    func progressing() {
        let watch = ProgressWatch(stallAfter: .seconds(10))
        for second in 0..<100 {
            #expect(watch.isHealthy(metrics: metricsText("p", checkpoints: second, read: second * 50), readiness: ready, now: start + .seconds(second)))
        }
    }

    @Test("one stalled pipeline of two is enough; /readyz's stalled (input waiting, nothing read) counts too")
    func stalledOfMany() {
        let watch = ProgressWatch(stallAfter: .seconds(10))
        let both = { (a: Int, b: Int) in metricsText("a", checkpoints: a, read: 10 * a + 5) + metricsText("b", checkpoints: 1, read: b) }
        #expect(watch.isHealthy(metrics: both(1, 5), readiness: ready, now: start))
        #expect(!watch.isHealthy(metrics: both(20, 500), readiness: ready, now: start + .seconds(20)), "b read 495 messages without a checkpoint")
        let blocked: [PipelineReadiness] = [("c", false, "stalled: 40 messages behind and no checkpoint for 60 seconds")]
        #expect(!ProgressWatch(stallAfter: .seconds(10)).isHealthy(metrics: "", readiness: blocked, now: start))
        #expect(ProgressWatch.sums(of: "quixd_messages_in_total", in: both(1, 7)) == ["a": 15, "b": 7])
    }

    @Test("startWatchdog(isHealthy:) withholds pings while it says no, and resumes")
    func pingsFollowHealth() async throws {
        let directory = try deployTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let address = directory.appendingPathComponent("notify").path
        let socket = try NotifySocket(address)
        let notifier = SystemdNotifier(socketPath: address, watchdogTimeout: .milliseconds(100))
        let healthy = Mutex(true)
        notifier.startWatchdog { healthy.withLock { $0 } }
        defer { notifier.stopWatchdog() }
        #expect(try await socket.receive(within: .seconds(2)) == "WATCHDOG=1")
        healthy.withLock { $0 = false }
        try await Task.sleep(for: .milliseconds(120))
        while try await socket.receive(within: .zero) != nil {}  // a ping may have been on its way
        #expect(try await socket.receive(within: .milliseconds(400)) == nil, "pings while unhealthy")
        healthy.withLock { $0 = true }
        #expect(try await socket.receive(within: .seconds(2)) == "WATCHDOG=1", "pings resume")
    }
}

@Suite("Deploy: quixd run notifies systemd", .timeLimit(.minutes(2)))
struct DeployNotifyTests {
    @Test("with NOTIFY_SOCKET and WATCHDOG_USEC, quixd run sends READY=1, watchdog pings, RELOADING=1 on SIGHUP, STOPPING=1 on SIGTERM")
    func notifications() async throws {
        let cluster = try MockCluster(brokers: 1)
        try cluster.createTopic("notify-in", partitions: 1)
        let directory = try deployTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let socketPath = directory.appendingPathComponent("notify.sock").path
        let socket = try NotifySocket(socketPath)
        let pipeline = directory.appendingPathComponent("p.yaml").path
        try """
            apiVersion: quixd/v1
            kind: Pipeline
            metadata: { name: notify }
            spec:
              input: { topic: notify-in, format: json }
              stages: [{ id: s, uses: select, with: { columns: [x] } }]
              output: { topic: notify-out, format: json }
            """.write(toFile: pipeline, atomically: true, encoding: .utf8)
        let daemon = try DaemonProcess(
            ["--brokers", cluster.bootstrapServers, "--http", "off", pipeline],
            environment: ["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "400000"])
        var received: [String] = []
        func next(_ prefix: String) async throws -> String? {
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                guard let datagram = try await socket.receive(within: .seconds(1)) else { continue }
                received.append(datagram)
                if datagram.hasPrefix(prefix) { return datagram }
            }
            return nil
        }
        let ready = try await next("READY=1")
        #expect(ready?.contains("STATUS=1 pipelines running") == true, "\(received)")
        #expect(try await next("WATCHDOG=1") != nil)
        #expect(try await next("WATCHDOG=1") != nil, "pings keep coming, every half of WATCHDOG_USEC")
        kill(daemon.process.processIdentifier, SIGHUP)
        let reloading = try await next("RELOADING=1")
        #expect(reloading?.contains("MONOTONIC_USEC=") == true, "\(received)")
        #expect(try await next("READY=1") != nil, "ready again after the reload")
        daemon.process.terminate()
        #expect(try await next("STOPPING=1") != nil, "\(received)")
        #expect(try await daemon.terminate() == 0, "\(daemon.log)")
    }
}
