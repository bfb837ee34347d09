import ArgumentParser
import Foundation
import QuixStreams

struct State: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect state directories (read-only; safe while quixd runs).",
        discussion: """
            A state directory holds one LMDB environment per input partition \
            (<dir>/<name>/<topic>-<partition>/). These commands open them read-only: they never \
            change state and never block the daemon that owns it.
            """,
        subcommands: [List.self, Get.self, Dump.self])

    enum Format: String, ExpressibleByArgument {
        case text, json
    }

    struct Location: ParsableArguments {
        @Option(help: "A state directory, or one partition's environment in it.")
        var dir: String
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the partitions: checkpoint, stores, entries.")

        @OptionGroup var location: Location
        @Option(help: "text or json.") var format = Format.text

        func run() throws {
            let partitions = try StateInspector.partitions(under: location.dir).map(StateInspector.partition(at:))
            switch format {
            case .text:
                for partition in partitions {
                    let stores = partition.stores.map { "\($0) (\(partition.entries[$0] ?? 0) entries)" }.joined(separator: ", ")
                    print("\(partition.path)  checkpoint \(partition.checkpoint.map(String.init) ?? "none")  stores: \(stores.isEmpty ? "none" : stores)")
                }
            case .json:
                for partition in partitions {
                    try printJSON([
                        "path": partition.path, "checkpoint": partition.checkpoint.map { $0 as Any } ?? NSNull(),
                        "stores": partition.stores, "entries": partition.entries,
                    ])
                }
            }
        }
    }

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print one stream's value of a key (exit 1 if it has none).")

        @OptionGroup var location: Location
        @Option(help: "The stream id.") var stream: String
        @Option(help: "The key.") var key: String
        @Option(help: "The store (default: every store).") var store: String?
        @Option(help: "text or json.") var format = Format.text

        func run() throws {
            let entries = try StateInspector.partitions(under: location.dir).flatMap {
                try StateInspector.entries(at: $0, stream: stream, store: store)
            }.filter { $0.key == key }
            guard !entries.isEmpty else {
                report("stream \"\(stream)\" has no key \"\(key)\" under \(location.dir)")
                throw ExitCode(1)
            }
            for entry in entries { try print(entry, format) }
        }
    }

    struct Dump: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print every entry, one per line.")

        @OptionGroup var location: Location
        @Option(help: "Only this stream.") var stream: String?
        @Option(help: "Only this store.") var store: String?
        @Option(help: "text or json (one JSON object per line).") var format = Format.text

        func run() throws {
            for path in try StateInspector.partitions(under: location.dir) {
                for entry in try StateInspector.entries(at: path, stream: stream, store: store) { try print(entry, format) }
            }
        }
    }
}

private func print(_ entry: StateInspector.Entry, _ format: State.Format) throws {
    switch format {
    case .text:
        Swift.print("\(entry.streamID)\t\(entry.store)\t\(entry.key)\t\(entry.value)")
    case .json:
        try printJSON(["partition": entry.partition, "store": entry.store, "stream": entry.streamID, "key": entry.key, "value": entry.value.json])
    }
}

private func printJSON(_ object: [String: Any]) throws {
    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    Swift.print(String(decoding: data, as: UTF8.self))
}
