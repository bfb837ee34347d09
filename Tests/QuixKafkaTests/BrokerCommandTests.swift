import Foundation
import QuixKafka
import Testing

/// The built `quixd` executable, next to the test bundle.
func quixdExecutable() throws -> URL {
    let url = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("quixd")
    guard FileManager.default.isExecutableFile(atPath: url.path) else {
        throw TimedOut(description: "quixd is not built at \(url.path)")
    }
    return url
}

/// Runs a command to completion with `input` on standard input; returns its standard output.
func run(_ executable: String, _ arguments: [String], input: String = "") async throws -> String {
    try await withTimeout(.seconds(60), "\(executable) \(arguments)") {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TimedOut(description: "\(executable) exited with \(process.terminationStatus)")
        }
        return String(decoding: output, as: UTF8.self)
    }
}

@Suite("quixd broker", .timeLimit(.minutes(2)))
struct BrokerCommandTests {
    @Test("prints its bootstrap servers first, serves kcat and QuixKafka, and exits 0 on SIGTERM")
    func brokerServesOtherClients() async throws {
        let process = Process()
        process.executableURL = try quixdExecutable()
        process.arguments = ["broker", "--topic", "demo", "--partitions", "3"]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let firstLine = try await withTimeout(.seconds(10), "the bootstrap line") { () -> String in
            var line = Data()
            while true {
                let byte = stdout.fileHandleForReading.readData(ofLength: 1)
                if byte.isEmpty || byte == Data("\n".utf8) { break }
                line.append(byte)
            }
            return String(decoding: line, as: UTF8.self)
        }
        #expect(firstLine.wholeMatch(of: /127\.0\.0\.1:\d+/) != nil, "first line: \(firstLine)")

        _ = try await run("kcat", ["-P", "-b", firstLine, "-t", "demo", "-K", "\t"], input: "s1\tone\ns1\ttwo\ns2\tthree\n")
        let listing = try await run("kcat", ["-L", "-b", firstLine, "-t", "demo"])
        #expect(listing.contains("topic \"demo\" with 3 partitions"))
        let consumed = try await run("kcat", ["-C", "-b", firstLine, "-t", "demo", "-e", "-q", "-f", "%k=%s\n"])
        #expect(Set(consumed.split(separator: "\n")) == ["s1=one", "s1=two", "s2=three"])

        let consumer = try KafkaConsumer(settings: ConsumerSettings(bootstrapServers: [firstLine], group: nil))
        try consumer.assign((0..<3).map { TopicPartitionOffset("demo", $0, offset: KafkaOffset.beginning) })
        let messages = try await consume(consumer) { $0.count >= 3 }
        #expect(messages.filter { text($0.key) == "s1" }.map { text($0.value) } == ["one", "two"])
        await consumer.close()

        process.terminate()  // SIGTERM
        try await withTimeout(.seconds(10), "broker exit") { process.waitUntilExit() }
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
    }

    @Test("version and help name the command and librdkafka")
    func versionAndHelp() async throws {
        let executable = try quixdExecutable().path
        let version = try await run(executable, ["version"])
        #expect(version.hasPrefix("quixd ") && version.contains("librdkafka \(librdkafkaVersion)"))
        let help = try await run(executable, ["broker", "--help"]).split(whereSeparator: \.isWhitespace).joined(separator: " ")
        #expect(help.contains("--partitions") && help.contains("first use with \(MockCluster.defaultPartitions) partitions"))
    }
}
