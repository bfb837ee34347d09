import Foundation
import Glibc
import QuixPipeline
import Testing

@testable import quixd

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
        "CapabilityBoundingSet": "", "PrivateUsers": "yes", "PrivateMounts": "yes", "ProtectProc": "invisible", "ProcSubset": "pid",
        "DevicePolicy": "closed", "SystemCallErrorNumber": "EPERM",
        // libdispatch's manager thread asks for nice -4 (see the unit's comment).
        "LimitNICE": "-4",
    ]

    @Test("notify, reload, state, user, timeouts, watchdog and hardening", arguments: ["quixd.service", "quixd@.service"])
    func keys(_ name: String) throws {
        let unit = try unitFile("systemd/\(name)")
        let service = try #require(unit["Service"])
        let template = name.contains("@")
        func value(_ key: String) -> String? { service[key]?.last }

        #expect(value("Type") == "notify")
        #expect(value("NotifyAccess") == "main")
        // SIGHUP through /bin/sh's kill builtin: /bin/kill is procps, not on every system.
        #expect(service["ExecReload"] == ["/bin/sh -c 'kill -HUP $$MAINPID'"])
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
        #expect(service["SystemCallFilter"] == ["@system-service", "~@privileged"])
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

    /// The reload defect found under a real systemd: `ExecReload=/bin/kill` needs procps, which
    /// a minimal Debian lacks. Every program the units start, but quixd, must come with any
    /// Debian system: from an Essential package.
    @Test(
        "every program the units run, but quixd, is in an Essential package",
        .enabled(if: executableOnPath("dpkg-query") != nil, "needs dpkg"), arguments: ["quixd.service", "quixd@.service"])
    func essentialPrograms(_ name: String) async throws {
        let service = try #require(try unitFile("systemd/\(name)")["Service"])
        let commands = service.filter { $0.key.hasPrefix("Exec") }.flatMap(\.value)
        #expect(commands.count >= 2)
        for command in commands {
            // The executable: the first word, without systemd's prefixes (-, @, +, !, :).
            let program = String(command.split(separator: " ").first ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "-@+!:"))
            if program.hasSuffix("/quixd") { continue }
            let real = URL(fileURLWithPath: program).resolvingSymlinksInPath().path
            let owners = try await deployExecute(try #require(executableOnPath("dpkg")), ["-S", program, real, "/usr" + program, "/usr" + real])
            // "dash: /bin/sh" (dpkg also lists diversions: "diversion by dash from: /bin/sh").
            let package = try #require(
                owners.output.split(separator: "\n").first { !$0.hasPrefix("diversion ") }.flatMap { $0.split(separator: ":").first.map(String.init) },
                "\(program) (in \(command)) belongs to no package: \(owners.error)")
            let essential = try await deployExecute(try #require(executableOnPath("dpkg-query")), ["-W", "-f=${Essential}", package])
            #expect(essential.output == "yes", "\(name): \(program) is in \(package), which is not Essential")
        }
    }

    @Test(
        "systemd-analyze security rates both units 2.0 or less (exposure)",
        .enabled(if: executableOnPath("systemd-analyze") != nil, "needs systemd-analyze (Debian package systemd)"),
        arguments: ["quixd.service", "quixd@.service"])
    func exposure(_ name: String) async throws {
        let directory = try deployTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent(name.replacingOccurrences(of: "@.", with: "@one."))
        try repoContents("systemd/\(name)").write(to: file, atomically: true, encoding: .utf8)
        let analyze = try #require(executableOnPath("systemd-analyze"))
        let result = try await deployExecute(analyze, ["security", "--offline=true", "--no-pager", file.path])
        let line = try #require(result.output.split(separator: "\n").first { $0.contains("Overall exposure level") }, "\(result.output)\(result.error)")
        let exposure = try #require(line.split(separator: ":").last?.split(separator: " ").first.flatMap { Double($0) }, "\(line)")
        #expect(exposure <= 2.0, "\(line)")
    }
}

