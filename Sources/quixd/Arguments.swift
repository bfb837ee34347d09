import Glibc
import ArgumentParser
import QuixProtocol

/// A duration on the command line: `500ms`, `10s`, `2m`, `1h`, or plain seconds.
struct DurationArgument: ExpressibleByArgument, Sendable {
    var duration: Duration

    init?(argument: String) {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3_600)]
        for (suffix, seconds) in units where argument.hasSuffix(suffix) {
            guard let value = Double(argument.dropLast(suffix.count)), value >= 0 else { return nil }
            duration = .milliseconds(Int64(value * seconds * 1_000))
            return
        }
        guard let value = Double(argument), value >= 0 else { return nil }
        duration = .milliseconds(Int64(value * 1_000))
    }

    static let defaultValueDescription = "e.g. 500ms, 10s, 2m"
}

extension TimeseriesCodec: ExpressibleByArgument {}

/// Where the data is: the options `consume` and `produce` share.
struct TopicOptions: ParsableArguments {
    @Option(help: "Bootstrap servers, host:port[,host:port...].")
    var brokers: String

    @Option(help: "The topic.")
    var topic: String

    var servers: [String] { brokers.split(separator: ",").map(String.init) }

    func validate() throws {
        guard !topic.isEmpty else { throw ValidationError("--topic must name a topic") }
        guard !servers.isEmpty else { throw ValidationError("--brokers must name at least one host:port") }
    }
}

/// Standard output, written in batches (one system call per batch, not per line).
struct OutputBuffer {
    private var bytes: [UInt8] = []

    mutating func line(_ text: [UInt8]) {
        bytes += text
        bytes.append(UInt8(ascii: "\n"))
        if bytes.count > 1 << 16 { flush() }
    }

    mutating func flush() {
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let result = write(1, buffer.baseAddress! + written, buffer.count - written)
                if result <= 0 { break }
                written += result
            }
        }
        bytes.removeAll(keepingCapacity: true)
    }
}

/// Writes a line to standard error.
func report(_ text: String) {
    var line = Array(text.utf8)
    line.append(UInt8(ascii: "\n"))
    line.withUnsafeBytes { _ = write(2, $0.baseAddress, $0.count) }
}
