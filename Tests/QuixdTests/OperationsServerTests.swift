import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Glibc
import QuixPipeline
import ServiceLifecycleTestKit
import Synchronization
import Testing
@testable import quixd

/// Readiness the tests flip while the server runs.
private final class Readiness: Sendable {
    let pipelines = Mutex<[PipelineReadiness]>([])

    func set(_ value: [PipelineReadiness]) { pipelines.withLock { $0 = value } }
    func get() -> [PipelineReadiness] { pipelines.withLock { $0 } }
}

/// A request over TCP with URLSession (libcurl on Linux): status, Content-Type and body.
private func fetch(
    _ port: UInt16, _ path: String, method: String = "GET", session: URLSession
) async throws -> (status: Int, contentType: String?, body: String) {
    var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
    request.httpMethod = method
    request.timeoutInterval = 10
    let (data, response) = try await session.data(for: request)
    let http = try #require(response as? HTTPURLResponse)
    return (http.statusCode, http.value(forHTTPHeaderField: "Content-Type"), String(decoding: data, as: UTF8.self))
}

/// One request written as is to a plain TCP socket (`host` an IPv4 or IPv6 literal); the whole
/// response, read until the server closes (so send `Connection: close`). The blocking calls run
/// on a thread of their own, not on the (2-thread) pool the server's tasks need.
func rawHTTP(host: String, port: UInt16, _ request: String) async throws -> String {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try blockingHTTP(host: host, port: port, request) }) }.start()
    }
}

private func blockingHTTP(host: String, port: UInt16, _ request: String) throws -> String {
    struct SocketFailure: Error { let call: String; let code: Int32 }
    var hints = addrinfo()
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var list: UnsafeMutablePointer<addrinfo>?
    guard getaddrinfo(host, String(port), &hints, &list) == 0, let info = list?.pointee else {
        throw SocketFailure(call: "getaddrinfo", code: 0)
    }
    defer { freeaddrinfo(list) }
    let fd = socket(info.ai_family, info.ai_socktype, info.ai_protocol)
    guard fd >= 0 else { throw SocketFailure(call: "socket", code: errno) }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    guard connect(fd, info.ai_addr, info.ai_addrlen) == 0 else { throw SocketFailure(call: "connect", code: errno) }
    let bytes = Array(request.utf8)
    guard write(fd, bytes, bytes.count) == bytes.count else { throw SocketFailure(call: "write", code: errno) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4_096)
    while true {
        let count = read(fd, &buffer, buffer.count)
        guard count >= 0 else { throw SocketFailure(call: "read", code: errno) }
        if count == 0 { break }
        response += buffer[..<count]
    }
    return String(decoding: response, as: UTF8.self)
}

@Suite("OperationsServer: /healthz, /readyz and /metrics over HTTP", .timeLimit(.minutes(1)))
struct OperationsServerTests {
    let session = URLSession(configuration: .ephemeral)

    @Test("port 0 binds a free port; the three endpoints answer; other paths are 404")
    func endpoints() async throws {
        let metrics = PipelineMetrics()
        metrics.recordConsumed(pipeline: "gforce", topic: "telemetry", partition: 0, messages: 3, bytes: 30)
        metrics.setReady(pipeline: "gforce", true)
        let readiness = Readiness()
        readiness.set([("gforce", true, "joined group gforce, 4 partitions")])
        let server = OperationsServer(address: "127.0.0.1:0", metrics: metrics, readiness: { readiness.get() })
        try await server.serve { port in
            #expect(port != 0)

            let health = try await fetch(port, "/healthz", session: session)
            #expect(health.status == 200)
            #expect(health.body == "ok")
            #expect(health.contentType == "text/plain; charset=utf-8")

            let ready = try await fetch(port, "/readyz", session: session)
            #expect(ready.status == 200)
            #expect(ready.body == "gforce ready: joined group gforce, 4 partitions\n")

            let scrape = try await fetch(port, "/metrics", session: session)
            #expect(scrape.status == 200)
            #expect(scrape.contentType?.hasPrefix("text/plain; version=0.0.4") == true)
            let lines = Set(scrape.body.split(separator: "\n").map(String.init))
            #expect(lines.contains(#"quixd_messages_in_total{pipeline="gforce",topic="telemetry",partition="0"} 3"#))
            #expect(lines.contains(#"quixd_pipeline_ready{pipeline="gforce"} 1.0"#))
            #expect(lines.contains("# TYPE quixd_messages_in_total counter"))

            // The scrape reflects what is recorded since.
            metrics.recordConsumed(pipeline: "gforce", topic: "telemetry", partition: 0, messages: 2, bytes: 20)
            let again = try await fetch(port, "/metrics", session: session)
            #expect(again.body.contains(#"quixd_messages_in_total{pipeline="gforce",topic="telemetry",partition="0"} 5"#))

            for path in ["/", "/health", "/healthz/extra", "/metricsx"] {
                let missing = try await fetch(port, path, session: session)
                #expect(missing.status == 404, "\(path)")
        }
        let post = try await fetch(port, "/healthz", method: "POST", session: session)
        #expect(post.status == 404)

        // A query string does not change the route.
        #expect(try await fetch(port, "/healthz?verbose=1", session: session).status == 200)
        }
    }

    @Test("/readyz is 503 until every pipeline is ready, then 200")
    func readinessFlips() async throws {
        let readiness = Readiness()
        readiness.set([
            ("gforce", false, "joining group gforce"),
            ("speeding", true, "joined group speeding, 2 partitions"),
        ])
        let server = OperationsServer(address: "127.0.0.1:0", metrics: PipelineMetrics(), readiness: { readiness.get() })
        try await server.serve { port in
            let notReady = try await fetch(port, "/readyz", session: session)
            #expect(notReady.status == 503)
            #expect(notReady.body == """
                gforce not ready: joining group gforce
                speeding ready: joined group speeding, 2 partitions

                """)

            readiness.set([
                ("gforce", true, "joined group gforce, 4 partitions"),
                ("speeding", true, "joined group speeding, 2 partitions"),
            ])
            let nowReady = try await fetch(port, "/readyz", session: session)
            #expect(nowReady.status == 200)
            #expect(nowReady.body.contains("gforce ready: joined group gforce, 4 partitions\n"))

            readiness.set([("gforce", false, "stalled: no progress for 45s"), ("speeding", true, "joined")])
            let stalled = try await fetch(port, "/readyz", session: session)
            #expect(stalled.status == 503)
            #expect(stalled.body.contains("gforce not ready: stalled: no progress for 45s\n"))

            // Liveness is not readiness.
            #expect(try await fetch(port, "/healthz", session: session).status == 200)
        }
    }

    @Test("with no pipelines, /readyz is 200")
    func noPipelines() async throws {
        let server = OperationsServer(address: "127.0.0.1:0", metrics: PipelineMetrics(), readiness: { [] })
        try await server.serve { port in
            let ready = try await fetch(port, "/readyz", session: session)
            #expect(ready.status == 200)
            #expect(ready.body == "no pipelines\n")
        }
    }

    @Test("serves concurrent requests while the caller goes on")
    func concurrentRequests() async throws {
        let metrics = PipelineMetrics()
        let server = OperationsServer(address: "127.0.0.1:0", metrics: metrics, readiness: { [] })
        let session = self.session
        try await server.serve { port in
            try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await fetch(port, index.isMultiple(of: 2) ? "/metrics" : "/healthz", session: session).status
                    }
                }
                for try await status in group {
                    #expect(status == 200)
                }
        }
        }
    }

    @Test("when serve's body returns, the socket closes: the port refuses connections")
    func stopCloses() async throws {
        let server = OperationsServer(address: "127.0.0.1:0", metrics: PipelineMetrics(), readiness: { [] })
        let session = self.session
        let port = try await server.serve { port in
            let health = try await fetch(port, "/healthz", session: session)
            #expect(health.status == 200)
            return port
        }
        await #expect(throws: (any Error).self) {
            try await fetch(port, "/healthz", session: URLSession(configuration: .ephemeral))
        }
        // It can serve again.
        try await server.serve { again in
            let health = try await fetch(again, "/healthz", session: URLSession(configuration: .ephemeral))
            #expect(health.status == 200)
        }
    }

    @Test("as a Service: it serves until the graceful shutdown, then closes the socket")
    func gracefulShutdown() async throws {
        let server = OperationsServer(address: "127.0.0.1:\(freePort())", metrics: PipelineMetrics(), readiness: { [] })
        let port = try #require(Int(server.address.split(separator: ":").last!))
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.run() }
                let deadline = ContinuousClock.now + .seconds(10)
                while await (try? rawHTTP(host: "127.0.0.1", port: UInt16(port), "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"))?
                    .hasPrefix("HTTP/1.1 200 OK") != true
                {
                    try #require(ContinuousClock.now < deadline, "never listened")
                    try await Task.sleep(for: .milliseconds(50))
                }
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        await #expect(throws: (any Error).self) {
            try await rawHTTP(host: "127.0.0.1", port: UInt16(port), "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        }
    }

    @Test("a port in use is an error from serve(), at once")
    func portInUse() async throws {
        let first = OperationsServer(address: "127.0.0.1:0", metrics: PipelineMetrics(), readiness: { [] })
        let session = self.session
        try await first.serve { port in
            let second = OperationsServer(address: "127.0.0.1:\(port)", metrics: PipelineMetrics(), readiness: { [] })
            let started = ContinuousClock.now
            await #expect(throws: (any Error).self) { try await second.serve { _ in } }
            #expect(ContinuousClock.now - started < .seconds(5))
            // The first one is unaffected.
            let health = try await fetch(port, "/healthz", session: session)
            #expect(health.status == 200)
        }
    }

    @Test("addresses", arguments: [
        ("127.0.0.1:9090", true), ("[::1]:9090", true), (":9090", true), ("*:0", true),
        ("localhost:0", true), ("0.0.0.0:65535", true),
        ("9090", false), ("127.0.0.1:65536", false), ("127.0.0.1:http", false), ("::1:9090", false),
        ("[nonsense]:1", false),
    ])
    func addresses(address: String, valid: Bool) {
        #expect((try? OperationsServer.socketAddress(for: address)) != nil || !valid, "\(address) should parse")
        #expect((try? OperationsServer.socketAddress(for: address)) == nil || valid, "\(address) should not parse")
    }

    @Test("the wire format: an HTTP/1.1 status line, Content-Length and the body")
    func wireFormat() async throws {
        let server = OperationsServer(address: "127.0.0.1:0", metrics: PipelineMetrics(), readiness: { [] })
        try await server.serve { port in
            let response = try await rawHTTP(
                host: "127.0.0.1", port: port, "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(response.lowercased().contains("\r\ncontent-length: 2\r\n"))
            #expect(response.hasSuffix("\r\n\r\nok"))

            let missing = try await rawHTTP(
                host: "127.0.0.1", port: port, "DELETE /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            #expect(missing.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        }
    }

    @Test("binding [::1]:0 works over IPv6")
    func ipv6Loopback() async throws {
        let server = OperationsServer(address: "[::1]:0", metrics: PipelineMetrics(), readiness: { [] })
        // Without IPv6 on this host serve() throws at once: nothing to check.
        try? await server.serve { port in
            #expect(port != 0)
            // (URLSession on Linux rejects http://[::1]:port/ as a bad URL: a raw request instead.)
            let response = try await rawHTTP(host: "::1", port: port, "GET /healthz HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
            #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
            #expect(response.hasSuffix("ok"))
        }
    }
}
