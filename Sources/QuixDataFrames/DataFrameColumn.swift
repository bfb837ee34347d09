import QuixPipeline

/// A column of a streaming data frame, as an expression of the pipelines' language over the
/// row's columns: `df["gForceX"].abs() + df["gForceY"].abs()`. Rolling aggregates inside it
/// become `rolling` stages that run before the expression.
public struct DataFrameColumn: Sendable {
    /// The expression's text (`abs(\`gForceX\`) + 1`).
    let expression: String
    /// The rolling aggregates it reads, each computed into the column it names first.
    let rollings: [RollingAggregate]
    /// The column's name when it is one of the row's columns as it is.
    let name: String?

    init(expression: String, rollings: [RollingAggregate] = []) {
        self.expression = expression
        self.rollings = rollings
        name = nil
    }

    /// A column of the row, by name.
    init(name: String, rollings: [RollingAggregate] = []) {
        expression = "`\(name)`"
        self.rollings = rollings
        self.name = name
    }

    public func abs() -> DataFrameColumn { call("abs") }
    public func sqrt() -> DataFrameColumn { call("sqrt") }
    public func round(_ digits: Int = 0) -> DataFrameColumn {
        DataFrameColumn(expression: "round(\(expression), \(digits))", rollings: rollings)
    }

    /// The aggregate over a window of data time (`(t - window, t]`) across the whole stream.
    public func rolling(_ window: Duration) -> RollingWindow { RollingWindow(column: self, window: Self.text(window)) }
    /// The aggregate over the stream's last `rows` rows.
    public func rolling(rows: Int) -> RollingWindow { RollingWindow(column: self, window: String(rows)) }

    private func call(_ function: String) -> DataFrameColumn {
        DataFrameColumn(expression: "\(function)(\(expression))", rollings: rollings)
    }

    static func binary(_ left: DataFrameColumn, _ operation: String, _ right: DataFrameColumn) -> DataFrameColumn {
        DataFrameColumn(expression: "(\(left.expression) \(operation) \(right.expression))", rollings: left.rollings + right.rollings)
    }

    static func literal(_ value: Double) -> DataFrameColumn {
        DataFrameColumn(expression: value < 0 ? "(\(value))" : "\(value)")
    }

    /// A duration as the pipelines write it: whole seconds, else milliseconds, else microseconds.
    static func text(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if attoseconds == 0 { return "\(seconds)s" }
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return microseconds % 1_000 == 0 ? "\(microseconds / 1_000)ms" : "\(microseconds)us"
    }

    public static func + (l: Self, r: Self) -> Self { binary(l, "+", r) }
    public static func - (l: Self, r: Self) -> Self { binary(l, "-", r) }
    public static func * (l: Self, r: Self) -> Self { binary(l, "*", r) }
    public static func / (l: Self, r: Self) -> Self { binary(l, "/", r) }
    public static func + (l: Self, r: Double) -> Self { binary(l, "+", literal(r)) }
    public static func - (l: Self, r: Double) -> Self { binary(l, "-", literal(r)) }
    public static func * (l: Self, r: Double) -> Self { binary(l, "*", literal(r)) }
    public static func / (l: Self, r: Double) -> Self { binary(l, "/", literal(r)) }
    public static func * (l: Double, r: Self) -> Self { binary(literal(l), "*", r) }

    public static func > (l: Self, r: Double) -> DataFrameCondition { DataFrameCondition(binary(l, ">", literal(r))) }
    public static func >= (l: Self, r: Double) -> DataFrameCondition { DataFrameCondition(binary(l, ">=", literal(r))) }
    public static func < (l: Self, r: Double) -> DataFrameCondition { DataFrameCondition(binary(l, "<", literal(r))) }
    public static func <= (l: Self, r: Double) -> DataFrameCondition { DataFrameCondition(binary(l, "<=", literal(r))) }
    public static func > (l: Self, r: Self) -> DataFrameCondition { DataFrameCondition(binary(l, ">", r)) }
    public static func < (l: Self, r: Self) -> DataFrameCondition { DataFrameCondition(binary(l, "<", r)) }
}

/// A boolean over the row (`df["speed"] > 100`), for `filter` and `df[condition]`.
public struct DataFrameCondition: Sendable {
    let column: DataFrameColumn

    init(_ column: DataFrameColumn) { self.column = column }

    public static func && (l: Self, r: Self) -> Self { Self(.binary(l.column, "and", r.column)) }
    public static func || (l: Self, r: Self) -> Self { Self(.binary(l.column, "or", r.column)) }
    public static prefix func ! (c: Self) -> Self { Self(DataFrameColumn(expression: "(not \(c.column.expression))", rollings: c.column.rollings)) }
}

/// `column.rolling(window)`: pick the aggregate.
public struct RollingWindow: Sendable {
    let column: DataFrameColumn
    let window: String

    public func mean() -> DataFrameColumn { aggregate(.mean) }
    public func sum() -> DataFrameColumn { aggregate(.sum) }
    public func min() -> DataFrameColumn { aggregate(.min) }
    public func max() -> DataFrameColumn { aggregate(.max) }
    public func count() -> DataFrameColumn { aggregate(.count) }

    private func aggregate(_ aggregate: RollingAggregate.Function) -> DataFrameColumn {
        let rolling = RollingAggregate(source: column, window: window, function: aggregate)
        return DataFrameColumn(name: rolling.output, rollings: column.rollings + [rolling])
    }
}

/// A `rolling` stage a column needs: the aggregate of `source` into the column `output`.
struct RollingAggregate: Sendable {
    enum Function: String, Sendable { case mean, sum, min, max, count }

    let source: DataFrameColumn
    let window: String
    let function: Function

    /// The column the aggregate reads: the source's name, or a column computed from its
    /// expression, named by a stable hash of it.
    var input: String { source.name ?? "expr_\(Self.fnv1a(source.expression))" }
    /// Named by what it computes, so the same aggregate is computed (and kept in state) once.
    var output: String { "\(input)_rolling_\(function.rawValue)_\(window)" }

    /// FNV-1a, 64 bits, in hex: the same in every run, unlike `hashValue`.
    static func fnv1a(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return String(hash, radix: 16)
    }
}

extension Duration {
    /// Minutes, for windows: `rolling(.minutes(10))`.
    public static func minutes(_ minutes: Int) -> Duration { .seconds(minutes * 60) }
    /// Hours, for windows: `rolling(.hours(1))`.
    public static func hours(_ hours: Int) -> Duration { .seconds(hours * 3600) }
}
