import Foundation
import Yams

/// Reads pipeline files: YAML parsed with Yams, `${VAR}` interpolation, and a check of every
/// key that reports all mistakes at once, each with file, line, column and key path.
public enum PipelineLoader {
    public static let apiVersion = "quixd/v1"

    /// Reads and checks the pipeline file at `path`, with `overrides` (`path.to.key=value`,
    /// as `--set` gives them) applied first.
    public static func load(
        file path: String, environment: [String: String] = ProcessInfo.processInfo.environment, overrides: [String] = [],
        stages registry: StageRegistry = .builtIn
    ) throws(ConfigErrors) -> Pipeline {
        let text = try ConfigDocument.text(of: path)
        return try parse(text, file: path, environment: environment, overrides: overrides, stages: registry)
    }

    /// Checks the pipeline written in `text` (`file` names it in errors). Each stage's options are
    /// checked by making the stage from `registry`.
    public static func parse(
        _ text: String, file: String, environment: [String: String] = [:], overrides: [String] = [], stages registry: StageRegistry = .builtIn
    ) throws(ConfigErrors) -> Pipeline {
        try ConfigDocument.read(text, file: file, environment: environment, overrides: overrides) { root, reader in
            read(root, registry, &reader)
        }
    }

    private static func read(_ root: Node, _ registry: StageRegistry, _ reader: inout NodeReader) -> Pipeline? {
        guard let top = reader.mapping(root, "", FileSchemas.pipeline)
        else { return nil }
        if let node = top["apiVersion"], let version = reader.string(node, "apiVersion"), version != apiVersion {
            reader.fail(node, "apiVersion", "expected \(apiVersion), found \"\(version)\"")
        }
        if let node = top["kind"], let kind = reader.string(node, "kind"), kind != "Pipeline" {
            reader.fail(node, "kind", "expected Pipeline, found \"\(kind)\"")
        }
        var name: String?
        if let node = top["metadata"], let metadata = reader.mapping(node, "metadata", FileSchemas.metadata),
            let nameNode = metadata["name"], let text = reader.nonEmptyString(nameNode, "metadata.name")
        {
            // It names the default consumer group, the state folder and the changelog topic: what a
            // Kafka topic name allows, starting with a letter or digit.
            if text.count <= 200, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }),
                text.first.map({ $0.isLetter || $0.isNumber }) == true
            {
                name = text
            } else {
                reader.fail(
                    nameNode, "metadata.name",
                    "expected letters, digits, dots, dashes and underscores, starting with a letter or digit (at most 200), found \"\(text)\"")
            }
        }
        guard let specNode = top["spec"],
            let spec = reader.mapping(specNode, "spec", FileSchemas.spec)
        else { return nil }
        let input = spec["input"].flatMap { readInput($0, name, &reader) }
        let tables = spec["tables"].map { readTables($0, &reader) } ?? []
        let stages = spec["stages"].flatMap { readStages($0, registry, &reader) }
        if let stages, let tables { checkLookups(stages, tables, &reader) }
        let outputs = readOutputs(spec, specNode, &reader)
        let delivery = spec["delivery"].map { reader.choice($0, "spec.delivery", Pipeline.Delivery.self) } ?? .atLeastOnce
        var interval: Duration? = .seconds(1)
        if let node = spec["checkpoint"], let checkpoint = reader.mapping(node, "spec.checkpoint", FileSchemas.checkpoint) {
            interval = checkpoint["interval"].map { reader.duration($0, "spec.checkpoint.interval") } ?? interval
        }
        var changelog: Bool? = true
        var expiry: Pipeline.StateExpiry? = Pipeline.StateExpiry()
        if let node = spec["state"], let state = reader.mapping(node, "spec.state", FileSchemas.state) {
            changelog = state["changelog"].map { reader.bool($0, "spec.state.changelog") } ?? changelog
            if changelog == false, delivery == .exactlyOnce {
                reader.fail(
                    state["changelog"], "spec.state.changelog",
                    "exactly-once needs the changelog: state a crash left behind the last transaction catches up from it")
            }
            let onStreamEnd = state["onStreamEnd"].map { reader.choice($0, "spec.state.onStreamEnd", Pipeline.StateExpiry.OnStreamEnd.self) } ?? .keep
            let idle = state["idle"].map { reader.duration($0, "spec.state.idle") }
            if let onStreamEnd, idle != .some(nil) {
                expiry = Pipeline.StateExpiry(onStreamEnd: onStreamEnd, idle: idle ?? nil)
            } else {
                expiry = nil
            }
        }
        var onError: Pipeline.ErrorPolicy? = Pipeline.ErrorPolicy(kind: .stop, topic: nil)
        if let node = spec["onError"] {
            onError = readErrorPolicy(node, &reader)
        }
        guard let name, let input, let stages, let tables, let outputs, let delivery, let interval, let changelog, let expiry, let onError
        else { return nil }
        return Pipeline(
            name: name, input: input, stages: stages, tables: tables, outputs: outputs, delivery: delivery, checkpointInterval: interval,
            changelog: changelog, expiry: expiry, onError: onError)
    }

    private static func readInput(_ node: Node, _ name: String?, _ reader: inout NodeReader) -> Pipeline.Input? {
        guard let input = reader.mapping(node, "spec.input", FileSchemas.input)
        else { return nil }
        let topic = input["topic"].flatMap { reader.nonEmptyString($0, "spec.input.topic") }
        let group = input["consumerGroup"].map { reader.nonEmptyString($0, "spec.input.consumerGroup") } ?? name
        let format = input["format"].map { reader.choice($0, "spec.input.format", Pipeline.DataFormat.self) } ?? .quix
        let startFrom = input["startFrom"].map { reader.choice($0, "spec.input.startFrom", Pipeline.StartFrom.self) } ?? .earliest
        guard let topic, let group, let format, let startFrom else { return nil }
        return Pipeline.Input(topic: topic, consumerGroup: group, format: format, startFrom: startFrom)
    }

    private static func readStages(_ node: Node, _ registry: StageRegistry, _ reader: inout NodeReader) -> [Pipeline.Stage]? {
        guard let items = reader.sequence(node, "spec.stages") else { return nil }
        var stages: [Pipeline.Stage] = []
        var ids: Set<String> = []
        var complete = true
        for (index, item) in items.enumerated() {
            let path = "spec.stages[\(index)]"
            guard let stage = reader.mapping(item, path, FileSchemas.stage) else {
                complete = false
                continue
            }
            let id = stage["id"].flatMap { reader.nonEmptyString($0, "\(path).id") }
            if let id, let idNode = stage["id"], !ids.insert(id).inserted {
                reader.fail(idNode, "\(path).id", "\"\(id)\" is the id of an earlier stage; ids must be unique")
            }
            var uses = stage["uses"].flatMap { reader.nonEmptyString($0, "\(path).uses") }
            if let name = uses, let usesNode = stage["uses"], registry[name] == nil {
                let hint = nearest(name, in: registry.names).map { "did you mean \"\($0)\"? " } ?? ""
                reader.fail(usesNode, "\(path).uses", "no stage named \"\(name)\"; \(hint)known stages: \(registry.names.joined(separator: ", "))")
                uses = nil
            }
            var options: [String: ConfigValue]? = [:]
            if let withNode = stage["with"] {
                if case .map(let entries) = reader.value(withNode, "\(path).with")?.kind {
                    options = entries
                } else {
                    reader.fail(withNode, "\(path).with", "expected a mapping of the stage's options")
                    options = nil
                }
            }
            guard let id, let uses, let options else {
                complete = false
                continue
            }
            let declared = Pipeline.Stage(id: id, uses: uses, options: options, line: item.mark?.line ?? 0, column: item.mark?.column ?? 0)
            do throws(ConfigErrors) {
                _ = try registry.make(declared, file: reader.file, path: path)
            } catch {
                reader.record(error.errors)
                complete = false
                continue
            }
            stages.append(declared)
        }
        if items.isEmpty { reader.fail(node, "spec.stages", "expected at least one stage") }
        return complete && !items.isEmpty ? stages : nil
    }

    /// `spec.output` (one output, id `main`) or `spec.outputs` (a list, each with its own id),
    /// not both; topics and ids unique.
    private static func readOutputs(_ spec: [String: Node], _ specNode: Node, _ reader: inout NodeReader) -> [Pipeline.Output]? {
        switch (spec["output"], spec["outputs"]) {
        case (nil, nil):
            reader.fail(specNode, "spec.output", "missing; a pipeline needs spec.output, or a list of routed outputs in spec.outputs")
            return nil
        case (let single?, nil):
            return readOutput(single, "spec.output", id: "main", &reader).map { [$0] }
        case (nil, let list?):
            guard let items = reader.sequence(list, "spec.outputs") else { return nil }
            if items.isEmpty { reader.fail(list, "spec.outputs", "expected at least one output") }
            var outputs: [Pipeline.Output] = []
            var complete = !items.isEmpty
            for (index, item) in items.enumerated() {
                let path = "spec.outputs[\(index)]"
                guard let output = readOutput(item, path, id: nil, &reader) else {
                    complete = false
                    continue
                }
                if let earlier = outputs.first(where: { $0.id == output.id }) {
                    reader.fail(item["id"] ?? item, "\(path).id", "\"\(output.id)\" is the id of an earlier output (topic \(earlier.topic)); ids must be unique")
                    complete = false
                }
                if let earlier = outputs.first(where: { $0.topic == output.topic }) {
                    reader.fail(
                        item["topic"] ?? item, "\(path).topic", "\"\(output.topic)\" is also output \(earlier.id)'s topic; two outputs would write one stream twice")
                    complete = false
                }
                outputs.append(output)
            }
            return complete ? outputs : nil
        case (_?, let list?):
            reader.fail(list, "spec.outputs", "spec.output and spec.outputs are both given; keep one (spec.output is a list of one)")
            return nil
        }
    }

    private static func readOutput(_ node: Node, _ path: String, id defaultID: String?, _ reader: inout NodeReader) -> Pipeline.Output? {
        guard
            let output = reader.mapping(node, path, defaultID == nil ? FileSchemas.routedOutput : FileSchemas.output)
        else { return nil }
        let id = output["id"].map { reader.nonEmptyString($0, "\(path).id") } ?? defaultID
        let topic = output["topic"].flatMap { reader.nonEmptyString($0, "\(path).topic") }
        let format = output["format"].map { reader.choice($0, "\(path).format", Pipeline.DataFormat.self) } ?? .quix
        let events = output["events"].map { reader.bool($0, "\(path).events") } ?? true
        var when: Expression?? = .some(nil)
        if let node = output["when"], let text = reader.nonEmptyString(node, "\(path).when") {
            do {
                when = try Expression(text, expecting: .boolean)
            } catch {
                reader.fail(node, "\(path).when", "\(error)")
                when = nil
            }
        } else if output["when"] != nil {
            when = nil
        }
        var buffer: Pipeline.Buffer? = Pipeline.Buffer()
        if let bufferNode = output["buffer"],
            let entries = reader.mapping(bufferNode, "\(path).buffer", FileSchemas.buffer)
        {
            let packetSize = entries["packetSize"].map { reader.int($0, "\(path).buffer.packetSize", in: 1...1_000_000) }
            let timeSpan = entries["timeSpan"].map { reader.duration($0, "\(path).buffer.timeSpan") }
            let timeout = entries["timeout"].map { reader.duration($0, "\(path).buffer.timeout") }
            if packetSize == .some(nil) || timeSpan == .some(nil) || timeout == .some(nil) {
                buffer = nil
            } else {
                buffer = Pipeline.Buffer(packetSize: packetSize ?? nil, timeSpan: timeSpan ?? nil, timeout: timeout ?? nil)
            }
        }
        guard let id, let topic, let format, let events, let when, let buffer else { return nil }
        return Pipeline.Output(id: id, topic: topic, format: format, buffer: buffer, when: when, events: events)
    }

    /// `spec.tables`: `name: { topic, format: json | quix, key: streamId | <field> }`.
    private static func readTables(_ node: Node, _ reader: inout NodeReader) -> [Pipeline.Table]? {
        guard let entries = node.mapping else {
            reader.fail(node, "spec.tables", "expected a mapping of table names to { topic, format, key }")
            return nil
        }
        var tables: [Pipeline.Table] = []
        var complete = true
        for (nameNode, tableNode) in entries {
            guard let name = reader.nonEmptyString(nameNode, "spec.tables") else {
                complete = false
                continue
            }
            let path = "spec.tables.\(name)"
            guard let table = reader.mapping(tableNode, path, FileSchemas.table) else {
                complete = false
                continue
            }
            let topic = table["topic"].flatMap { reader.nonEmptyString($0, "\(path).topic") }
            var format = table["format"].map { reader.choice($0, "\(path).format", Pipeline.DataFormat.self) } ?? .json
            if format == .raw {
                reader.fail(table["format"], "\(path).format", "expected json or quix; a raw message has no fields to look up")
                format = nil
            }
            let key = table["key"].map { reader.nonEmptyString($0, "\(path).key") } ?? "streamId"
            guard let topic, let format, let key else {
                complete = false
                continue
            }
            tables.append(Pipeline.Table(name: name, topic: topic, format: format, key: key == "streamId" ? .streamID : .field(key)))
        }
        return complete ? tables.sorted { $0.name < $1.name } : nil
    }

    /// Each `lookup` stage names a table of `spec.tables`.
    private static func checkLookups(_ stages: [Pipeline.Stage], _ tables: [Pipeline.Table], _ reader: inout NodeReader) {
        for (index, stage) in stages.enumerated() where stage.uses == LookupStage.descriptor.name {
            guard let option = stage.options["table"], case .scalar(let name) = option.kind, !tables.contains(where: { $0.name == name }) else { continue }
            let known = tables.isEmpty ? "the pipeline has no spec.tables" : "its tables: \(tables.map(\.name).joined(separator: ", "))"
            let hint = nearest(name, in: tables.map(\.name)).map { "did you mean \"\($0)\"? " } ?? ""
            reader.record([
                ConfigError(
                    file: reader.file, line: option.line, column: option.column, keyPath: "spec.stages[\(index)].with.table",
                    message: "no table named \"\(name)\"; \(hint)\(known)")
            ])
        }
    }

    private static func readErrorPolicy(_ node: Node, _ reader: inout NodeReader) -> Pipeline.ErrorPolicy? {
        guard let entries = reader.mapping(node, "spec.onError", FileSchemas.onError),
            let policyNode = entries["policy"], let kind = reader.choice(policyNode, "spec.onError.policy", Pipeline.ErrorPolicy.Kind.self)
        else { return nil }
        let topic = entries["topic"].flatMap { reader.nonEmptyString($0, "spec.onError.topic") }
        if kind == .deadLetter && topic == nil && entries["topic"] == nil {
            reader.fail(node, "spec.onError.topic", "missing; the dead-letter policy needs a topic")
            return nil
        }
        return Pipeline.ErrorPolicy(kind: kind, topic: topic)
    }
}
