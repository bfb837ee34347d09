import Foundation
import Yams

/// What a key of a file takes, declared once: the loaders read files by these declarations
/// (which keys a mapping allows and which it needs), and `quixd schema` prints them as JSON
/// Schema, so the two cannot drift apart.
public indirect enum SchemaValue: Sendable {
    case text
    /// Text that must not be empty (a topic, an id).
    case nonEmptyText
    /// Text matching this regular expression.
    case pattern(String)
    case flag
    case integer(ClosedRange<Int>)
    /// `250ms`, `10s`, `5m`, `1h` (or a plain number, where a row count is meant too).
    case duration
    case choice([String])
    case constant(String)
    case list(SchemaValue)
    case object(SchemaObject)
    /// Keys of the user's choosing, each with this value.
    case map(SchemaValue)
    /// A number, text or flag.
    case scalar
    case anyOf([SchemaValue])
    /// `spec.stages`: a stage of the registry per item, with its own `with:` options.
    case stages
}

/// One key of a mapping.
public struct SchemaKey: Sendable {
    public let name: String
    public let value: SchemaValue
    public let summary: String

    public init(_ name: String, _ value: SchemaValue, _ summary: String) {
        self.name = name
        self.value = value
        self.summary = summary
    }
}

/// A mapping's keys, and those it needs.
public struct SchemaObject: Sendable {
    public let keys: [SchemaKey]
    public let required: [String]

    public init(_ keys: [SchemaKey], required: [String] = []) {
        self.keys = keys
        self.required = required
    }

    public var allowed: [String] { keys.map(\.name) }
}

extension NodeReader {
    /// The entries of a mapping declared by `object`: unknown keys and missing required ones are
    /// mistakes.
    mutating func mapping(_ node: Node, _ path: String, _ object: SchemaObject) -> [String: Node]? {
        mapping(node, path, allowed: object.allowed, required: object.required)
    }
}

/// JSON Schema (draft 2020-12) of quixd's files.
public enum FileSchema {
    public enum File: String, Sendable, CaseIterable {
        case pipeline, config, tests
    }

    /// The schema of `file` as a JSON object; stage options come from `registry`.
    public static func jsonSchema(_ file: File, registry: StageRegistry) -> [String: Any] {
        let (root, title): (SchemaObject, String) =
            switch file {
            case .pipeline: (FileSchemas.pipeline, "quixd pipeline file")
            case .config: (FileSchemas.config, "quixd daemon config (quixd.yaml)")
            case .tests: (FileSchemas.tests, "quixd tests file (quixd test)")
            }
        var schema = json(.object(root), registry: registry)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = title
        return schema
    }

    /// The schema as pretty JSON text with sorted keys.
    public static func text(_ file: File, registry: StageRegistry) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: jsonSchema(file, registry: registry), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    static func json(_ value: SchemaValue, registry: StageRegistry) -> [String: Any] {
        switch value {
        case .text: return ["type": "string"]
        case .nonEmptyText: return ["type": "string", "minLength": 1]
        case .pattern(let pattern): return ["type": "string", "pattern": pattern]
        case .flag: return ["enum": [true, false, "true", "false"]]
        case .integer(let range): return ["type": "integer", "minimum": range.lowerBound, "maximum": range.upperBound]
        case .duration: return ["type": ["string", "number"], "pattern": durationPattern]
        case .choice(let choices): return ["enum": choices]
        case .constant(let text): return ["const": text]
        case .list(let item): return ["type": "array", "items": json(item, registry: registry)]
        case .map(let item): return ["type": "object", "additionalProperties": json(item, registry: registry)]
        case .scalar: return ["type": ["string", "number", "boolean", "null"]]
        case .anyOf(let values): return ["anyOf": values.map { json($0, registry: registry) }]
        case .object(let object):
            var properties: [String: Any] = [:]
            for key in object.keys {
                var property = json(key.value, registry: registry)
                property["description"] = key.summary
                properties[key.name] = property
            }
            var schema: [String: Any] = ["type": "object", "properties": properties, "additionalProperties": false]
            if !object.required.isEmpty { schema["required"] = object.required }
            return schema
        case .stages:
            return ["type": "array", "items": ["anyOf": registry.descriptors.map { stage(of: $0) }]]
        }
    }

    /// A stage item whose `uses` is this stage: its `with:` options, by the descriptor's words.
    private static func stage(of descriptor: StageDescriptor) -> [String: Any] {
        var options: [String: Any] = [:]
        for option in descriptor.options {
            var property = optionSchema(option.type)
            property["description"] = option.summary + (option.defaultValue.map { " (default \($0))" } ?? "")
            options[option.name] = property
        }
        var with: [String: Any] = ["type": "object", "properties": options, "additionalProperties": false]
        let required = descriptor.options.filter(\.required).map(\.name)
        if !required.isEmpty { with["required"] = required }
        return [
            "type": "object", "description": descriptor.summary, "additionalProperties": false, "required": ["id", "uses"],
            "properties": [
                "id": ["type": "string", "description": "the stage's id: its name in errors, metrics and state"],
                "uses": ["const": descriptor.name],
                "with": with,
            ],
        ]
    }

    /// An option's JSON Schema from its declared type: `a | b | c` is a choice, `list of …` a
    /// list (or one item), `duration` a duration; other words take any scalar.
    private static func optionSchema(_ type: String) -> [String: Any] {
        if type.hasPrefix("list of ") {
            let item = optionSchema(String(type.dropFirst("list of ".count)))
            return ["anyOf": [["type": "array", "items": item], item]]
        }
        let choices = type.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
        if choices.count > 1, choices.allSatisfy({ $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" } }) { return ["enum": choices] }
        if type == "duration" { return ["type": ["string", "number"], "pattern": durationPattern] }
        return ["type": ["string", "number", "boolean", "array", "object"]]
    }

    /// A number with a unit (or a `${VAR}` the loader fills in).
    static let durationPattern = #"^([0-9]+(\.[0-9]+)?(us|ms|s|m|h)?|.*\$\{.*)$"#
}
