import ArgumentParser
import Foundation
import Logging
import OrderedCollections
import QuixKafka
import QuixPipeline
import QuixProtocol
import Synchronization

struct Produce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write Quix Streams 0.5 messages from JSON lines (as `quixd consume` prints them) or CSV.",
        discussion: """
            JSON lines: one record per line, as `quixd consume` prints them; each is encoded with \
            its codec and envelope, split when larger than a Kafka message may be, and keyed by its \
            stream id. CSV (a file ending in .csv): a header row with a timestamp column (ns since the \
            Unix epoch, or ISO-8601) and one column per parameter; numbers become numeric values, \
            anything else string values, empty cells no value. Rows go to --stream as timeseries \
            packets of --batch rows, after the stream's properties, as the reference producer sends \
            them. Bad lines are reported with their line number and not sent; the exit code is then 1.
            """)

    @OptionGroup var target: TopicOptions

    @Option(help: "FILE.jsonl or FILE.csv; standard input (JSON lines) when absent.")
    var input: String?

    @Option(help: "CSV: the stream id to write to.")
    var stream: String?

    @Option(help: "CSV: the timestamp column.")
    var timestampColumn = "timestamp"

    @Option(help: "CSV: rows per timeseries packet.")
    var batch = 100

    @Option(help: "CSV: json, compactJSON or protobuf.")
    var codec = TimeseriesCodec.json

    @Flag(help: "CSV: close the stream (StreamEnd) after the last row.")
    var close = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        if isCSV && stream == nil { throw ValidationError("CSV input needs --stream ID") }
    }

    private var isCSV: Bool { input?.lowercased().hasSuffix(".csv") == true }

    func run() async throws {
        let text: [UInt8]
        if let input {
            guard let data = FileManager.default.contents(atPath: input) else { throw ValidationError("cannot read \(input)") }
            text = Array(data)
        } else {
            text = Array(FileHandle.standardInput.readDataToEndOfFile())
        }
        let records: [QuixRecord]
        let badLines: Int
        if isCSV {
            (records, badLines) = CSVImport(timestampColumn: timestampColumn, batch: batch, codec: codec)
                .records(text, stream: stream!, close: close)
        } else {
            (records, badLines) = Self.jsonRecords(text)
        }

        var logger = Logger(label: "quixd.produce")
        logger.logLevel = .warning
        let failures = Mutex<[String]>([])
        let producer = try KafkaProducer(
            settings: ProducerSettings(bootstrapServers: target.servers), logger: logger
        ) { report in
            if let error = report.error { failures.withLock { $0.append("\(report.topic)[\(report.partition)]: \(error)") } }
        }
        var messageID: UInt32 = 0  // the reference counts every package of a producer, from 1
        var sent = 0
        // A large input shows its progress on standard error.
        var progress = records.count >= Self.progressFrom ? ProgressReporter(total: records.count, unit: "records sent") : nil
        for (index, record) in records.enumerated() {
            progress?.update(index + 1)
            messageID &+= 1
            let key = record.stream == QuixCodec.noStreamID ? nil : Array(record.stream.utf8)
            for value in try record.kafkaValues(messageID: messageID) {
                try await producer.send(OutgoingMessage(topic: target.topic, key: key, value: value), tag: UInt64(sent))
                sent += 1
            }
        }
        try await producer.flush(timeout: .seconds(60))
        await producer.close()
        let failed = failures.withLock { $0 }
        for failure in failed { report("delivery failed: \(failure)") }
        report("produce: \(records.count) records in \(sent) messages to \(target.topic); \(badLines) bad lines; \(failed.count) failed deliveries")
        if badLines > 0 || !failed.isEmpty { throw ExitCode(1) }
    }

    /// Inputs of this many records or more show their progress.
    static let progressFrom = 10_000

    /// Records of JSON lines; bad lines are reported with their number and counted.
    static func jsonRecords(_ text: [UInt8]) -> ([QuixRecord], bad: Int) {
        var records: [QuixRecord] = []
        var bad = 0
        for (index, line) in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.last == UInt8(ascii: "\r") ? line.dropLast() : line
            guard !trimmed.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) else { continue }
            do {
                records.append(try QuixRecord(jsonLine: trimmed))
            } catch {
                report("line \(index + 1): \(error)")
                bad += 1
            }
        }
        return (records, bad)
    }
}

/// CSV rows into timeseries packets of one stream.
struct CSVImport {
    var timestampColumn: String
    var batch: Int
    var codec: TimeseriesCodec

    func records(_ text: [UInt8], stream: String, close: Bool) -> ([QuixRecord], bad: Int) {
        var lines = String(decoding: text, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated()
            .map { ($0.offset + 1, $0.element.hasSuffix("\r") ? $0.element.dropLast() : $0.element) }
            .filter { !$0.1.isEmpty }
        guard !lines.isEmpty else {
            report("csv: no header row")
            return ([], 1)
        }
        let header = Self.fields(lines.removeFirst().1)
        guard let timeIndex = header.firstIndex(of: timestampColumn) else {
            report("csv line 1: no \"\(timestampColumn)\" column in \(header)")
            return ([], 1)
        }
        var records = [QuixRecord(stream: stream, message: .model(.streamProperties(StreamProperties())), timeseriesCodec: codec)]
        var bad = 0
        var packet = TimeseriesData()
        func flushPacket() {
            guard !packet.timestamps.isEmpty else { return }
            records.append(QuixRecord(stream: stream, message: .model(.timeseries(packet)), timeseriesCodec: codec))
            packet = TimeseriesData()
        }
        for (number, line) in lines {
            let cells = Self.fields(line)
            guard cells.count == header.count else {
                report("csv line \(number): \(cells.count) fields, the header has \(header.count)")
                bad += 1
                continue
            }
            guard let timestamp = MessageFormats.timestamp(cells[timeIndex]) else {
                report("csv line \(number): \"\(cells[timeIndex])\" is no timestamp (ns since the epoch, or ISO-8601)")
                bad += 1
                continue
            }
            let row = packet.timestamps.count
            packet.timestamps.append(timestamp)
            for (column, name) in header.enumerated() where column != timeIndex {
                let cell = cells[column]
                if let number = Double(cell) {
                    packet.numericValues[name, default: Array(repeating: nil, count: row)].append(number)
                } else if !cell.isEmpty {
                    packet.stringValues[name, default: Array(repeating: nil, count: row)].append(cell)
                }
            }
            for name in packet.numericValues.keys where packet.numericValues[name]!.count == row { packet.numericValues[name]!.append(nil) }
            for name in packet.stringValues.keys where packet.stringValues[name]!.count == row { packet.stringValues[name]!.append(nil) }
            if packet.timestamps.count == batch { flushPacket() }
        }
        flushPacket()
        if close { records.append(QuixRecord(stream: stream, message: .model(.streamEnd(.closed)), timeseriesCodec: codec)) }
        return (records, bad)
    }

    /// Comma-separated fields; double quotes around a field allow commas and `""` inside.
    static func fields(_ line: Substring) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var iterator = line.makeIterator()
        while let character = iterator.next() {
            switch character {
            case "\"" where quoted:
                if let next = iterator.next() {
                    if next == "\"" { current.append("\"") } else {
                        quoted = false
                        if next == "," { fields.append(current); current = "" } else { current.append(next) }
                    }
                } else {
                    quoted = false
                }
            case "\"" where current.isEmpty: quoted = true
            case "," where !quoted:
                fields.append(current)
                current = ""
            default: current.append(character)
            }
        }
        fields.append(current)
        return fields.map { $0.trimmingCharacters(in: .whitespaces) }
    }
}
