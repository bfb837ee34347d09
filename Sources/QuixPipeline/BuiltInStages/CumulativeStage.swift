import QuixStreams

/// `cumulative`: adds a column with a running aggregate of a numeric column over all of the
/// stream's rows so far, across frames: each row's cell is the aggregate of every present value
/// up to and including the row's own. Missing cells are skipped: a row with a missing cell gets
/// the aggregate so far, and rows before the stream's first value get a missing cell (0 for
/// `count`).
///
/// State (store = the stage id, per stream): `value` (Double), the aggregate so far (the sum,
/// the number of values, the least or the greatest value), absent until the first value.
public struct CumulativeStage: Stage {
    public enum Aggregate: String, Sendable, CaseIterable {
        case sum, count, min, max
    }

    public let column: String
    public let aggregate: Aggregate
    /// The column added.
    public let output: String

    public init(column: String, aggregate: Aggregate = .sum, as output: String? = nil) {
        self.column = column
        self.aggregate = aggregate
        self.output = output ?? "\(column)_cumulative_\(aggregate.rawValue)"
    }

    public static let descriptor = StageDescriptor(
        name: "cumulative",
        summary: "Adds a column with a running aggregate (sum, count, min or max) of a column over all of the stream's rows so far.",
        options: [
            StageOption("column", "name", required: true, "the numeric column to aggregate"),
            StageOption("aggregate", "sum | count | min | max", default: "sum", "what to keep a running value of"),
            StageOption("as", "name", default: "<column>_cumulative_<aggregate>", "the column to add"),
        ],
        isStateful: true,
        stateShapedBy: ["column", "aggregate"]
    ) { options in
        let column = options.string("column")
        let aggregate =
            options.values["aggregate"] == nil ? CumulativeStage.Aggregate.sum : options.choice("aggregate", CumulativeStage.Aggregate.self)
        let output = options.string("as")
        guard let column, let aggregate else { return nil }
        return CumulativeStage(column: column, aggregate: aggregate, as: output)
    }

    static let valueKey = "value"

    public func process(_ frame: consuming TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return frame }
        let state = try context.state()
        let stored = try state.get(Self.valueKey, as: Double.self)
        var running = stored
        let cells = frame[column] ?? NumericColumn(repeating: nil, count: frame.rowCount)
        var result = NumericColumn(repeating: nil, count: frame.rowCount)
        for row in 0..<frame.rowCount {
            if let value = cells[row] {
                running = running.map { combine($0, value) } ?? (aggregate == .count ? 1 : value)
            }
            result[row] = running ?? (aggregate == .count ? 0 : nil)
        }
        if let running, running != stored { state.set(Self.valueKey, running) }
        frame[output] = result
        return frame
    }

    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions { definitions.adding(output) }

    private func combine(_ running: Double, _ value: Double) -> Double {
        switch aggregate {
        case .sum: running + value
        case .count: running + 1
        case .min: Swift.min(running, value)
        case .max: Swift.max(running, value)
        }
    }
}
