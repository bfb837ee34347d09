import Foundation
import Glibc
import QuixPipeline
import Testing
import Yams

@testable import quixd

// What the deploy tests share: the repository's files, programs run to completion, a notify
// socket, YAML walks, and the daemon config read as quixd reads it.

let deployRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

func repoPath(_ relative: String) -> String { deployRoot.appendingPathComponent(relative).path }

func repoContents(_ relative: String) throws -> String { try String(contentsOfFile: repoPath(relative), encoding: .utf8) }

/// The first executable called `name` on PATH.
func executableOnPath(_ name: String) -> String? {
    let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin").split(separator: ":")
    return directories.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
}

/// The quixd built with the tests (next to the test bundle).
func deployBuiltQuixd() throws -> String {
    let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("quixd").path
    try #require(FileManager.default.isExecutableFile(atPath: binary), "quixd is not built at \(binary)")
    return binary
}

func deployTemporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("deploy-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

/// A program started with its outputs in temporary files (nothing to drain, no pipe fills up).
final class DeployProcess {
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
func deployExecute(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
    let launched = try DeployProcess(executable, arguments)
    let status = try await launched.wait()
    return (status, launched.output, launched.error)
}


/// A Unix datagram socket bound to `address` (a path, or `@name`: abstract) that collects what
/// a SystemdNotifier sends, as systemd's notify socket would.
final class NotifySocket {
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


// MARK: - DeployYAML

/// A read-only walk through what Yams loads (`[AnyHashable: Any]`, `[Any]`, scalars).
struct DeployYAML: @unchecked Sendable {
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
func yamlDocuments(_ relative: String) throws -> [DeployYAML] {
    var sequence = try Yams.load_all(yaml: repoContents(relative))
    var result: [DeployYAML] = []
    while let document = sequence.next() { result.append(DeployYAML(document)) }
    if let error = sequence.error { throw error }
    return result
}

/// The daemon config in `text`, loaded as quixd loads it (no QUIXD_* variables).
func deployDaemonConfig(_ text: String) throws -> DaemonConfig {
    let directory = try deployTemporaryDirectory()
    defer { try? FileManager.default.removeItem(at: directory) }
    let file = directory.appendingPathComponent("quixd.yaml")
    try text.write(to: file, atomically: true, encoding: .utf8)
    return try DaemonConfigLoader.load(file: file.path, environment: [:])
}

func deploySeconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// The port of `http.listen`.
func listenPort(_ config: DaemonConfig) -> Int? { config.httpListen?.split(separator: ":").last.flatMap { Int($0) } }


func kernelAtLeast(_ major: Int, _ minor: Int) -> Bool {
    guard let release = try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8) else { return false }
    let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
    return numbers.count == 2 && (numbers[0], numbers[1]) >= (major, minor)
}
