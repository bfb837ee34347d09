import Foundation
import QuixPipeline
import Testing

@testable import quixd

// MARK: - Dockerfile

struct DockerInstruction {
    let keyword: String
    let arguments: String
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
func dockerInstructions() throws -> [DockerInstruction] {
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
func dockerStages() throws -> [(from: String, instructions: [DockerInstruction])] {
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

func dockerRuntime() throws -> [DockerInstruction] { try dockerStages().last?.instructions ?? [] }

func dockerEntrypoint() throws -> [String]? {
    guard let entrypoint = try dockerRuntime().last(where: { $0.keyword == "ENTRYPOINT" }) else { return nil }
    return try JSONSerialization.jsonObject(with: Data(entrypoint.arguments.utf8)) as? [String]
}

func dockerUser() throws -> String { try dockerRuntime().last { $0.keyword == "USER" }?.arguments ?? "root" }

/// The HEALTHCHECK's command, exec form.
func dockerHealthCheck() throws -> [String]? {
    guard let check = try dockerRuntime().last(where: { $0.keyword == "HEALTHCHECK" }), let command = check.arguments.range(of: "CMD ") else { return nil }
    return try JSONSerialization.jsonObject(with: Data(check.arguments[command.upperBound...].utf8)) as? [String]
}

/// The packages `apt-get install` installs in `instructions`.
func aptPackages(_ instructions: [DockerInstruction]) -> [String] {
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
let bookwormSlimLibraries: Set<String> = ["libc6", "libgcc-s1", "libstdc++6", "zlib1g"]

/// `package` and everything it depends on (Depends, Pre-Depends, every alternative), as far as
/// the packages are installed on this machine.
func dependencyClosure(_ packages: [String]) async throws -> Set<String> {
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
    @Test("stages: build (swift:6.x-bookworm) or prebuilt (a build context), the one QUIXD_FROM names, then debian:bookworm-slim; non-root, VOLUME, EXPOSE, HEALTHCHECK, ENTRYPOINT")
    func structure() throws {
        // By default (where a registry is reachable) quixd is compiled in the build stage;
        // scripts/build-image.sh selects the prebuilt stage with --build-arg QUIXD_FROM=prebuilt.
        let stages = try dockerStages()
        try #require(stages.count == 4, "\(stages.map(\.from))")
        let build = stages[0].from.split(separator: " ").map(String.init)
        #expect(build.first.map { $0.hasPrefix("swift:6.") && $0.hasSuffix("-bookworm") } == true, "\(stages[0].from)")
        #expect(build.count == 3 && build[1].uppercased() == "AS" && build[2] == "build", "\(stages[0].from)")
        #expect(stages[1].from == "scratch AS prebuilt")
        #expect(stages[2].from == "build AS quixd", "QUIXD_FROM defaults to the build stage: \(stages[2].from)")
        #expect(stages[3].from == "debian:bookworm-slim")
        let stageName = "quixd"

        let buildRuns = stages[0].instructions.filter { $0.keyword == "RUN" }.map(\.arguments)
        #expect(Set(aptPackages(stages[0].instructions)).isSuperset(of: ["librdkafka-dev", "liblmdb-dev", "libcurl4-openssl-dev", "pkg-config"]))
        #expect(buildRuns.contains { $0.contains("swift build -c release --static-swift-stdlib --product quixd") })
        // Both ways give the same two files in /out.
        #expect(buildRuns.contains { $0.contains("/out/quixd") && $0.contains("/out/swift-backtrace-static") })
        #expect(stages[1].instructions.map(\.keyword) == ["COPY"])
        #expect(stages[1].instructions.first?.arguments == "--from=quixd-bin quixd swift-backtrace-static /out/")

        let runtime = stages[3].instructions
        #expect(runtime.contains { $0.keyword == "COPY" && $0.arguments == "--from=\(stageName) /out/quixd /usr/local/bin/quixd" })
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

