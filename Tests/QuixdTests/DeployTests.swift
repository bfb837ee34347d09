import Foundation
import Glibc
import QuixKafka
import QuixPipeline
import Testing
import Yams

@testable import quixd

// What `deploy/` and `systemd/` promise, checked: the systemd notification protocol of
// SystemdNotifier, the Kubernetes manifests (schemas and the parts that matter), the systemd
// units (systemd-analyze verify and their keys) and the Dockerfile (its structure, its runtime
// packages against `ldd` of quixd, its HEALTHCHECK against a live /healthz).

private let deployRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

private func repoPath(_ relative: String) -> String { deployRoot.appendingPathComponent(relative).path }

private func repoContents(_ relative: String) throws -> String { try String(contentsOfFile: repoPath(relative), encoding: .utf8) }

/// The first executable called `name` on PATH.
private func executableOnPath(_ name: String) -> String? {
    let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
    return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// The quixd built with the tests (next to the test bundle).
private func deployBuiltQuixd() throws -> String {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("quixd").path
    try #require(FileManager.default.isExecutableFile(atPath: binary), "quixd is not built at \(binary)")
    return binary
}

private func deployTemporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

/// A program started with its outputs in temporary files (nothing to drain, no pipe fills up).
private final class DeployProcess {
    let process = Process()
    private let directory: URL

    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws {
        directory = try deployTemporaryDirectory()
        let output = directory.appendingPathComponent("stdout"), error = directory.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        _ = FileManager.default.createFile(atPath: error.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: output)
        process.standardError = try FileHandle(forWritingTo: error)
        try process.run()
    }

    deinit {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: directory)
    }

    var output: String { (try? String(contentsOf: directory.appendingPathComponent("stdout"), encoding: .utf8)) ?? "" }
    var error: String { (try? String(contentsOf: directory.appendingPathComponent("stderr"), encoding: .utf8)) ?? "" }

    /// Waits for the exit (at most `timeout`, then kills it); the exit status.
    func wait(timeout: Duration = .seconds(120)) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline {
                kill(process.processIdentifier, SIGKILL)
                Issue.record("\(process.executableURL!.lastPathComponent) did not exit within \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }
}

/// Runs a program to completion: its exit status, standard output and standard error.
private func deployExecute(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
    let launched = try DeployProcess(executable, arguments)
    let status = try await launched.wait()
    return (status, launched.output, launched.error)
}

// MARK: - SystemdNotifier

/// A Unix datagram socket bound to `address` (a path, or `@name`: abstract) that collects what
/// a SystemdNotifier sends, as systemd's notify socket would.
private final class NotifySocket {
    let fd: Int32
    private let boundPath: String?

    init(_ address: String) throws {
        var name = Array(address.utf8)
        let abstract = name.first == UInt8(ascii: "@")
        if abstract { name[0] = 0 }
        boundPath = abstract ? nil : address
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0, "socket: \(String(cString: strerror(errno)))")
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { $0.copyBytes(from: name) }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + name.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &socketAddress) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        try #require(bound == 0, "bind \(address): \(String(cString: strerror(errno)))")
    }

    deinit {
        close(fd)
        if let boundPath { unlink(boundPath) }
    }

    /// The next datagram, or nil if none arrives within `timeout`.
    func receive(within timeout: Duration = .seconds(5)) async throws -> String? {
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if count >= 0 { return String(decoding: buffer[..<count], as: UTF8.self) }
            let failure = errno
            try #require(failure == EAGAIN || failure == EWOULDBLOCK || failure == EINTR, "recv: \(String(cString: strerror(failure)))")
            if ContinuousClock.now >= deadline { return nil }
            try await Task.sleep(for: .milliseconds(5))
        }
    }
}

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

// MARK: - DeployYAML

/// A read-only walk through what Yams loads (`[AnyHashable: Any]`, `[Any]`, scalars).
private struct DeployYAML: @unchecked Sendable {
    let value: Any?

    init(_ value: Any?) { self.value = value }

    subscript(_ key: String) -> DeployYAML { DeployYAML((value as? [AnyHashable: Any])?[AnyHashable(key)]) }
    subscript(_ index: Int) -> DeployYAML { DeployYAML(array.indices.contains(index) ? array[index].value : nil) }
    var string: String? { value as? String }
    var int: Int? { value as? Int }
    var bool: Bool? { value as? Bool }
    var exists: Bool { value != nil }
    var array: [DeployYAML] { (value as? [Any])?.map(DeployYAML.init) ?? [] }
    var keys: [String] { ((value as? [AnyHashable: Any])?.keys.compactMap { $0.base as? String } ?? []).sorted() }
    /// The element of an array of mappings whose `name` is `name`.
    func named(_ name: String) -> DeployYAML { array.first { $0["name"].string == name } ?? DeployYAML(nil) }
}

/// Every document of a DeployYAML file.
private func yamlDocuments(_ relative: String) throws -> [DeployYAML] {
    var sequence = try Yams.load_all(yaml: repoContents(relative))
    var result: [DeployYAML] = []
    while let document = sequence.next() { result.append(DeployYAML(document)) }
    if let error = sequence.error { throw error }
    return result
}

/// The daemon config in `text`, loaded as quixd loads it (no QUIXD_* variables).
private func deployDaemonConfig(_ text: String) throws -> DaemonConfig {
    let directory = try deployTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("quixd.yaml")
    try text.write(to: file, atomically: true, encoding: .utf8)
    return try DaemonConfigLoader.load(file: file.path, environment: [:])
}

private func deploySeconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The port of `http.listen`.
private func listenPort(_ config: DaemonConfig) -> Int? { config.httpListen?.split(separator: ":").last.flatMap { Int($0) } }

// MARK: - Kubernetes

private let kubernetesDirectory = "deploy/kubernetes"
private let kubernetesValidate = repoPath(".venv-deploy/bin/kubernetes-validate")

/// The manifests: every .yaml of deploy/kubernetes but the kustomization itself.
private func kubernetesManifests() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: repoPath(kubernetesDirectory))
        .filter { $0.hasSuffix(".yaml") && $0 != "kustomization.yaml" }.sorted()
}

/// Every resource of every manifest, by `kind/name`.
private func kubernetesResources() throws -> [String: DeployYAML] {
    var resources: [String: DeployYAML] = [:]
    for file in try kubernetesManifests() {
        for document in try yamlDocuments("\(kubernetesDirectory)/\(file)") {
            let key = "\(document["kind"].string ?? "?")/\(document["metadata"]["name"].string ?? "?")"
            #expect(resources[key] == nil, "\(key) is defined twice")
            resources[key] = document
        }
    }
    return resources
}

@Suite("Deploy: the Kubernetes manifests")
struct DeployKubernetesTests {
    @Test(
        "kubernetes-validate --strict accepts every manifest (Kubernetes 1.37 and 1.29 schemas)",
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: kubernetesValidate),
            "needs .venv-deploy: run scripts/setup-deploy-checks.sh (kubernetes-validate from PyPI)"))
    func schemas() async throws {
        let files = try kubernetesManifests().map { repoPath("\(kubernetesDirectory)/\($0)") }
        let resources = try kubernetesResources().count
        for version in [nil, "1.29.0"] as [String?] {
            let result = try await deployExecute(kubernetesValidate, ["--strict"] + (version.map { ["--kubernetes-version", $0] } ?? []) + files)
            let report = result.output + result.error
            #expect(result.status == 0, "\(report)")
            #expect(report.components(separatedBy: " passed for resource ").count - 1 == resources, "\(report)")
            #expect(!report.contains("WARN") && !report.contains("ERROR"), "\(report)")
        }
    }

    @Test("the kustomization lists every manifest, and names the StatefulSet's image")
    func kustomization() throws {
        let kustomization = try #require(yamlDocuments("\(kubernetesDirectory)/kustomization.yaml").first)
        #expect(kustomization["kind"].string == "Kustomization")
        let listed = kustomization["resources"].array.compactMap(\.string)
        #expect(listed.sorted() == (try kubernetesManifests()))
        #expect(Set(listed).count == listed.count, "listed twice: \(listed)")
        let image = try #require(try kubernetesResources()["StatefulSet/quixd"]?["spec"]["template"]["spec"]["containers"][0]["image"].string)
        let images = kustomization["images"].array.compactMap { $0["name"].string }
        #expect(images.contains(String(image.split(separator: ":").first ?? "")), "\(image) vs \(images)")
    }

    @Test("the StatefulSet: state volume, probes, static membership, grace, credentials, config mounts, non-root")
    func statefulSet() throws {
        let resources = try kubernetesResources()
        let set = try #require(resources["StatefulSet/quixd"])
        let configText = try #require(resources["ConfigMap/quixd-config"]?["data"]["quixd.yaml"].string)
        let config = try deployDaemonConfig(configText)
        let pod = set["spec"]["template"]["spec"]
        let containers = pod["containers"].array
        try #require(containers.count == 1)
        let container = containers[0]
        let mounts = container["volumeMounts"].array

        // State: a volumeClaimTemplate mounted at state.directory.
        let claims = set["spec"]["volumeClaimTemplates"].array.compactMap { $0["metadata"]["name"].string }
        let stateMount = mounts.first { $0["mountPath"].string == config.stateDirectory }
        #expect(stateMount.flatMap { $0["name"].string }.map { claims.contains($0) } == true, "no volumeClaimTemplate (\(claims)) at \(config.stateDirectory)")
        #expect(set["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"].array.compactMap(\.string) == ["ReadWriteOnce"])
        #expect(set["spec"]["serviceName"].string == "quixd")

        // Probes on http.listen's port.
        let httpPort = try #require(listenPort(config))
        #expect(httpPort == 8080)
        func probePort(_ probe: DeployYAML) -> Int? {
            if let number = probe["httpGet"]["port"].int { return number }
            return probe["httpGet"]["port"].string.flatMap { container["ports"].named($0)["containerPort"].int }
        }
        #expect(container["readinessProbe"]["httpGet"]["path"].string == "/readyz")
        #expect(probePort(container["readinessProbe"]) == httpPort)
        #expect(container["livenessProbe"]["httpGet"]["path"].string == "/healthz")
        #expect(probePort(container["livenessProbe"]) == httpPort)
        #expect(container["ports"].array.contains { $0["containerPort"].int == httpPort })

        // Static membership: group.instance.id is the pod name.
        let env = container["env"]
        #expect(env.named("QUIXD_GROUP_INSTANCE_ID")["valueFrom"]["fieldRef"]["fieldPath"].string == "metadata.name")
        #expect(DaemonConfigLoader.environmentKeys["QUIXD_GROUP_INSTANCE_ID"] == "kafka.groupInstanceId")

        // SIGTERM's grace fits in the pod's, with a margin.
        let grace = try #require(pod["terminationGracePeriodSeconds"].int)
        #expect(Double(grace) >= deploySeconds(config.shutdownGrace) + 5, "terminationGracePeriodSeconds \(grace) vs shutdown.grace \(config.shutdownGrace)")

        // SASL credentials from the Secret, whose keys exist.
        let secret = try #require(resources["Secret/quixd-kafka"])
        for (variable, key) in [("QUIXD_SASL_USERNAME", "username"), ("QUIXD_SASL_PASSWORD", "password")] {
            let reference = env.named(variable)["valueFrom"]["secretKeyRef"]
            #expect(reference["name"].string == "quixd-kafka", "\(variable)")
            #expect(reference["key"].string == key, "\(variable)")
            #expect(secret["stringData"][key].exists || secret["data"][key].exists, "the Secret has no \(key)")
        }

        // The config file where the image's entrypoint reads it; the pipelines directory whole
        // (no subPath: ConfigMap updates reach it), where the config lists it.
        let volumes = pod["volumes"]
        let configMount = try #require(mounts.first { $0["mountPath"].string == "/etc/quixd/quixd.yaml" })
        #expect(configMount["subPath"].string == "quixd.yaml")
        #expect(volumes.named(configMount["name"].string ?? "")["configMap"]["name"].string == "quixd-config")
        let pipelinesMount = try #require(mounts.first { $0["mountPath"].string == "/etc/quixd/pipelines" })
        #expect(!pipelinesMount["subPath"].exists)
        #expect(volumes.named(pipelinesMount["name"].string ?? "")["configMap"]["name"].string == "quixd-pipelines")
        #expect(config.pipelines == ["/etc/quixd/pipelines"])
        #expect(try dockerEntrypoint() == ["quixd", "run", "--config", "/etc/quixd/quixd.yaml"])

        // Non-root, as the image's user.
        #expect(pod["securityContext"]["runAsNonRoot"].bool == true)
        let user = try #require(pod["securityContext"]["runAsUser"].int)
        #expect(user != 0)
        #expect(String(user) == (try dockerUser()).split(separator: ":").first.map(String.init))
        #expect(container["securityContext"]["allowPrivilegeEscalation"].bool == false)
        #expect(container["resources"]["requests"].exists && container["resources"]["limits"].exists)
    }

    @Test("the ConfigMaps: the config loads as quixd loads it; the pipeline is pipelines/trip-stats.yaml verbatim")
    func configMaps() throws {
        let resources = try kubernetesResources()
        let config = try deployDaemonConfig(try #require(resources["ConfigMap/quixd-config"]?["data"]["quixd.yaml"].string))
        #expect(config.stateDirectory == "/var/lib/quixd")
        #expect(config.kafka.groupInstanceID == nil, "groupInstanceId comes from the pod name, not the ConfigMap")
        let pipelines = try #require(resources["ConfigMap/quixd-pipelines"]?["data"])
        #expect(pipelines.keys == ["trip-stats.yaml"])
        #expect(pipelines["trip-stats.yaml"].string == (try repoContents("pipelines/trip-stats.yaml")))
    }

    @Test("the Services and the PodDisruptionBudget select the StatefulSet's pods")
    func servicesAndBudget() throws {
        let resources = try kubernetesResources()
        let set = try #require(resources["StatefulSet/quixd"])
        let labels = set["spec"]["template"]["metadata"]["labels"]
        func selects(_ selector: DeployYAML) -> Bool {
            !selector.keys.isEmpty && selector.keys.allSatisfy { labels[$0].string == selector[$0].string }
        }
        #expect(selects(set["spec"]["selector"]["matchLabels"]))

        let headless = try #require(resources["Service/\(set["spec"]["serviceName"].string ?? "")"])
        #expect(headless["spec"]["clusterIP"].string == "None")
        #expect(selects(headless["spec"]["selector"]))

        let metrics = try #require(resources["Service/quixd-metrics"])
        #expect(selects(metrics["spec"]["selector"]))
        let annotations = metrics["metadata"]["annotations"]
        #expect(annotations["prometheus.io/scrape"].string == "true")
        #expect(annotations["prometheus.io/port"].string == "8080")
        #expect(annotations["prometheus.io/path"].string == "/metrics")
        #expect(metrics["spec"]["ports"].array.contains { $0["port"].int == 8080 })

        let budget = try #require(resources["PodDisruptionBudget/quixd"])
        #expect(budget["spec"]["maxUnavailable"].int == 1)
        #expect(selects(budget["spec"]["selector"]["matchLabels"]))
    }
}

// MARK: - systemd

/// A unit file: section → key → values in order (an empty assignment is kept as "").
private func unitFile(_ relative: String) throws -> [String: [String: [String]]] {
    var sections: [String: [String: [String]]] = [:]
    var section = ""
    var pending = ""
    for raw in try repoContents(relative).split(separator: "\n", omittingEmptySubsequences: false) {
        var line = raw.trimmingCharacters(in: .whitespaces)
        if pending.isEmpty, line.hasPrefix("#") || line.hasPrefix(";") || line.isEmpty { continue }
        if line.hasSuffix("\\") {
            pending += line.dropLast() + " "
            continue
        }
        line = pending + line
        pending = ""
        if line.hasPrefix("[") && line.hasSuffix("]") {
            section = String(line.dropFirst().dropLast())
        } else if let equals = line.firstIndex(of: "=") {
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            sections[section, default: [:]][key, default: []].append(line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces))
        }
    }
    return sections
}

/// A systemd time span in seconds (`45`, `45s`, `1min 30s`, `2m`).
private func timeSpan(_ text: String) -> Double? {
    let units: [(String, Double)] = [("min", 60), ("ms", 0.001), ("h", 3600), ("m", 60), ("s", 1)]
    var total = 0.0
    for part in text.split(separator: " ") {
        guard let unit = units.first(where: { part.hasSuffix($0.0) && Double(part.dropLast($0.0.count)) != nil }) else {
            guard let value = Double(part) else { return nil }
            total += value
            continue
        }
        total += Double(part.dropLast(unit.0.count))! * unit.1
    }
    return total
}

@Suite("Deploy: the systemd units")
struct DeploySystemdUnitTests {
    static let hardening: [String: String] = [
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "",
    ]

    @Test("notify, reload, state, user, timeouts, watchdog and hardening", arguments: ["quixd.service", "quixd@.service"])
    func keys(_ name: String) throws {
        let unit = try unitFile("systemd/\(name)")
        let service = try #require(unit["Service"])
        let template = name.contains("@")
        func value(_ key: String) -> String? { service[key]?.last }

        #expect(value("Type") == "notify")
        #expect(value("NotifyAccess") == "main")
        #expect(service["ExecReload"] == ["/bin/kill -HUP $MAINPID"])
        #expect(value("Restart") == "on-failure")
        #expect(value("User") == "quixd")
        #expect(service["DynamicUser"] == nil)

        let stateDirectory = template ? "quixd/%i" : "quixd"
        #expect(service["StateDirectory"] == [stateDirectory])
        let start = try #require(service["ExecStart"]).joined(separator: " ").split(separator: " ").map(String.init)
        #expect(Array(start.prefix(4)) == ["/usr/local/bin/quixd", "run", "--config", "/etc/quixd/quixd.yaml"])
        let stateFlag = try #require(start.firstIndex(of: "--state-dir"))
        #expect(start.indices.contains(stateFlag + 1) && start[stateFlag + 1] == "/var/lib/\(stateDirectory)")
        if template {
            #expect(start.last == "/etc/quixd/pipelines/%i.yaml")
            #expect(unit["Unit"]?["ConditionPathExists"] == ["/etc/quixd/pipelines/%i.yaml"])
        }

        // TimeoutStopSec covers shutdown.grace (the default, and that of the example config) with a margin.
        let docker = try deployDaemonConfig(repoContents("deploy/docker/quixd.yaml"))
        let grace = max(deploySeconds(DaemonConfig().shutdownGrace), deploySeconds(docker.shutdownGrace))
        let stop = try #require(value("TimeoutStopSec").flatMap(timeSpan))
        #expect(stop >= grace + 5, "TimeoutStopSec \(stop) s vs shutdown.grace \(grace) s")

        // WatchdogSec=30, and quixd pings at half of it.
        let watchdog = try #require(value("WatchdogSec").flatMap(timeSpan))
        #expect(watchdog == 30)
        let notifier = SystemdNotifier.fromEnvironment(["NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "\(Int(watchdog * 1_000_000))"])
        #expect(notifier.watchdogInterval == .seconds(15))

        for (key, expected) in Self.hardening {
            #expect(service[key] == [expected], "\(key)")
        }
        #expect(Set(value("RestrictAddressFamilies")?.split(separator: " ").map(String.init) ?? []) == ["AF_INET", "AF_INET6", "AF_UNIX"])
        #expect(unit["Install"]?["WantedBy"] == ["multi-user.target"])
    }

    @Test(
        "systemd-analyze verify accepts both units (ExecStart pointing at the built quixd)",
        .enabled(if: executableOnPath("systemd-analyze") != nil, "needs systemd-analyze (Debian package systemd)"))
    func verify() async throws {
        let quixd = try deployBuiltQuixd()
        let analyze = try #require(executableOnPath("systemd-analyze"))
        let directory = try deployTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (file, instance) in [("quixd.service", "quixd.service"), ("quixd@.service", "quixd@trip-stats.service")] {
            let text = try repoContents("systemd/\(file)")
            #expect(text.contains("ExecStart=/usr/local/bin/quixd "))
            try text.replacingOccurrences(of: "ExecStart=/usr/local/bin/quixd ", with: "ExecStart=\(quixd) ")
                .write(to: directory.appendingPathComponent(file), atomically: true, encoding: .utf8)
            let result = try await deployExecute(analyze, ["verify", "--man=no", directory.appendingPathComponent(instance).path])
            #expect(result.status == 0, "\(instance): \(result.error)")
            #expect((result.output + result.error).isEmpty, "\(instance): \(result.output)\(result.error)")
        }
    }

    /// systemd's MemoryDenyWriteExecute= is a seccomp filter; the kernel's PR_SET_MDWE (Linux 6.3+)
    /// refuses the same writable+executable mappings, and is kept across execve.
    @Test(
        "quixd runs a stateful pipeline under PR_SET_MDWE, as MemoryDenyWriteExecute=yes would confine it",
        .enabled(if: executableOnPath("python3") != nil && kernelAtLeast(6, 3), "needs python3 and Linux 6.3 or later (PR_SET_MDWE)"),
        .timeLimit(.minutes(2)))
    func memoryDenyWriteExecute() async throws {
        let quixd = try deployBuiltQuixd()
        let directory = try deployTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let wrapper = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
                sys.exit("PR_SET_MDWE: errno %d" % ctypes.get_errno())
            os.execv(sys.argv[1], sys.argv[1:])
            """
        let daemon = try DeployProcess(
            try #require(executableOnPath("python3")),
            ["-c", wrapper, quixd, "run", "--http", "off", "--state-dir", directory.appendingPathComponent("state").path, repoPath("pipelines/trip-stats.yaml")])
        // The development broker, the sample data, the stages and their LMDB state: until the
        // first window comes out.
        let deadline = ContinuousClock.now + .seconds(60)
        while !daemon.output.contains("[trip-stats → trip-stats]"), daemon.process.isRunning, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(daemon.output.contains("[trip-stats → trip-stats]"), "\(daemon.error.suffix(2000))")
        if daemon.process.isRunning { kill(daemon.process.processIdentifier, SIGTERM) }
        #expect(try await daemon.wait(timeout: .seconds(45)) == 0, "\(daemon.error.suffix(2000))")
    }
}

private func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool {
    guard let release = try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8) else { return false }
    let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    return numbers.count == 2 && (numbers[0], numbers[1]) >= (major, minor)
}

// MARK: - Dockerfile

private struct DockerInstruction {
    let keyword: String
    let arguments: String
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
private func dockerInstructions() throws -> [DockerInstruction] {
    var instructions: [DockerInstruction] = []
    var pending = ""
    for raw in try repoContents("deploy/docker/Dockerfile").split(separator: "\n", omittingEmptySubsequences: false) {
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.hasPrefix("#") || line.isEmpty { continue }
        if line.hasSuffix("\\") {
            pending += line.dropLast() + " "
            continue
        }
        let joined = pending + line
        pending = ""
        let parts = joined.split(separator: " ", maxSplits: 1).map(String.init)
        instructions.append(DockerInstruction(keyword: parts[0].uppercased(), arguments: parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""))
    }
    return instructions
}

/// The stages: each FROM and the instructions after it (ARGs before the first FROM filled in).
private func dockerStages() throws -> [(from: String, instructions: [DockerInstruction])] {
    var arguments: [String: String] = [:]
    var stages: [(from: String, instructions: [DockerInstruction])] = []
    for instruction in try dockerInstructions() {
        switch instruction.keyword {
        case "ARG" where stages.isEmpty:
            let parts = instruction.arguments.split(separator: "=", maxSplits: 1).map(String.init)
            arguments[parts[0]] = parts.count > 1 ? parts[1] : ""
        case "FROM":
            var from = instruction.arguments
            for (name, value) in arguments { from = from.replacingOccurrences(of: "${\(name)}", with: value) }
            stages.append((from, []))
        default:
            if !stages.isEmpty { stages[stages.count - 1].instructions.append(instruction) }
        }
    }
    return stages
}

private func dockerRuntime() throws -> [DockerInstruction] { try dockerStages().last?.instructions ?? [] }

private func dockerEntrypoint() throws -> [String]? {
    guard let entrypoint = try dockerRuntime().last(where: { $0.keyword == "ENTRYPOINT" }) else { return nil }
    return try JSONSerialization.jsonObject(with: Data(entrypoint.arguments.utf8)) as? [String]
}

private func dockerUser() throws -> String { try dockerRuntime().last { $0.keyword == "USER" }?.arguments ?? "root" }

/// The HEALTHCHECK's command, exec form.
private func dockerHealthCheck() throws -> [String]? {
    guard let check = try dockerRuntime().last(where: { $0.keyword == "HEALTHCHECK" }), let command = check.arguments.range(of: "CMD ") else { return nil }
    return try JSONSerialization.jsonObject(with: Data(check.arguments[command.upperBound...].utf8)) as? [String]
}

/// The packages `apt-get install` installs in `instructions`.
private func aptPackages(_ instructions: [DockerInstruction]) -> [String] {
    instructions.filter { $0.keyword == "RUN" }.flatMap { run -> [String] in
        run.arguments.components(separatedBy: "&&").flatMap { command -> [String] in
            let words = command.split(separator: " ").map(String.init)
            guard let install = words.firstIndex(of: "install"), words[..<install].contains("apt-get") else { return [] }
            return words[(install + 1)...].filter { !$0.hasPrefix("-") }
        }
    }
}

/// Packages in debian:bookworm-slim that hold shared libraries (an assumption: they are part of
/// its required set, or apt's dependencies): what the runtime stage may rely on without
/// installing.
private let bookwormSlimLibraries: Set<String> = ["libc6", "libgcc-s1", "libstdc++6", "zlib1g"]

/// `package` and everything it depends on (Depends, Pre-Depends, every alternative), as far as
/// the packages are installed on this machine.
private func dependencyClosure(_ packages: [String]) async throws -> Set<String> {
    guard let query = executableOnPath("dpkg-query") else { return Set(packages) }
    var seen = Set<String>()
    var frontier = Set(packages)
    while !frontier.isEmpty {
        seen.formUnion(frontier)
        // Exit status 1 when some package is not installed (or virtual): the others still print.
        let result = try await deployExecute(query, ["-W", "-f=${Depends}, ${Pre-Depends}\n"] + frontier.sorted())
        var next = Set<String>()
        for alternative in result.output.split(whereSeparator: { $0 == "," || $0 == "|" || $0 == "\n" }) {
            guard let word = alternative.split(separator: " ").first, let name = word.split(separator: ":").first else { continue }
            next.insert(String(name))
        }
        frontier = next.subtracting(seen)
    }
    return seen
}

@Suite("Deploy: the Dockerfile")
struct DeployDockerfileTests {
    @Test("two stages (swift:6.x-bookworm, then debian:bookworm-slim), non-root, VOLUME, EXPOSE, HEALTHCHECK, ENTRYPOINT")
    func structure() throws {
        let stages = try dockerStages()
        try #require(stages.count == 2, "\(stages.map(\.from))")
        let build = stages[0].from.split(separator: " ").map(String.init)
        #expect(build.first.map { $0.hasPrefix("swift:6.") && $0.hasSuffix("-bookworm") } == true, "\(stages[0].from)")
        #expect(build.count == 3 && build[1].uppercased() == "AS", "\(stages[0].from)")
        let stageName = build.last ?? ""
        #expect(stages[1].from == "debian:bookworm-slim")

        let buildRuns = stages[0].instructions.filter { $0.keyword == "RUN" }.map(\.arguments)
        #expect(Set(aptPackages(stages[0].instructions)).isSuperset(of: ["librdkafka-dev", "liblmdb-dev", "pkg-config"]))
        #expect(buildRuns.contains { $0.contains("swift build -c release --static-swift-stdlib --product quixd") })

        let runtime = stages[1].instructions
        #expect(runtime.contains { $0.keyword == "COPY" && $0.arguments.hasPrefix("--from=\(stageName) ") && $0.arguments.hasSuffix(" /usr/local/bin/quixd") })
        let user = try dockerUser()
        #expect(!["root", "0"].contains(user.split(separator: ":").first.map(String.init) ?? "root"), "USER \(user)")
        #expect(runtime.contains { $0.keyword == "RUN" && $0.arguments.contains("useradd") && $0.arguments.contains("--uid \(user.split(separator: ":")[0])") })

        let docker = try deployDaemonConfig(repoContents("deploy/docker/quixd.yaml"))
        #expect(runtime.contains { $0.keyword == "VOLUME" && $0.arguments.split(separator: " ").contains { $0 == docker.stateDirectory || $0 == "[\"\(docker.stateDirectory)\"]" } },
                "VOLUME \(docker.stateDirectory)")
        #expect(docker.stateDirectory == "/var/lib/quixd")
        let httpPort = try #require(listenPort(docker))
        #expect(runtime.contains { $0.keyword == "EXPOSE" && $0.arguments.split(separator: " ").contains { $0 == "\(httpPort)" || $0 == "\(httpPort)/tcp" } })
        #expect(try dockerHealthCheck()?.joined(separator: " ").contains("/dev/tcp/127.0.0.1/\(httpPort)") == true)
        #expect(docker.pipelines == ["/etc/quixd/pipelines"])
        #expect(try dockerEntrypoint() == ["quixd", "run", "--config", "/etc/quixd/quixd.yaml"])
        #expect(runtime.contains { $0.keyword == "COPY" && $0.arguments == "deploy/docker/quixd.yaml /etc/quixd/quixd.yaml" })
    }

    @Test(
        "the runtime stage's packages hold every shared library ldd finds for quixd",
        .enabled(if: executableOnPath("ldd") != nil && executableOnPath("dpkg") != nil, "needs ldd and dpkg"))
    func runtimeLibraries() async throws {
        let runtime = aptPackages(try dockerRuntime())
        #expect(Set(runtime).isSuperset(of: ["librdkafka1", "liblmdb0", "ca-certificates"]), "\(runtime)")
        #expect(!runtime.contains { $0.hasSuffix("-dev") }, "\(runtime)")
        let provided = try await dependencyClosure(runtime).union(bookwormSlimLibraries)

        // Prefer the image's kind of binary, a release build with --static-swift-stdlib in this
        // build directory; else the debug quixd, whose Swift runtime libraries (from the
        // toolchain, in no Debian package) the image links in statically.
        let debug = try deployBuiltQuixd()
        let release = URL(fileURLWithPath: debug).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("release/quixd").path
        let lddTool = try #require(executableOnPath("ldd"))
        // A release build without --static-swift-stdlib (left by `swift build -c release`) is not
        // the image's kind of binary: the debug one stands in for it then.
        var binary = debug
        if FileManager.default.isExecutableFile(atPath: release), try await !deployExecute(lddTool, [release]).output.contains("libswiftCore") {
            binary = release
        }
        let ldd = try await deployExecute(lddTool, [binary])
        #expect(ldd.status == 0, "\(ldd.error)")
        var files: [String] = []
        for line in ldd.output.split(separator: "\n") {
            #expect(!line.contains("not found"), "\(line)")
            let fields = line.split(separator: " ").map(String.init)
            let file = fields.count >= 3 && fields[1] == "=>" ? fields[2] : fields.first ?? ""
            if file.hasPrefix("/") { files.append(file) }  // not linux-vdso.so.1
        }
        // dpkg knows a library by the path its package ships (/lib/... or /usr/lib/...: merged
        // /usr), and the file ldd names may be a symbolic link to it.
        func candidates(_ file: String) -> [String] {
            let real = (try? FileManager.default.destinationOfSymbolicLink(atPath: file)).map {
                URL(fileURLWithPath: $0, relativeTo: URL(fileURLWithPath: file).deletingLastPathComponent()).standardizedFileURL.path
            } ?? file
            return [file, real].flatMap { [$0, $0.hasPrefix("/usr/") ? String($0.dropFirst(4)) : "/usr" + $0] }
        }
        let search = try await deployExecute(try #require(executableOnPath("dpkg")), ["-S"] + Set(files.flatMap(candidates)).sorted())
        var owners: [String: String] = [:]  // path → package, from lines "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6"
        for line in search.output.split(separator: "\n") {
            guard let separator = line.range(of: ": /") else { continue }
            let package = line[..<separator.lowerBound].split(separator: ",").first?.split(separator: ":").first.map(String.init)
            owners[String(line[line.index(separator.lowerBound, offsetBy: 2)...])] = package
        }
        var libraries = 0
        for file in files {
            guard let owner = candidates(file).lazy.compactMap({ owners[$0] }).first else {
                #expect(file.contains("/lib/swift/") && binary == debug, "\(file) (of \(binary)) belongs to no Debian package")
                continue
            }
            libraries += 1
            let covered = provided.contains(owner)
            #expect(covered, "\(file) is in \(owner), which the runtime stage (\(runtime)) does not install, nor its dependencies")
        }
        #expect(libraries >= 5, "\(ldd.output)")
    }

    @Test("the HEALTHCHECK command passes against a live /healthz and fails with nothing listening or a 404")
    func healthCheck() async throws {
        let command = try #require(try dockerHealthCheck())
        try #require(command.count == 3 && command[0] == "bash" && command[1] == "-c", "\(command)")
        let bash = try #require(executableOnPath("bash"))
        let server = OperationsServer(address: "127.0.0.1:0", metrics: PipelineMetrics(), readiness: { [] })
        let script = try await server.serve { port in
            let script = command[2].replacingOccurrences(of: "/dev/tcp/127.0.0.1/8080", with: "/dev/tcp/127.0.0.1/\(port)")
            #expect(script != command[2])
            let healthy = try await deployExecute(bash, ["-c", script])
            #expect(healthy.status == 0, "\(healthy.error)")
            let missing = try await deployExecute(bash, ["-c", script.replacingOccurrences(of: "GET /healthz", with: "GET /nothing-here")])
            #expect(missing.status != 0)
            return script
        }
        let down = try await deployExecute(bash, ["-c", script])
        #expect(down.status != 0)
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
