import QuixStreams

/// A safe expression over a frame's columns, as the `filter` (`where`), `compute` (`expression`)
/// and `event` (`when`) stages write them: `abs(gForceX) + abs(gForceY)`, `speed > 100 and
/// gear != 0`, `driver == 'Hamilton'`.
///
/// The language: numbers (`1`, `2.5`, `1e3`, `.5`); column names (`gForceX`, `a.b`, or any
/// name in backticks, `` `Speed (km/h)` ``), each a numeric column, else a string column, else a
/// tag of that name; `timestamp`, the row's timestamp in ns when no column has that name; string
/// literals in single or double quotes (`\` escapes the next character); `true`, `false`;
/// `+ - * / %` (`%` keeps the dividend's sign), unary `-`; `< <= > >= == !=`; `and or not`
/// (also `&& || !`); parentheses; and the functions `abs`, `min`, `max`, `sqrt`, `pow`, `log`
/// (natural), `exp`, `round(x)` / `round(x, digits)` (halves away from zero) and `coalesce`.
///
/// A missing cell (or a column the frame lacks) makes arithmetic missing and a comparison false;
/// `coalesce` takes the first present value. Division by zero gives infinity or NaN, as Double
/// does. The source is parsed and type-checked once, into a program that works on whole
/// columns at a time; evaluation never throws.
public struct Expression: Sendable, Hashable, CustomStringConvertible {
    /// The kind of value an expression gives per row.
    public enum ResultType: Sendable, Hashable, CustomStringConvertible {
        /// A number per row (possibly missing): `numbers(in:)` gives it.
        case number
        /// True or false per row: `mask(in:)` gives it.
        case boolean
        /// A string literal on its own, which no stage can use.
        case string

        /// `number`, `boolean` or `string`.
        public var description: String {
            switch self {
            case .number: "number"
            case .boolean: "boolean"
            case .string: "string"
            }
        }
    }

    /// The text the expression was parsed from.
    public let source: String
    /// The names the expression reads (including `timestamp`), in order of first appearance.
    public let columns: [String]
    let program: Program

    /// Parses and type-checks `source`; every syntax and type error is reported here, at load.
    public init(_ source: String) throws(ExpressionError) {
        self.source = source
        var parser = try Parser(source)
        let tree = try parser.parse()
        columns = parser.columns
        program = try Compiler.compile(tree, source: source)
    }

    /// Parses `source` and checks that it gives a value of `type` (`.boolean` for a condition,
    /// `.number` for a computed column).
    public init(_ source: String, expecting type: ResultType) throws(ExpressionError) {
        try self.init(source)
        guard resultType == type else {
            let start = source.prefix { $0.isWhitespace }.count
            let wanted = type == .boolean ? "a condition (a boolean)" : "a \(type)"
            throw ExpressionError(message: "expected \(wanted), found a \(resultType)", offset: start, source: source)
        }
    }

    /// What the expression gives per row. A bare column name is a number.
    public var resultType: ResultType { program.resultType }

    /// The source text.
    public var description: String { source }

    /// The expression's value in each row of `frame`, for a `.number` expression. (A `.boolean`
    /// expression gives 1 and 0; a `.string` one, missing cells.)
    public func numbers(in frame: TimeseriesFrame) -> NumericColumn {
        program.numbers(in: frame)
    }

    /// The rows of `frame` where the expression holds, for a `.boolean` expression. (A `.number`
    /// expression holds where it is present and not zero; a `.string` one, nowhere.)
    public func mask(in frame: TimeseriesFrame) -> RowMask {
        program.mask(in: frame)
    }

    /// Expressions are equal when their sources are.
    public static func == (a: Expression, b: Expression) -> Bool { a.source == b.source }

    /// Hashes the source.
    public func hash(into hasher: inout Hasher) { hasher.combine(source) }
}

/// Why an expression's source is not a valid expression, and where.
public struct ExpressionError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong, e.g. `unknown function "sqr"; did you mean "sqrt"?`.
    public var message: String
    /// The 0-based character offset in `source` of the problem (`source.count` for its end).
    public var offset: Int
    /// The expression's text.
    public var source: String

    /// An error at `offset` characters into `source`.
    public init(message: String, offset: Int, source: String) {
        self.message = message
        self.offset = offset
        self.source = source
    }

    /// `column N: message`, then the source and a caret under the character at fault:
    ///
    ///     column 10: unknown function "sqr"; did you mean "sqrt"?
    ///       abs(x) + sqr(y)
    ///                ^
    public var description: String {
        // One character for one, so the caret stays under its character.
        let line = String(source.map { $0.isNewline || $0 == "\t" ? " " : $0 })
        return "column \(offset + 1): \(message)\n  \(line)\n  \(String(repeating: " ", count: max(0, offset)))^"
    }
}
