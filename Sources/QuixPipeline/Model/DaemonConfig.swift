/// The daemon config (`quixd.yaml`, `kind: Config`): Kafka, state, HTTP, pipelines, logs and
/// shutdown. Every key has a default; `QUIXD_*` environment variables override the file, and
/// `quixd run` flags override both.
public struct DaemonConfig: Sendable, Hashable {
    public struct Kafka: Sendable, Hashable {
        /// `host:port` list; empty starts the embedded development broker.
        public var brokers: [String] = []
        public var clientID = "quixd"
        /// Static group membership (`group.instance.id`): the pod or host name.
        public var groupInstanceID: String?
        public var securityProtocol: String?
        public var saslMechanism: String?
        public var saslUsername: String?
        public var saslPassword: String?
        public var caLocation: String?
        /// Any other librdkafka property, passed through.
        public var properties: [String: String] = [:]
    }

    public enum LogFormat: String, Sendable, Hashable, CaseIterable {
        case text, json
    }

    public enum LogLevel: String, Sendable, Hashable, CaseIterable {
        case trace, debug, info, notice, warning, error, critical
    }

    public var kafka = Kafka()
    public var stateDirectory = "./state"
    /// `host:port` of the health and metrics endpoints; nil serves none.
    public var httpListen: String? = "0.0.0.0:8080"
    /// Whether the operations port serves the status page (`/`, `/status.json`).
    public var statusPage = true
    /// Pipeline files or directories of them (every `.yaml`/`.yml` inside).
    public var pipelines: [String] = []
    public var logLevel = LogLevel.info
    public var logFormat = LogFormat.text
    /// How long a SIGTERM waits for pipelines to checkpoint and leave their groups.
    public var shutdownGrace: Duration = .seconds(30)
    /// Worker threads the pipelines' partitions run on; nil: the cores the process may use.
    public var workers: Int?

    public init() {}

    /// The configuration as YAML, with passwords and secrets replaced by `****`, for the log at
    /// start.
    public var masked: String {
        func secret(_ key: String) -> Bool {
            let lowered = key.lowercased()
            return ["password", "secret", "token", "key.pem", "credentials"].contains { lowered.contains($0) }
        }
        var lines = [
            "kafka:",
            "  brokers: \(kafka.brokers.isEmpty ? "(embedded development broker)" : kafka.brokers.joined(separator: ","))",
            "  clientId: \(kafka.clientID)",
        ]
        if let id = kafka.groupInstanceID { lines.append("  groupInstanceId: \(id)") }
        if let value = kafka.securityProtocol { lines.append("  securityProtocol: \(value)") }
        if let value = kafka.saslMechanism { lines.append("  saslMechanism: \(value)") }
        if let value = kafka.saslUsername { lines.append("  saslUsername: \(value)") }
        if kafka.saslPassword != nil { lines.append("  saslPassword: ****") }
        if let value = kafka.caLocation { lines.append("  caLocation: \(value)") }
        if !kafka.properties.isEmpty {
            lines.append("  properties:")
            for key in kafka.properties.keys.sorted() { lines.append("    \(key): \(secret(key) ? "****" : kafka.properties[key]!)") }
        }
        lines += [
            "state:", "  directory: \(stateDirectory)",
            "http:", "  listen: \(httpListen ?? "(off)")", "  statusPage: \(statusPage)",
            "pipelines:",
        ] + pipelines.map { "  - \($0)" } + [
            "log:", "  level: \(logLevel.rawValue)", "  format: \(logFormat.rawValue)",
            "shutdown:", "  grace: \(shutdownGrace)",
            "workers: \(workers.map(String.init) ?? "auto")",
        ]
        return lines.joined(separator: "\n")
    }
}
