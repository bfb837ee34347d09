import Foundation
import QuixKafka
import QuixPipeline
import Testing
@testable import quixd

/// Debian's chromium, headless, with the arguments a root sandbox needs.
private func chromium(_ arguments: [String]) async throws -> (status: Int32, output: String, error: String) {
    let path = try #require(
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) },
        "chromium is not installed; scripts/setup.sh installs it")
    return try await runProcess(
        URL(fileURLWithPath: path), ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"] + arguments)
}

/// Where the screenshots are kept: $QUIXD_TEST_ARTIFACTS, or a directory in the temporary one.
private func artifacts() throws -> String {
    let directory = ProcessInfo.processInfo.environment["QUIXD_TEST_ARTIFACTS"] ?? FileManager.default.temporaryDirectory.appendingPathComponent("quixd-test-artifacts").path
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    return directory
}

/// The width and height of a PNG, from its IHDR chunk.
private func pngSize(_ path: String) throws -> (width: Int, height: Int) {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    try #require(bytes.count > 24 && bytes[0..<8] == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A], "not a PNG")
    func number(_ at: Int) -> Int { bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
    return (number(16), number(20))
}

@Suite("the status page", .serialized, .timeLimit(.minutes(3)))
struct StatusPageTests {
    @Test("in a real headless chromium, against the main job (gforce on the development broker) with a dead letter: the pipeline, its partitions and the letter; screenshots at 375 and 1440 px; /status.json")
    func inABrowser() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-status-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = freePort()
        // What scripts/run.sh runs, on a free port.
        let daemon = try DaemonProcess([
            "--state-dir", directory + "/state", "--http", "127.0.0.1:\(port)", repository.appendingPathComponent("pipelines/gforce.yaml").path,
        ])
        try await daemon.waitForLog("EMBEDDED DEVELOPMENT BROKER")
        let address = try #require(daemon.log.firstMatch(of: /\(librdkafka's mock cluster\) at ([0-9.]+:[0-9]+)/)?.1, "\(daemon.log)")
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(60)
        // The operations port answers once the services run; the broker logs its address before.
        while await (try? httpGet(port, "/readyz"))?.0 != 200, clock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }
        // A poison message into the running job: dead-lettered, and on the page.
        let producer = try KafkaProducer(settings: ProducerSettings(bootstrapServers: [String(address)]))
        try await producer.send(OutgoingMessage(topic: "telemetry", key: Array("car-<9>".utf8), value: Array("not a Quix package <b>".utf8)))
        try await producer.flush()
        await producer.close()
        while try await !httpGet(port, "/status.json").1.contains("dead-lettered"), clock.now < deadline { try await Task.sleep(for: .milliseconds(200)) }

        let url = "http://127.0.0.1:\(port)/"
        let dom = try await chromium(["--dump-dom", url])
        #expect(dom.status == 0, "\(dom.error)")
        #expect(dom.output.contains(#"<section class="pipeline" data-pipeline="gforce">"#), "\(dom.output)")
        for partition in 0..<4 { #expect(dom.output.contains(#"<tr class="partition"><td>telemetry[\#(partition)]</td>"#), "\(dom.output)") }
        let failure = try #require(dom.output.components(separatedBy: #"<tr class="failure">"#).dropFirst().first, "\(dom.output)")
        #expect(failure.contains("dead-lettered") && failure.contains("malformed-message") && failure.contains("telemetry["), "\(failure)")
        #expect(failure.contains("car-&lt;9&gt;") && !dom.output.contains("car-<9>"), "what the data says is escaped")
        #expect(!dom.output.contains("http://") && !dom.output.contains("https://"), "nothing from elsewhere: it works offline")

        let shots = try artifacts()
        for width in [375, 1440] {
            let file = "\(shots)/status-page-\(width).png"
            try? FileManager.default.removeItem(atPath: file)
            let shot = try await chromium(["--screenshot=\(file)", "--window-size=\(width),1000", url])
            #expect(shot.status == 0, "\(shot.error)")
            #expect(try pngSize(file) == (width, 1000), "\(file)")
        }

        let (status, json) = try await httpGet(port, "/status.json")
        #expect(status == 200)
        let pipelines = try #require((try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["pipelines"] as? [[String: Any]])
        #expect(pipelines.first?["name"] as? String == "gforce" && pipelines.first?["phase"] as? String == "running", "\(json)")
        let failures = pipelines.first?["failures"] as? [[String: Any]] ?? []
        #expect(failures.map { $0["code"] as? String } == ["malformed-message"], "\(json)")
        #expect(try await daemon.terminate() == 0)
    }

    @Test("the page is server-rendered from the report: a sparkline of the samples, escaped text")
    func rendered() {
        var report = PipelineStatusReport(name: "a<b", phase: "running", ready: true, reason: "ok", input: "in", outputs: ["out"])
        report.inputHistory = [0, 5, 10]
        let page = StatusPage.html([report], now: Date())
        #expect(page.contains(#"data-pipeline="a&lt;b""#) && !page.contains("a<b"))
        #expect(page.contains(#"<polyline points="0.0,23.0 60.0,12.0 120.0,1.0"/>"#), "\(page)")
        #expect(StatusPage.html([], now: Date()).contains("No pipelines."))
    }

    @Test("http.statusPage: false turns the page off; /metrics, /healthz and /readyz stay")
    func turnedOff() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-\(UUID().uuidString).yaml").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        try "apiVersion: quixd/v1\nkind: Config\nhttp: { listen: \"127.0.0.1:0\", statusPage: false }\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try DaemonConfigLoader.load(file: file, environment: [:]).statusPage == false)
        #expect(try DaemonConfigLoader.load(file: nil, environment: [:]).statusPage)
        let server = OperationsServer(address: "127.0.0.1:0", metrics: PipelineMetrics(), readiness: { [] }, status: nil)
        let statuses = try await server.serve { port async throws -> [Int] in
            var statuses: [Int] = []
            for path in ["/", "/status.json", "/metrics", "/healthz", "/readyz"] { statuses.append(try await httpGet(Int(port), path).0) }
            return statuses
        }
        #expect(statuses == [404, 404, 200, 200, 200])
        let on = OperationsServer(address: "127.0.0.1:0", metrics: PipelineMetrics(), readiness: { [] }, status: { [] })
        let (status, body) = try await on.serve { port async throws -> (Int, String) in try await httpGet(Int(port), "/") }
        #expect(status == 200 && body.contains("No pipelines."))
    }
}
