import FlyingFox
import FlyingSocks
import Foundation
import Glibc
import Logging
import QuixPipeline
import Synchronization

/// One pipeline's answer to `/readyz`: whether it has joined its consumer group and is not
/// stalled, and why (or why not), in a few words.
typealias PipelineReadiness = (pipeline: String, ready: Bool, reason: String)

/// quixd's operations endpoints over HTTP/1.1 (FlyingFox, on its own tasks):
///
/// - `GET /healthz`: 200 `ok` while the process serves requests at all.
/// - `GET /readyz`: 200 when every pipeline is ready, else 503; the body has one line per
///   pipeline, `NAME ready: REASON` or `NAME not ready: REASON`.
/// - `GET /metrics`: 200, the Prometheus text format (0.0.4) of `PipelineMetrics`.
/// - anything else: 404.
///
/// `start()` binds and returns once the socket listens; requests are then served in the
/// background until `stop()`.
actor OperationsServer {
    /// Asked on every `/readyz`; called on the server's tasks, so it must be cheap and `Sendable`.
    typealias ReadinessProbe = @Sendable () async -> [PipelineReadiness]

    enum Failure: Error, CustomStringConvertible {
        case invalidAddress(String, reason: String)
        case alreadyStarted
        case stoppedBeforeListening

        var description: String {
            switch self {
            case .invalidAddress(let address, let reason): "invalid operations address '\(address)': \(reason)"
            case .alreadyStarted: "the operations server is already started"
            case .stoppedBeforeListening: "the operations server stopped before it listened"
            }
        }
    }

    /// The address as given, `host:port`.
    nonisolated let address: String
    private let metrics: PipelineMetrics
    private let readiness: ReadinessProbe
    private let logger: Logger

    private var server: HTTPServer?
    private var serving: Task<Void, Never>?
    /// The port the socket is bound to while started (the real one when `address` asked for 0).
    private(set) var boundPort: UInt16?

    /// A server for `address` (`host:port`, `[ipv6]:port`, `:port` or `*:port` for every IPv4
    /// interface; port 0 picks a free port), not yet bound.
    init(
        address: String, metrics: PipelineMetrics,
        readiness: @escaping ReadinessProbe,
        logger: Logger = Logger(label: "quixd.operations")
    ) {
        self.address = address
        self.metrics = metrics
        self.readiness = readiness
        self.logger = logger
    }

    /// Binds and listens, then returns the bound port; requests are served in the background.
    /// Throws if the address is invalid or cannot be bound.
    @discardableResult
    func start() async throws -> UInt16 {
        guard server == nil else { throw Failure.alreadyStarted }
        let socketAddress = try Self.socketAddress(for: address)
        let (metrics, readiness) = (self.metrics, self.readiness)
        let server = HTTPServer(
            config: HTTPServer.Configuration(address: socketAddress, timeout: 10, logger: FlyingFoxLogger(logger)),
            handler: ClosureHTTPHandler { request in
                await Self.respond(to: request, metrics: metrics, readiness: readiness)
            })
        self.server = server  // before any suspension: a second start() throws

        let listening = StartGate()
        let logger = self.logger
        let serving = Task {
            do {
                try await server.run()
                listening.finish(.failure(Failure.stoppedBeforeListening))
            } catch {
                // After start() returned, and not by stop(): the endpoints are gone; say so.
                if !listening.finish(.failure(error)) && !Task.isCancelled {
                    logger.error("operations server stopped: \(error)")
                }
            }
        }
        let waiter = Task {
            do {
                try await server.waitUntilListening(timeout: 10)
                listening.finish(.success(()))
            } catch {
                listening.finish(.failure(error))
            }
        }
        do {
            try await listening.wait()
            waiter.cancel()
        } catch {
            waiter.cancel()
            serving.cancel()
            await server.stop()
            self.server = nil
            throw error
        }
        self.serving = serving

        let listeningAddress = await server.listeningAddress
        let port: UInt16? = switch listeningAddress {
        case .ip4(_, let port)?, .ip6(_, let port)?: port
        default: nil
        }
        boundPort = port
        logger.info("operations endpoints listening", metadata: ["address": "\(address)", "port": "\(port.map(String.init) ?? "?")"])
        return port ?? 0
    }

    /// Closes the listening socket and open connections; returns when the server has stopped.
    func stop() async {
        guard let server else { return }
        self.server = nil
        boundPort = nil
        // Cancelling `run()` closes the socket and ends the connections at once; FlyingFox's own
        // stop(timeout:) was seen to wait out its whole timeout here on Linux (its accept loop
        // does not end when the listener closes). After that, stop() finds nothing left to do.
        if let serving {
            serving.cancel()
            await serving.value
        }
        serving = nil
        await server.stop()
    }

    // MARK: Requests

    /// The response to one request (GET only; anything else is 404).
    static func respond(
        to request: HTTPRequest, metrics: PipelineMetrics, readiness: ReadinessProbe
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

/// Resolves once with the first result given: whether the server listened, or why not.
private final class StartGate: Sendable {
    private enum State {
        case pending(CheckedContinuation<Void, any Error>?)
        case finished(Result<Void, any Error>)
    }

    private let state = Mutex<State>(.pending(nil))

    /// Records `result` if none was; returns whether this call was the first.
    @discardableResult
    func finish(_ result: Result<Void, any Error>) -> Bool {
        let outcome: (first: Bool, waiter: CheckedContinuation<Void, any Error>?) = state.withLock { state in
            guard case .pending(let waiter) = state else { return (false, nil) }
            state = .finished(result)
            return (true, waiter)
        }
        outcome.waiter?.resume(with: result)
        return outcome.first
    }

    func wait() async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let early: Result<Void, any Error>? = state.withLock { state in
                switch state {
                case .pending:
                    state = .pending(continuation)
                    return nil
                case .finished(let result):
                    return result
                }
            }
            if let early { continuation.resume(with: early) }
        }
    }
}

/// FlyingFox's log lines into swift-log, lower: it logs every connection at info, a client
/// hanging up as an error, and the end of `run()` as critical, which `OperationsServer` reports
/// itself (start() throws it, or it is logged unless stop() asked for it).
private struct FlyingFoxLogger: FlyingSocks.Logging {
    let logger: Logger

    init(_ logger: Logger) { self.logger = logger }

    func logDebug(_ debug: @autoclosure () -> String) { logger.trace("\(debug())") }
    func logInfo(_ info: @autoclosure () -> String) { logger.trace("\(info())") }
    func logWarning(_ warning: @autoclosure () -> String) { logger.notice("\(warning())") }
    func logError(_ error: @autoclosure () -> String) { logger.debug("\(error())") }
    func logCritical(_ critical: @autoclosure () -> String) { logger.debug("\(critical())") }
}
