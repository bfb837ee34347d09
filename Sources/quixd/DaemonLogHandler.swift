import Foundation
import Logging
import QuixPipeline

/// quixd's log lines on standard error: text (`2026-11-25T10:00:00.123Z info quixd: message
/// key=value …`) or one JSON object per line (`time`, `level`, `label`, `message` and the
/// metadata: pipeline, stream, stage, partitions, error …).
struct DaemonLogHandler: LogHandler {
    let label: String
    let format: DaemonConfig.LogFormat
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    init(label: String, format: DaemonConfig.LogFormat, level: DaemonConfig.LogLevel) {
        self.label = label
        self.format = format
        logLevel = Logger.Level(rawValue: level.rawValue) ?? .info
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let (level, message) = (event.level, event.message)
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { _, new in new } }
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        let text: String
        switch format {
        case .text:
            let fields = all.keys.sorted().map { "\($0)=\(Self.quoted("\(all[$0]!)"))" }
            text = ([time, level.rawValue, "\(label):", "\(message)"] + fields).joined(separator: " ")
        case .json:
            var object: [String: String] = ["time": time, "level": level.rawValue, "label": label, "message": "\(message)"]
            for (key, value) in all { object[key] = "\(value)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
            text = String(decoding: data, as: UTF8.self)
        }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    private static func quoted(_ value: String) -> String {
        value.contains(where: { $0 == " " || $0 == "\"" || $0 == "\n" }) ? "\"\(value.replacingOccurrences(of: "\"", with: "\\\""))\"" : value
    }
}
