import QuixStreams

/// `filter`: keeps the rows where an expression holds.
public struct FilterStage: Stage {
    public let condition: Expression

    public static let descriptor = StageDescriptor(
        name: "filter", summary: "Keeps the rows where an expression holds.",
        options: [StageOption("where", "boolean expression", required: true, "the rows to keep, e.g. speed > 100 and gear != 0")]
    ) { options in
        options.expression("where", type: .boolean).map(FilterStage.init)
    }

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        let mask = condition.mask(in: frame)
        return mask.selectedCount == frame.rowCount ? frame : frame.filter(mask)
    }
}

/// `compute`: adds (or replaces) a numeric column computed from others, row by row.
public struct ComputeStage: Stage {
    public let column: String
    public let expression: Expression

    public static let descriptor = StageDescriptor(
        name: "compute", summary: "Adds or replaces a numeric column computed from an expression.",
        options: [
            StageOption("column", "name", required: true, "the column to write"),
            StageOption("expression", "number expression", required: true, "its value per row, e.g. abs(gForceX) + abs(gForceY)"),
        ]
    ) { options in
        let column = options.string("column")
        let expression = options.expression("expression", type: .number)
        guard let column, let expression else { return nil }
        return ComputeStage(column: column, expression: expression)
    }

    public func process(_ frame: consuming TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        let values = expression.numbers(in: frame)
        frame[column] = values
        return frame
    }

    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions { definitions.adding(column) }
}

/// `event`: sends an event for each row where a condition holds (the speeding-ticket pattern);
/// the rows pass on unchanged.
public struct EventStage: Stage {
    public let condition: Expression
    public let id: String
    public let template: EventTemplate

    public static let descriptor = StageDescriptor(
        name: "event", summary: "Sends an event for each row where a condition holds; rows pass on unchanged.",
        options: [
            StageOption("when", "boolean expression", required: true, "the rows that raise an event"),
            StageOption("id", "name", required: true, "the event id"),
            StageOption(
                "value", "text with {column} placeholders", default: "\"\"",
                "the event value; {name} is the row's value of a column or tag, {streamId} and {timestamp} are known too"),
        ]
    ) { options in
        let condition = options.expression("when", type: .boolean)
        let id = options.string("id")
        let template = EventTemplate(options.values["value"].flatMap { value in
            if case .scalar(let text) = value.kind { text } else { nil }
        } ?? "")
        guard let condition, let id else { return nil }
        return EventStage(condition: condition, id: id, template: template)
    }

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        let mask = condition.mask(in: frame)
        for row in mask.rows.indices where mask.rows[row] {
            context.emit(EventData(id: id, timestamp: frame.timestamps[row], value: template.render(frame, row: row, streamID: context.streamID)))
        }
        return frame
    }
}

/// An event value with `{name}` placeholders filled from a row.
public struct EventTemplate: Sendable, Hashable {
    enum Part: Sendable, Hashable {
        case text(String)
        case field(String)
    }

    let parts: [Part]

    public init(_ text: String) {
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            if open > rest.startIndex { parts.append(.text(String(rest[..<open]))) }
            parts.append(.field(String(rest[rest.index(after: open)..<close])))
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        self.parts = parts
    }

    /// The text for one row; a name without a value in the row is left empty.
    public func render(_ frame: TimeseriesFrame, row: Int, streamID: String) -> String {
        var result = ""
        for part in parts {
            switch part {
            case .text(let text):
                result += text
            case .field("streamId"):
                result += streamID
            case .field("timestamp"):
                result += String(frame.timestamps[row])
            case .field(let name):
                if let number = frame[name]?[row] {
                    result += Self.format(number)
                } else if let text = frame.strings[name]?[row] ?? frame.tags[name]?[row] {
                    result += text
                }
            }
        }
        return result
    }

    /// Whole numbers without a fraction (`130`, not `130.0`), others as Swift prints them.
    static func format(_ number: Double) -> String {
        if number.rounded() == number, abs(number) < 1e15 { return String(Int64(number)) }
        return String(number)
    }
}
