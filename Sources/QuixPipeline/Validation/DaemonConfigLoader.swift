import Foundation
import Yams

/// Reads `quixd.yaml` (`kind: Config`) with the same checks, interpolation and `--set`
/// overrides as pipeline files, then applies `QUIXD_*` environment variables.
public enum DaemonConfigLoader {
    /// The environment variables that override keys of the file.
    public static let environmentKeys = [
        "QUIXD_BROKERS": "kafka.brokers", "QUIXD_GROUP_INSTANCE_ID": "kafka.groupInstanceId", "QUIXD_STATE_DIR": "state.directory",
        "QUIXD_HTTP": "http.listen", "QUIXD_LOG_LEVEL": "log.level", "QUIXD_LOG_FORMAT": "log.format", "QUIXD_WORKERS": "workers",
        "QUIXD_SASL_USERNAME": "kafka.security.saslUsername", "QUIXD_SASL_PASSWORD": "kafka.security.saslPassword",
    ]

    /// The config in `path` (nil: defaults only), with `QUIXD_*` variables and `overrides` applied.
    public static func load(
        file path: String?, environment: [String: String] = ProcessInfo.processInfo.environment, overrides: [String] = []
    ) throws(ConfigErrors) -> DaemonConfig {
        let text = try path.map { (path) throws(ConfigErrors) in try ConfigDocument.text(of: path) } ?? "apiVersion: quixd/v1\nkind: Config\n"
        let environmentOverrides = environmentKeys.keys.sorted().compactMap { name in
            environment[name].map { "\(environmentKeys[name]!)=\($0)" }
        }
        return try ConfigDocument.read(
            text, file: path ?? "(defaults)", environment: environment, overrides: environmentOverrides + overrides, read)
    }

    private static func read(_ root: Node, _ reader: inout NodeReader) -> DaemonConfig? {
        guard let top = reader.mapping(root, "", FileSchemas.config)
        else { return nil }
        if let node = top["apiVersion"], let version = reader.string(node, "apiVersion"), version != PipelineLoader.apiVersion {
            reader.fail(node, "apiVersion", "expected \(PipelineLoader.apiVersion), found \"\(version)\"")
        }
        if let node = top["kind"], let kind = reader.string(node, "kind"), kind != "Config" {
            reader.fail(node, "kind", "expected Config, found \"\(kind)\"")
        }
        var config = DaemonConfig()
        if let node = top["kafka"], let kafka = reader.mapping(node, "kafka", FileSchemas.kafka) {
            if let brokers = kafka["brokers"].flatMap({ reader.string($0, "kafka.brokers") }) {
                config.kafka.brokers = brokers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            }
            if let id = kafka["clientId"].flatMap({ reader.nonEmptyString($0, "kafka.clientId") }) { config.kafka.clientID = id }
            if let id = kafka["groupInstanceId"].flatMap({ reader.string($0, "kafka.groupInstanceId") }), !id.isEmpty {
                config.kafka.groupInstanceID = id
            }
            if let node = kafka["security"],
                let security = reader.mapping(node, "kafka.security", FileSchemas.security)
            {
                func text(_ key: String) -> String? { security[key].flatMap { reader.string($0, "kafka.security.\(key)") }.flatMap { $0.isEmpty ? nil : $0 } }
                if let node = security["protocol"], let value = reader.string(node, "kafka.security.protocol") {
                    let protocols = ["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"]
                    if protocols.contains(value.lowercased()) {
                        config.kafka.securityProtocol = value.lowercased()
                    } else {
                        reader.fail(node, "kafka.security.protocol", "expected one of \(protocols.joined(separator: " | ")), found \"\(value)\"")
                    }
                }
                config.kafka.saslMechanism = text("saslMechanism")
                config.kafka.saslUsername = text("saslUsername")
                config.kafka.saslPassword = text("saslPassword")
                config.kafka.caLocation = text("caLocation")
            }
            if let node = kafka["properties"], case .map(let entries)? = reader.value(node, "kafka.properties")?.kind {
                for (key, value) in entries {
                    if case .scalar(let text) = value.kind { config.kafka.properties[key] = text } else {
                        reader.fail(node, "kafka.properties.\(key)", "expected a value")
                    }
                }
            }
        }
        if let node = top["state"], let state = reader.mapping(node, "state", FileSchemas.configState),
            let directory = state["directory"].flatMap({ reader.nonEmptyString($0, "state.directory") })
        {
            config.stateDirectory = directory
        }
        let http = top["http"].flatMap { reader.mapping($0, "http", FileSchemas.http) }
        if let node = http?["statusPage"], let enabled = reader.bool(node, "http.statusPage") { config.statusPage = enabled }
        if let listenNode = http?["listen"], let listen = reader.string(listenNode, "http.listen") {
            if listen.isEmpty || listen == "off" {
                config.httpListen = nil
            } else if let port = listen.split(separator: ":").last, Int(port).map({ (0...65_535).contains($0) }) == true, listen.contains(":") {
                config.httpListen = listen
            } else {
                reader.fail(listenNode, "http.listen", "expected HOST:PORT (or off), found \"\(listen)\"")
            }
        }
        if let node = top["pipelines"], let items = reader.sequence(node, "pipelines") {
            config.pipelines = items.enumerated().compactMap { reader.nonEmptyString($1, "pipelines[\($0)]") }
        }
        if let node = top["log"], let log = reader.mapping(node, "log", FileSchemas.log) {
            if let level = log["level"].flatMap({ reader.choice($0, "log.level", DaemonConfig.LogLevel.self) }) { config.logLevel = level }
            if let format = log["format"].flatMap({ reader.choice($0, "log.format", DaemonConfig.LogFormat.self) }) { config.logFormat = format }
        }
        if let node = top["shutdown"], let shutdown = reader.mapping(node, "shutdown", FileSchemas.shutdown),
            let grace = shutdown["grace"].flatMap({ reader.duration($0, "shutdown.grace") })
        {
            config.shutdownGrace = grace
        }
        if let node = top["workers"], let text = reader.string(node, "workers"), text != "auto" {
            config.workers = reader.int(node, "workers", in: 1...1_024)
        }
        return config
    }
}
