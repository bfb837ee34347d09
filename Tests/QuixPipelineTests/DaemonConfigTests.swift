import Foundation
import QuixPipeline
import Testing

@Suite("The daemon config")
struct DaemonConfigTests {
    private func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-\(UUID().uuidString).yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("defaults, then the file, then QUIXD_* variables, then --set; secrets masked in the printed config")
    func precedence() throws {
        let defaults = try DaemonConfigLoader.load(file: nil, environment: [:])
        #expect(defaults.kafka.brokers.isEmpty && defaults.stateDirectory == "./state" && defaults.httpListen == "0.0.0.0:8080")
        #expect(defaults.shutdownGrace == .seconds(30) && defaults.logFormat == .text && defaults.workers == nil)

        let file = try write("""
            apiVersion: quixd/v1
            kind: Config
            kafka:
              brokers: a:9092, b:9092
              groupInstanceId: ${POD_NAME:}
              security: { protocol: SASL_SSL, saslMechanism: PLAIN, saslUsername: app, saslPassword: "${KAFKA_PASSWORD}" }
              properties: { ssl.key.password: hunter2, session.timeout.ms: 10000 }
            state: { directory: /var/lib/quixd }
            http: { listen: off }
            pipelines: [/etc/quixd/pipelines]
            log: { level: debug, format: json }
            shutdown: { grace: 45s }
            workers: 3
            """)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let config = try DaemonConfigLoader.load(
            file: file, environment: ["KAFKA_PASSWORD": "s3cret", "POD_NAME": "quixd-2", "QUIXD_STATE_DIR": "/data", "QUIXD_LOG_LEVEL": "warning"],
            overrides: ["log.level=error"])
        #expect(config.kafka.brokers == ["a:9092", "b:9092"] && config.kafka.groupInstanceID == "quixd-2")
        #expect(config.kafka.securityProtocol == "sasl_ssl" && config.kafka.saslPassword == "s3cret")
        #expect(config.stateDirectory == "/data", "the variable overrides the file")
        #expect(config.logLevel == .error, "--set overrides the variable")
        #expect(config.httpListen == nil && config.logFormat == .json && config.shutdownGrace == .seconds(45))
        #expect(config.pipelines == ["/etc/quixd/pipelines"] && config.workers == 3)
        #expect(try DaemonConfigLoader.load(file: file, environment: ["KAFKA_PASSWORD": "s3cret", "QUIXD_WORKERS": "auto"]).workers == nil, "auto: the cores quixd may use")
        #expect(try DaemonConfigLoader.load(file: file, environment: ["KAFKA_PASSWORD": "s3cret", "QUIXD_WORKERS": "8"]).workers == 8)
        let printed = config.masked
        #expect(!printed.contains("s3cret") && !printed.contains("hunter2"))
        #expect(printed.contains("saslPassword: ****") && printed.contains("ssl.key.password: ****") && printed.contains("session.timeout.ms: 10000"))
    }

    @Test("mistakes name the file, position and key")
    func mistakes() throws {
        let file = try write("""
            apiVersion: quixd/v1
            kind: Config
            kafka: { brokers: a:9092, secruity: {} }
            http: { listen: everywhere }
            log: { level: loud }
            workers: 0
            """)
        defer { try? FileManager.default.removeItem(atPath: file) }
        #expect(throws: ConfigErrors.self) { try DaemonConfigLoader.load(file: file, environment: [:]) }
        do {
            _ = try DaemonConfigLoader.load(file: file, environment: [:])
        } catch {
            #expect(error.errors.map(\.description) == [
                "\(file):3:27: kafka.secruity: unknown key; did you mean \"security\"?",
                "\(file):4:17: http.listen: expected HOST:PORT (or off), found \"everywhere\"",
                "\(file):5:15: log.level: expected one of trace | debug | info | notice | warning | error | critical, found \"loud\"",
                "\(file):6:10: workers: expected a whole number in 1...1024, found \"0\"",
            ])
        }
    }
}
