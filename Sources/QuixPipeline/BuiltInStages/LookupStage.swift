import QuixStreams

/// `lookup`: adds to each row the columns of the table row whose key is the stream id, or the
/// row's value of the column `key` (a number as its shortest text: `17`, `2.5`). The columns are
/// named `<as><column>`; a number becomes a numeric cell, a text a string cell. A row without a
/// match (or a table row without that column) gets missing cells, or with `onMissing: drop` is
/// dropped. The table is one of the pipeline's `spec.tables`, read in full by every replica and
/// kept up to date while the pipeline runs (`TableReader`): a row sees the table as it is when the
/// row is processed.
public struct LookupStage: Stage {
    public enum OnMissing: String, Sendable, CaseIterable {
        case keep, drop
    }

    public let table: String
    public let columns: [String]
    /// The column whose value is the key; nil: the stream id.
    public let key: String?
    public let prefix: String
    public let onMissing: OnMissing

    public init(table: String, columns: [String], key: String? = nil, prefix: String = "", onMissing: OnMissing = .keep) {
        self.table = table
        self.columns = columns
        self.key = key
        self.prefix = prefix
        self.onMissing = onMissing
    }

    public static let descriptor = StageDescriptor(
        name: "lookup",
        summary: "Adds the columns of a table row (from spec.tables) whose key is the stream id or a column's value.",
        options: [
            StageOption("table", "name", required: true, "a table of spec.tables"),
            StageOption("columns", "list of names", required: true, "the table's columns to add"),
            StageOption("key", "name", "the column whose value is the table key (default: the stream id)"),
            StageOption("as", "text", default: "\"\"", "a prefix for the added columns' names"),
            StageOption("onMissing", "keep | drop", default: "keep", "rows without a table row: kept with missing cells, or dropped"),
        ]
    ) { options in
        let table = options.string("table")
        let columns = options.names("columns")
        let key = options.values["key"] == nil ? nil : options.string("key")
        let prefix = options.values["as"] == nil ? "" : options.string("as")
        let onMissing = options.values["onMissing"] == nil ? LookupStage.OnMissing.keep : options.choice("onMissing", LookupStage.OnMissing.self)
        guard let table, let columns, options.values["key"] == nil || key != nil, let prefix, let onMissing else { return nil }
        return LookupStage(table: table, columns: columns, key: key, prefix: prefix, onMissing: onMissing)
    }

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return frame }
        let table = try context.table(table)
        var matched = [Bool](repeating: false, count: frame.rowCount)
        var numbers = [String: [Double?]]()
        var texts = [String: [String?]]()
        let keyNumbers = key.flatMap { frame[$0] }
        let keyTexts = key.flatMap { frame.strings[$0] ?? frame.tags[$0] }
        for row in 0..<frame.rowCount {
            let rowKey: String? =
                if key == nil { context.streamID } else { keyNumbers?[row].map(EventTemplate.format) ?? keyTexts?[row] }
            guard let rowKey, let entry = table.row(rowKey) else { continue }
            matched[row] = true
            for column in columns {
                switch entry[column] {
                case .number(let value): numbers[column, default: Array(repeating: nil, count: frame.rowCount)][row] = value
                case .text(let text): texts[column, default: Array(repeating: nil, count: frame.rowCount)][row] = text
                case nil: break
                }
            }
        }
        var result = frame
        for column in columns {
            if let values = texts[column] {
                result.setStrings(prefix + column, values)
            } else {
                result[prefix + column] = NumericColumn(numbers[column] ?? Array(repeating: nil, count: frame.rowCount))
            }
        }
        if onMissing == .drop, matched.contains(false) { return result.filter(RowMask(matched)) }
        return result
    }

    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions {
        columns.reduce(definitions) { $0.adding(prefix + $1) }
    }
}
