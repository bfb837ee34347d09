import ArgumentParser
import QuixKafka

@main
struct Quixd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quixd",
        abstract: "A stream-processing daemon and toolkit for Kafka, wire-compatible with Quix Streams 0.5.",
        version: QuixdVersion.current,
        subcommands: [
            Run.self, Validate.self, Test.self, Stages.self, Broker.self, Consume.self, Produce.self, State.self, DeadLetterCommand.self, Plan.self, Schema.self,
            Version.self,
        ])
}

enum QuixdVersion {
    static let current = "0.1.0"
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the version of quixd and of the librdkafka it runs on.")

    func run() {
        print("quixd \(QuixdVersion.current) (librdkafka \(librdkafkaVersion))")
    }
}
