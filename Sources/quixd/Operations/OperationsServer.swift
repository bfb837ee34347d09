import FlyingFox
import FlyingSocks
import Foundation
import Glibc
import Logging
import QuixPipeline
import ServiceLifecycle
import Synchronization

/// One pipeline's answer to `/readyz`: whether it has joined its consumer group and is not
/// stalled, and why (or why not), in a few words.
typealias PipelineReadiness = (pipeline: String, ready: Bool, reason: String)

/// quixd's operations endpoints over HTTP/1.1 (FlyingFox), a Service of the daemon's group:
///
/// - `GET /healthz`: 200 `ok` while the process serves requests at all.
/// - `GET /readyz`: 200 when every pipeline is ready, else 503; the body has one line per
///   pipeline, `NAME ready: REASON` or `NAME not ready: REASON`.
/// - `GET /metrics`: 200, the Prometheus text format (0.0.4) of `PipelineMetrics`.
/// - `GET /` and `GET /status.json`: the status page (`StatusPage`) and its data, unless it is
///   turned off (`http.statusPage: false`).
/// - anything else: 404.
///
/// `run()` binds, serves until the graceful shutdown (or cancellation), then closes the socket
/// and the open connections.
final class OperationsServer: Service {
    /// Asked on every `/readyz`; called on the server's tasks, so it must be cheap and `Sendable`.
    typealias ReadinessProbe = @Sendable () async -> [PipelineReadiness]
    /// Asked on every status page and `/status.json`.
    typealias StatusProbe = @Sendable () async -> [PipelineStatusReport]

    enum Failure: Error, CustomStringConvertible {
        case invalidAddress(String, reason: String)
        case stoppedBeforeListening

        var description: String {
            switch self {
            case .invalidAddress(let address, let reason): "invalid operations address '\(address)': \(reason)"
            case .stoppedBeforeListening: "the operations server stopped before it listened"
            }
        }
    }

    /// The address as given, `host:port`.
    let address: String
    private let metrics: PipelineMetrics
    private let readiness: ReadinessProbe
    private let status: StatusProbe?
    private let logger: Logger

    /// A server for `address` (`host:port`, `[ipv6]:port`, `:port` or `*:port` for every IPv4
    /// interface; port 0 picks a free port), not yet bound.
    init(
        address: String, metrics: PipelineMetrics,
        readiness: @escaping ReadinessProbe, status: StatusProbe? = nil,
        logger: Logger = Logger(label: "quixd.operations")
    ) {
        self.address = address
        self.metrics = metrics
        self.readiness = readiness
        self.status = status
        self.logger = logger
    }

    func run() async throws {
        try await serve { _ in try? await gracefulShutdown() }
    }

    /// Binds and listens, then calls `body` with the bound port (the real one when `address`
    /// asked for 0) while requests are served; when it returns, the socket and the connections
    /// close. Throws if the address is invalid or cannot be bound.
    func serve<Value: Sendable>(_ body: (UInt16) async throws -> Value) async throws -> Value {
        let socketAddress = try Self.socketAddress(for: address)
        let (metrics, readiness, status, logger) = (self.metrics, self.readiness, self.status, self.logger)
        let server = HTTPServer(
            config: HTTPServer.Configuration(address: socketAddress, timeout: 10, logger: FlyingFoxLogger(logger)),
            handler: ClosureHTTPHandler { request in
                await Self.respond(to: request, metrics: metrics, readiness: readiness, status: status)
            })
        let listening = ListeningFlag()
        return try await withThrowingTaskGroup(of: ServerEvent.self) { group in
            group.addTask {
                do {
                    try await server.run()
                    return .stopped(Failure.stoppedBeforeListening)
                } catch {
                    // Not asked for (the body still runs): the endpoints are gone; say so.
                    if listening.value.load(ordering: .relaxed) && !Task.isCancelled { logger.error("operations server stopped: \(error)") }
                    return .stopped(error)
                }
            }
            group.addTask {
                try await server.waitUntilListening(timeout: 10)
                return .listening
            }
            // Cancelling `run()` closes the socket and ends the connections at once; FlyingFox's own
            // stop(timeout:) was seen to wait out its whole timeout here on Linux (its accept loop
            // does not end when the listener closes).
            defer { group.cancelAll() }
            if case .stopped(let error) = try await group.next() { throw error }
            listening.value.store(true, ordering: .relaxed)
            let port: UInt16 = switch await server.listeningAddress {
            case .ip4(_, let port)?, .ip6(_, let port)?: port
            default: 0
            }
            logger.info("operations endpoints listening", metadata: ["address": "\(address)", "port": "\(port)"])
            return try await body(port)
        }
    }

    private enum ServerEvent: Sendable {
        case listening
        case stopped(any Error)
    }

    /// Whether `serve` got past listening: a server that stops after it was not asked to.
    private final class ListeningFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    // MARK: Requests

    /// The response to one request (GET only; anything else is 404).
    static func respond(
        to request: HTTPRequest, metrics: PipelineMetrics, readiness: ReadinessProbe, status: StatusProbe? = nil
    ) async -> HTTPResponse {
        guard request.method == .GET else { return text(.notFound, "not found\n") }
        switch request.path {
        case "/healthz":
            return text(.ok, "ok")
        case "/readyz":
            let pipelines = await readiness()
            let body = pipelines.isEmpty
                ? "no pipelines\n"
                : pipelines.map { "\($0.pipeline) \($0.ready ? "ready" : "not ready"): \($0.reason)\n" }.joined()
            return text(pipelines.allSatisfy(\.ready) ? .ok : .serviceUnavailable, body)
        case "/metrics":
            return HTTPResponse(
                statusCode: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: Data(metrics.expositionBytes()))
        case "/" where status != nil:
            let page = StatusPage.html(await status!(), now: Date())
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: Data(page.utf8))
        case "/status.json" where status != nil:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = (try? encoder.encode(["pipelines": await status!()])) ?? Data("{}".utf8)
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json"], body: body)
        default:
            return text(.notFound, "not found\n")
        }
    }

    private static func text(_ status: HTTPStatusCode, _ body: String) -> HTTPResponse {
        HTTPResponse(statusCode: status, headers: [.contentType: "text/plain; charset=utf-8"], body: Data(body.utf8))
    }

    // MARK: Addresses

    /// The socket address `host:port` names. A host that is not an IP literal is resolved with
    /// getaddrinfo (an IPv4 address preferred).
    static func socketAddress(for address: String) throws -> any SocketAddress {
        func invalid(_ reason: String) -> Failure { .invalidAddress(address, reason: reason) }
        guard let colon = address.lastIndex(of: ":") else { throw invalid("expected host:port") }
        var host = String(address[..<colon])
        guard let port = UInt16(address[address.index(after: colon)...]) else {
            throw invalid("the port must be a number from 0 to 65535")
        }
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
            guard let ip6 = try? sockaddr_in6.inet6(ip6: host, port: port) else {
                throw invalid("'\(host)' is not an IPv6 address")
            }
            return ip6
        }
        if host.isEmpty || host == "*" { return sockaddr_in.inet(port: port) }
        if let ip4 = try? sockaddr_in.inet(ip4: host, port: port) { return ip4 }
        guard !host.contains(":") else { throw invalid("write an IPv6 address in brackets, [\(host)]:\(port)") }
        guard let resolved = resolve(host: host, port: port) else { throw invalid("cannot resolve '\(host)'") }
        return resolved
    }

    private static func resolve(host: String, port: UInt16) -> (any SocketAddress)? {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &list) == 0 else { return nil }
        defer { freeaddrinfo(list) }
        var ip6: sockaddr_in6?
        var entry = list
        while let info = entry?.pointee {
            defer { entry = info.ai_next }
            guard let address = info.ai_addr else { continue }
            switch info.ai_family {
            case AF_INET:
                var ip4 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in.self)
                ip4.sin_port = port.bigEndian
                return ip4
            case AF_INET6 where ip6 == nil:
                ip6 = UnsafeRawPointer(address).loadUnaligned(as: sockaddr_in6.self)
                ip6?.sin6_port = port.bigEndian
            default:
                continue
            }
        }
        return ip6
    }
}

/// FlyingFox's log lines into swift-log, lower: it logs every connection at info, a client
/// hanging up as an error, and the end of `run()` as critical, which `OperationsServer` reports
/// itself (serve() throws it, or it is logged unless serve() ended it).
private struct FlyingFoxLogger: FlyingSocks.Logging {
    let logger: Logger

    init(_ logger: Logger) { self.logger = logger }

    func logDebug(_ debug: @autoclosure () -> String) { logger.trace("\(debug())") }
    func logInfo(_ info: @autoclosure () -> String) { logger.trace("\(info())") }
    func logWarning(_ warning: @autoclosure () -> String) { logger.notice("\(warning())") }
    func logError(_ error: @autoclosure () -> String) { logger.debug("\(error())") }
    func logCritical(_ critical: @autoclosure () -> String) { logger.debug("\(critical())") }
}
