import Foundation
import QuixKafka
import QuixStreams
import Synchronization
import Testing

/// A pipeline that keeps every row, between two topics that the real quixstreams 0.5.7 reads.
@Suite("a pass-through pipeline read by the real quixstreams 0.5.7", .serialized, .timeLimit(.minutes(6)))
struct PassThroughInteropTests {
    @Test("""
        0.5.7 reads a keep-every-row filter pipeline's output as it reads its input: properties, definitions (none invented \
        for columns the input did not define), rows, events, every end type, a 3 MB split value
        """)
    func passThrough() async throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: repository.appendingPathComponent(".venv-interop/bin/python").path),
            "no quixstreams 0.5.7 venv: run scripts/setup-interop.sh")
        let cluster = try MockCluster(brokers: 1)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-passthrough-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var files: [String] = []
        for (name, _) in scenarios {
            for topic in ["in-\(name)", "out-\(name)"] { try cluster.createTopic(topic, partitions: 1) }
            let file = "\(directory)/\(name).yaml"
            try """
                apiVersion: quixd/v1
                kind: Pipeline
                metadata: { name: pass-\(name) }
                spec:
                  input: { topic: in-\(name), startFrom: earliest }
                  stages: [{ id: all, uses: filter, with: { where: "true" } }]
                  output: { topic: out-\(name) }
                """.write(toFile: file, atomically: true, encoding: .utf8)
            files.append(file)
        }
        try await forEach(scenarios, width: 4) { scenario in
            _ = try await q05(["produce", "--brokers", cluster.bootstrapServers, "--topic", "in-\(scenario.name)", "--scenario", scenario.name])
        }
        let daemon = try DaemonProcess(
            ["--brokers", cluster.bootstrapServers, "--http", "off", "--set", "kafka.properties={session.timeout.ms: 6000}"] + files)
        // The reference consumer waits for each scenario's streams to close (or its timeout).
        let views = Mutex([String: [String: [String]]]())
        try await forEach(scenarios.flatMap { [("in-\($0.name)", $0.streams), ("out-\($0.name)", $0.streams)] }, width: 4) { topic, streams in
            let view = try await referenceView(cluster, topic: topic, streams: streams)
            views.withLock { $0[topic] = view }
        }
        #expect(try await daemon.terminate() == 0, "\(daemon.log.suffix(2_000))")
        let all = views.withLock { $0 }
        for (name, _) in scenarios {
            let input = try #require(all["in-\(name)"]).mapValues(Self.lastOfPropertyRuns)
            let output = (all["out-\(name)"] ?? [:]).mapValues(Self.lastOfPropertyRuns)
            #expect(!input.isEmpty, "\(name): the reference read nothing of its own input")
            #expect(output == input, "\(name): 0.5.7 reads the pipeline's output differently:\nout \(output)\nin \(input)")
        }
    }

    /// A stream's callbacks with each run of consecutive properties callbacks reduced to its last:
    /// like the 0.5 producer, the output sends changed properties once they have not changed
    /// for 20 ms, so changes that arrive back to back go out as one, with the same final value.
    static func lastOfPropertyRuns(_ lines: [String]) -> [String] {
        let isProperties = { (line: String) in line.contains(#""kind":"properties""#) }
        return lines.enumerated().filter { index, line in
            !(isProperties(line) && index + 1 < lines.count && isProperties(lines[index + 1]))
        }.map(\.element)
    }
}
