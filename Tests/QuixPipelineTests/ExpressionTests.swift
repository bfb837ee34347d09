import QuixPipeline
import QuixStreams
import Testing

/// Four rows with missing cells, a string column, a tag, and names that need backticks.
private let sample: TimeseriesFrame = {
    var frame = TimeseriesFrame(timestamps: [1_000, 2_000, 3_000, 4_000])
    frame["a"] = [1, 2, nil, 4]
    frame["b"] = [10, 0, 5, nil]
    frame["c"] = NumericColumn(values: [-1.5, 2.25, -3, 0.5])
    frame["d"] = [0, 1, 2, nil]
    frame["e"] = NumericColumn(values: [1, 3, 3, 4])
    frame["r"] = NumericColumn(values: [1.25, -2.345, 1234.5, 0.05])
    frame["sq"] = [4, 9, 2.25, nil]
    frame["Speed (km/h)"] = NumericColumn(values: [100, 120, 80, 90])
    frame["a.b"] = NumericColumn(values: [7, 8, 9, 10])
    frame["and"] = NumericColumn(values: [1, 1, 1, 1])
    frame.setStrings("gear", ["low", "high", nil, "low"])
    frame.setStrings("quote", ["it's", "it", nil, "\"x\""])
    frame.setTags("driver", ["ann", "bob", "ann", nil])
    frame.setTags("expected", ["low", "low", nil, "low"])
    return frame
}()

private func numbers(_ source: String, in frame: TimeseriesFrame = sample) throws -> [Double?] {
    Array(try Expression(source).numbers(in: frame))
}

private func mask(_ source: String, in frame: TimeseriesFrame = sample) throws -> [Bool] {
    try Expression(source).mask(in: frame).rows
}

/// The error `source` gives, or nil when it parses.
private func failure(_ source: String) -> ExpressionError? {
    do {
        _ = try Expression(source)
        return nil
    } catch {
        return error
    }
}

@Suite("expressions")
struct ExpressionTests {
    // MARK: Arithmetic

    @Test("precedence and associativity of arithmetic")
    func precedence() throws {
        #expect(try numbers("1 + 2 * 3") == [7, 7, 7, 7])
        #expect(try numbers("(1 + 2) * 3") == [9, 9, 9, 9])
        #expect(try numbers("10 - 4 - 3") == [3, 3, 3, 3])
        #expect(try numbers("16 / 4 / 2") == [2, 2, 2, 2])
        #expect(try numbers("2 * 3 % 4") == [2, 2, 2, 2])
        #expect(try numbers("2 * c - 1") == [-4, 3.5, -7, 0])
        #expect(try numbers("1 + 2 * c") == [-2, 5.5, -5, 2])
        // Unary minus binds tighter than + and *: (-c) + 1, not -(c + 1).
        #expect(try numbers("- c + 1") == [2.5, -1.25, 4, 0.5])
        #expect(try numbers("-(c + 1)") == [0.5, -3.25, 2, -1.5])
        #expect(try numbers("--c") == [-1.5, 2.25, -3, 0.5])
        #expect(try numbers("c * -2") == [3, -4.5, 6, -1])
        // A constant on the left of a column.
        #expect(try numbers("10 - a") == [9, 8, nil, 6])
        #expect(try numbers("12 / a") == [12, 6, nil, 3])
        #expect(try numbers("5 % e") == [0, 2, 2, 1])
    }

    @Test("constant subexpressions are computed once, with the same results")
    func constants() throws {
        #expect(try numbers("coalesce(1, 2) + min(3, 4) * max(-1, -2)") == [-2, -2, -2, -2])
        #expect(try numbers("coalesce(nope, 3, 4)") == [3, 3, 3, 3])
        #expect(try numbers("round(10 / 3, 0) + pow(2, 3) - abs(-1.5) + round(1.25, 1)") == [10.8, 10.8, 10.8, 10.8])
        #expect(try mask("true and false") == [false, false, false, false])
        #expect(try mask("1 > 2 or 2 >= 2") == [true, true, true, true])
        #expect(try mask("not (1 > 2) and 'a' != 'b'") == [true, true, true, true])
        #expect(try mask("(1 < 2) == (3 < 2)") == [false, false, false, false])
    }

    @Test("number literals")
    func literals() throws {
        #expect(try numbers("1e3 + .5") == [1000.5, 1000.5, 1000.5, 1000.5])
        #expect(try numbers("2.5E-1 * 4") == [1, 1, 1, 1])
        #expect(try numbers("1.") == [1, 1, 1, 1])
        #expect(try numbers("1e+2") == [100, 100, 100, 100])
    }

    @Test("remainder keeps the dividend's sign; division by zero is infinite or NaN")
    func remainderAndDivision() throws {
        #expect(try numbers("7 % 3") == [1, 1, 1, 1])
        #expect(try numbers("-7 % 3") == [-1, -1, -1, -1])
        #expect(try numbers("c % 2") == [-1.5, 0.25, -1, 0.5])
        #expect(try numbers("c / 0") == [-.infinity, .infinity, -.infinity, .infinity])
        let nan = try numbers("b % 0")
        #expect(nan[0]!.isNaN && nan[1]!.isNaN && nan[2]!.isNaN && nan[3] == nil)
        let roots = try numbers("sqrt(c)")
        #expect(roots[0]!.isNaN && roots[1] == 1.5 && roots[2]!.isNaN && roots[3] == 0.5.squareRoot())
    }

    // MARK: Missing cells

    @Test("arithmetic with a missing cell or an absent column is missing, and missing cells hold 0")
    func missingArithmetic() throws {
        #expect(try numbers("a + b") == [11, 2, nil, nil])
        #expect(try numbers("a * 2") == [2, 4, nil, 8])
        #expect(try numbers("-a") == [-1, -2, nil, -4])
        #expect(try numbers("nope + 1") == [nil, nil, nil, nil])
        #expect(try numbers("abs(nope)") == [nil, nil, nil, nil])
        #expect(try numbers("a") == [1, 2, nil, 4])
        let column = try Expression("a + b").numbers(in: sample)
        #expect(column.values == [11, 2, 0, 0] && column.present == [true, true, false, false])
        #expect(column == NumericColumn([11, 2, nil, nil]))
        // A string column or a tag is no number.
        #expect(try numbers("gear + 1") == [nil, nil, nil, nil])
        #expect(try numbers("driver * 2") == [nil, nil, nil, nil])
    }

    @Test("a frame without rows gives no rows")
    func emptyFrame() throws {
        let empty = TimeseriesFrame(timestamps: [])
        #expect(try numbers("a + 1", in: empty) == [])
        #expect(try mask("a > 1", in: empty) == [])
    }

    // MARK: Comparisons and logic

    @Test("a comparison with a missing operand is false")
    func comparisons() throws {
        #expect(try mask("a > 1") == [false, true, false, true])
        #expect(try mask("a >= 2") == [false, true, false, true])
        #expect(try mask("a < 2") == [true, false, false, false])
        #expect(try mask("a <= 1") == [true, false, false, false])
        #expect(try mask("a == 2") == [false, true, false, false])
        #expect(try mask("a != 2") == [true, false, false, true])
        #expect(try mask("2 < a") == [false, false, false, true])
        #expect(try mask("1 >= a") == [true, false, false, false])
        #expect(try mask("a < b") == [true, false, false, false])
        #expect(try mask("a + 1 == b - 8") == [true, false, false, false])
        #expect(try mask("a * 10 == b") == [true, false, false, false])
        #expect(try mask("nope > 0") == [false, false, false, false])
        #expect(try mask("nope != 0") == [false, false, false, false])
        #expect(try mask("1 < 2") == [true, true, true, true])
        #expect(try mask("1 > 2") == [false, false, false, false])
    }

    @Test("two columns compare as numbers, row by row")
    func columnsCompared() throws {
        #expect(try mask("a == a") == [true, true, false, true])
        #expect(try mask("a != a") == [false, false, false, false])
        #expect(try mask("c == c") == [true, true, true, true])
        #expect(try mask("a == e") == [true, false, false, true])
        #expect(try mask("a != e") == [false, true, false, false])
        #expect(try mask("a == nope") == [false, false, false, false])
    }

    @Test("and, or, not: precedence and missing values (booleans are never missing)")
    func logic() throws {
        #expect(try mask("a >= 2 and b >= 0") == [false, true, false, false])
        #expect(try mask("a < 2 || b == 5") == [true, false, true, false])
        #expect(try mask("a > 1 or b > 1") == [true, true, true, true])
        #expect(try mask("not (a > 1)") == [true, false, true, false])
        #expect(try mask("!(a == 1) && a <= 4") == [false, true, false, true])
        // not binds looser than a comparison, tighter than and.
        #expect(try mask("not a > 1 and b > 1") == [true, false, true, false])
        // and binds tighter than or.
        #expect(try mask("a == 1 or a == 2 and b == 10") == [true, false, false, false])
        #expect(try mask("a == 4 or a == 2 and b == 0") == [false, true, false, true])
        #expect(try mask("(a == 4 or a == 2) and b == 0") == [false, true, false, false])
        #expect(try mask("not not (a > 1)") == [false, true, false, true])
        #expect(try mask("true and a > 1") == [false, true, false, true])
        #expect(try mask("false or true") == [true, true, true, true])
        #expect(try mask("not true") == [false, false, false, false])
        #expect(try mask("(a > 1) != (b > 6)") == [true, true, false, true])
        #expect(try mask("(a > 1) == (b > 6)") == [false, false, true, false])
    }

    @Test("a number's mask is where it is present and not zero; a boolean's numbers are 1 and 0")
    func conversions() throws {
        #expect(try mask("b") == [true, false, true, false])
        #expect(try numbers("a > 1") == [0, 1, 0, 1])
        #expect(try mask("'x'") == [false, false, false, false])
        #expect(try numbers("'x'") == [nil, nil, nil, nil])
    }

    // MARK: Functions

    @Test("abs, sqrt, pow, log, exp")
    func mathFunctions() throws {
        #expect(try numbers("abs(c)") == [1.5, 2.25, 3, 0.5])
        #expect(try numbers("abs(-a)") == [1, 2, nil, 4])
        #expect(try numbers("sqrt(sq)") == [2, 3, 1.5, nil])
        #expect(try numbers("pow(a, 2)") == [1, 4, nil, 16])
        #expect(try numbers("pow(2, a)") == [2, 4, nil, 16])
        #expect(try numbers("pow(a, d)") == [1, 2, nil, nil])
        #expect(try numbers("exp(0) + log(1)") == [1, 1, 1, 1])
        let logs = try numbers("log(a)")
        #expect(logs[0] == 0 && abs(logs[1]! - 0.6931471805599453) < 1e-15 && logs[2] == nil)
        #expect(abs(logs[3]! - 1.3862943611198906) < 1e-15)
        let exps = try numbers("exp(d)")
        #expect(exps[0] == 1 && abs(exps[1]! - 2.718281828459045) < 1e-15 && abs(exps[2]! - 7.38905609893065) < 1e-14)
        #expect(exps[3] == nil)
        #expect(try numbers("log(0)") == [-.infinity, -.infinity, -.infinity, -.infinity])
    }

    @Test("min and max of any number of arguments; a missing argument makes them missing")
    func minMax() throws {
        #expect(try numbers("min(a, b, 3)") == [1, 0, nil, nil])
        #expect(try numbers("max(c, 0)") == [0, 2.25, 0, 0.5])
        #expect(try numbers("max(a, c)") == [1, 2.25, nil, 4])
        #expect(try numbers("min(c, -2, 1)") == [-2, -2, -3, -2])
        #expect(try numbers("max(1, 5, 3) + min(4, 2)") == [7, 7, 7, 7])
        #expect(try numbers("-max(c, -c)") == [-1.5, -2.25, -3, -0.5])
    }

    @Test("round halves away from zero, to whole numbers or to digits (negative: tens, hundreds)")
    func rounding() throws {
        #expect(try numbers("round(c)") == [-2, 2, -3, 1])
        #expect(try numbers("round(2.5) + round(-2.5)") == [0, 0, 0, 0])
        #expect(try numbers("round(-2.5)") == [-3, -3, -3, -3])
        #expect(try numbers("round(3.14159, 2)") == [3.14, 3.14, 3.14, 3.14])
        #expect(try numbers("round(r, 1)") == [1.3, -2.3, 1234.5, 0.1])
        #expect(try numbers("round(r, -2)") == [0, 0, 1200, 0])
        // Digits per row; missing digits make the result missing.
        #expect(try numbers("round(r, d)") == [1, -2.3, 1234.5, nil])
        #expect(try numbers("round(a / 3, 2)") == [0.33, 0.67, nil, 1.33])
    }

    @Test("coalesce takes the first present value of each row")
    func coalesce() throws {
        #expect(try numbers("coalesce(a, b, 0)") == [1, 2, 5, 4])
        #expect(try numbers("coalesce(b, a)") == [10, 0, 5, 4])
        #expect(try numbers("coalesce(nope, b)") == [10, 0, 5, nil])
        #expect(try numbers("coalesce(b, nope)") == [10, 0, 5, nil])
        #expect(try numbers("coalesce(a, -1) * 2") == [2, 4, -2, 8])
        #expect(try numbers("coalesce(nope, gear, 7)") == [7, 7, 7, 7])
        #expect(try numbers("coalesce(a + b, d * 100, -1)") == [11, 2, 200, -1])
        #expect(try mask("coalesce(a, 0) > 1") == [false, true, false, true])
    }

    // MARK: Strings, tags, names

    @Test("string columns and tags compared with string literals")
    func strings() throws {
        #expect(try mask("gear == 'low'") == [true, false, false, true])
        #expect(try mask("gear != 'low'") == [false, true, false, false])
        #expect(try mask("\"high\" == gear") == [false, true, false, false])
        #expect(try mask("driver == \"ann\"") == [true, false, true, false])
        #expect(try mask("driver != 'ann'") == [false, true, false, false])
        #expect(try mask("gear == 'LOW'") == [false, false, false, false])
        #expect(try mask("quote == 'it\\'s' or quote == \"\\\"x\\\"\"") == [true, false, false, true])
        #expect(try mask("gear == 'low' and a > 1") == [false, false, false, true])
        // A numeric column and an absent one equal no string.
        #expect(try mask("a == '1'") == [false, false, false, false])
        #expect(try mask("nope == 'x'") == [false, false, false, false])
        #expect(try mask("nope != 'x'") == [false, false, false, false])
        #expect(try mask("'a' == 'a'") == [true, true, true, true])
        #expect(try mask("'a' != 'a'") == [false, false, false, false])
    }

    @Test("two string columns or tags compare as strings; a string with a number is false")
    func stringColumnsCompared() throws {
        #expect(try mask("gear == expected") == [true, false, false, true])
        #expect(try mask("gear != expected") == [false, true, false, false])
        #expect(try mask("gear == a") == [false, false, false, false])
        #expect(try mask("gear != a") == [false, false, false, false])
    }

    @Test("a name is a numeric column, else a string column, else a tag")
    func resolution() throws {
        var frame = TimeseriesFrame(timestamps: [1, 2])
        frame["x"] = NumericColumn(values: [5, 6])
        frame.setTags("x", ["v", "w"])
        frame.setStrings("y", ["s", "t"])
        frame.setTags("y", ["t", "s"])
        #expect(try mask("x > 5", in: frame) == [false, true])
        #expect(try mask("x == 'v'", in: frame) == [false, false])
        #expect(try mask("y == 's'", in: frame) == [true, false])
    }

    @Test("backtick-quoted names and dotted identifiers")
    func quotedNames() throws {
        #expect(try numbers("`Speed (km/h)` * 2") == [200, 240, 160, 180])
        #expect(try mask("`Speed (km/h)` > 95") == [true, true, false, false])
        #expect(try numbers("a.b + 1") == [8, 9, 10, 11])
        #expect(try numbers("`a.b` - a.b") == [0, 0, 0, 0])
        #expect(try numbers("`and` + 1") == [2, 2, 2, 2])
        #expect(try Expression("`Speed (km/h)` / `a.b` + a").columns == ["Speed (km/h)", "a.b", "a"])
    }

    @Test("timestamp is the row's timestamp in ns unless a column has that name")
    func timestamp() throws {
        #expect(try numbers("timestamp / 1000") == [1, 2, 3, 4])
        #expect(try mask("timestamp > 2500") == [false, false, true, true])
        // Quoted, it is a column name only.
        #expect(try numbers("`timestamp`") == [nil, nil, nil, nil])
        var big = TimeseriesFrame(timestamps: [1_700_000_000_000_000_000, 1_600_000_000_000_000_000])
        #expect(try mask("timestamp >= 1.7e18", in: big) == [true, false])
        big["timestamp"] = NumericColumn(values: [1, 2])
        #expect(try numbers("timestamp", in: big) == [1, 2])
        var tagged = TimeseriesFrame(timestamps: [5, 6])
        tagged.setTags("timestamp", ["t", "u"])
        #expect(try numbers("timestamp", in: tagged) == [nil, nil])
        #expect(try mask("timestamp == 'u'", in: tagged) == [false, true])
    }

    // MARK: Load-time facts

    @Test("the result type of an expression")
    func resultTypes() throws {
        #expect(try Expression("a + 1").resultType == .number)
        #expect(try Expression("a").resultType == .number)
        #expect(try Expression("coalesce(a, 1)").resultType == .number)
        #expect(try Expression("a > 1").resultType == .boolean)
        #expect(try Expression("true").resultType == .boolean)
        #expect(try Expression("gear == 'low'").resultType == .boolean)
        #expect(try Expression("'low'").resultType == .string)
        #expect(Expression.ResultType.boolean.description == "boolean")
        #expect(try Expression("a > 1", expecting: .boolean).resultType == .boolean)
        #expect(try Expression("a * 2", expecting: .number).resultType == .number)
    }

    @Test("columns are the names read, once each, in order of first appearance")
    func columns() throws {
        #expect(try Expression("abs(gForceX) + abs(gForceY) + abs(gForceZ)").columns == ["gForceX", "gForceY", "gForceZ"])
        #expect(try Expression("b + a * b + timestamp").columns == ["b", "a", "timestamp"])
        #expect(try Expression("driver == 'a' and round(x, 2) > 1").columns == ["driver", "x"])
        #expect(try Expression("1 + 2").columns == [])
    }

    @Test("expressions are equal when their sources are, and print as their source")
    func identity() throws {
        let one = try Expression("a + 1")
        #expect(one == (try Expression("a + 1")))
        #expect(one != (try Expression("a+1")))
        #expect(Set([one, try Expression("a + 1")]).count == 1)
        #expect(one.description == "a + 1" && one.source == "a + 1")
    }

    @Test("the gForce expression of the example pipeline")
    func gForce() throws {
        var frame = TimeseriesFrame(timestamps: [1, 2, 3])
        frame["gForceX"] = [0.5, -1, nil]
        frame["gForceY"] = NumericColumn(values: [-0.25, 0.5, 1])
        frame["gForceZ"] = NumericColumn(values: [1, -1, 1])
        #expect(try numbers("abs(gForceX) + abs(gForceY) + abs(gForceZ)", in: frame) == [1.75, 2.5, nil])
    }

    // MARK: Errors

    struct ErrorCase: Sendable, CustomTestStringConvertible {
        var source: String
        var message: String
        var offset: Int
        var testDescription: String { source }

        init(_ source: String, _ message: String, _ offset: Int) {
            self.source = source
            self.message = message
            self.offset = offset
        }
    }

    @Test(
        "errors name the problem and where it is",
        arguments: [
            // Unknown functions, with a suggestion when one is near.
            ErrorCase("abs(x) + sqr(y)", "unknown function \"sqr\"; did you mean \"sqrt\"?", 9),
            ErrorCase("ABS(x)", "unknown function \"ABS\"; did you mean \"abs\"?", 0),
            ErrorCase("ln(x)", "unknown function \"ln\"; did you mean \"log\"?", 0),
            ErrorCase("coalese(a, b)", "unknown function \"coalese\"; did you mean \"coalesce\"?", 0),
            ErrorCase("foo(a)", "unknown function \"foo\"; the functions are abs, coalesce, exp, log, max, min, pow, round, sqrt", 0),
            ErrorCase(
                "1 + average(x)",
                "unknown function \"average\"; the functions are abs, coalesce, exp, log, max, min, pow, round, sqrt", 4),
            // Arity.
            ErrorCase("pow(a)", "\"pow\" takes 2 arguments, found 1", 0),
            ErrorCase("1 + abs(a, b)", "\"abs\" takes 1 argument, found 2", 4),
            ErrorCase("min(a)", "\"min\" takes at least 2 arguments, found 1", 0),
            ErrorCase("round()", "\"round\" takes 1 or 2 arguments, found 0", 0),
            ErrorCase("round(a, 1, 2)", "\"round\" takes 1 or 2 arguments, found 3", 0),
            ErrorCase("coalesce(a)", "\"coalesce\" takes at least 2 arguments, found 1", 0),
            // Parentheses.
            ErrorCase("(a + b", "unclosed \"(\"", 0),
            ErrorCase("a * (b + (c - 1)", "unclosed \"(\"", 4),
            ErrorCase("max(a, b", "unclosed \"(\"", 3),
            ErrorCase("a + b)", "unmatched \")\"", 5),
            ErrorCase("(a b)", "expected an operator or \")\", found \"b\"", 3),
            ErrorCase("max(a b)", "expected \",\" or \")\", found \"b\"", 6),
            // Unexpected ends and tokens.
            ErrorCase("a +", "unexpected end of expression", 3),
            ErrorCase("a * (", "unexpected end of expression", 5),
            ErrorCase("not", "unexpected end of expression", 3),
            ErrorCase("* 2", "expected a value, found \"*\"", 0),
            ErrorCase("max(a, )", "expected a value, found \")\"", 7),
            ErrorCase("a > 1 and or b", "expected a value, found \"or\"", 10),
            ErrorCase("a b", "expected an operator, found \"b\"", 2),
            ErrorCase("a 'x'", "expected an operator, found the string 'x'", 2),
            ErrorCase("a > 1 AND b < 2", "expected an operator, found \"AND\"; did you mean \"and\"?", 6),
            ErrorCase("a < b < c", "comparisons cannot be chained; join them with \"and\"", 6),
            // Characters, strings, names, numbers.
            ErrorCase("a $ b", "unexpected character \"$\"", 2),
            ErrorCase("a = 1", "unexpected character \"=\"; did you mean \"==\"?", 2),
            ErrorCase("a > 1 & b > 1", "unexpected character \"&\"; did you mean \"&&\"?", 6),
            ErrorCase("gear == 'low", "unterminated string: no closing '", 8),
            ErrorCase("gear == \"low", "unterminated string: no closing \"", 8),
            ErrorCase("`Speed (km/h) > 1", "unterminated name: no closing \"`\"", 0),
            ErrorCase("`` + 1", "empty name \"``\"", 0),
            ErrorCase("1e + 2", "malformed number \"1e\"", 0),
            ErrorCase("2 * 1e-x", "malformed number \"1e-x\"", 4),
            // Types.
            ErrorCase("1 + (a > 2)", "\"+\" needs numbers, found a boolean", 4),
            ErrorCase("true * 2", "\"*\" needs numbers, found a boolean", 0),
            ErrorCase("gear + 'x'", "\"+\" needs numbers, found a string", 7),
            ErrorCase("-(a > 1)", "\"-\" needs a number, found a boolean", 1),
            ErrorCase("not 3", "\"not\" needs a boolean, found a number", 4),
            ErrorCase("!a", "\"!\" needs a boolean, found a number", 1),
            ErrorCase("a > 1 and b", "\"and\" needs booleans, found a number", 10),
            ErrorCase("a || b > 1", "\"||\" needs booleans, found a number", 0),
            ErrorCase("speed > 'fast'", "\">\" needs numbers, found a string", 8),
            ErrorCase("(a > 1) < 2", "\"<\" needs numbers, found a boolean", 0),
            ErrorCase("1 == 'x'", "cannot compare a number with a string", 2),
            ErrorCase("(a > 1) != 2", "cannot compare a boolean with a number", 8),
            ErrorCase("abs(a > 1)", "argument 1 of \"abs\" must be a number, found a boolean", 4),
            ErrorCase("max(1, 'x')", "argument 2 of \"max\" must be a number, found a string", 7),
            // Nothing at all.
            ErrorCase("", "empty expression", 0),
            ErrorCase("   ", "empty expression", 0),
        ])
    func errors(_ expected: ErrorCase) {
        let error = failure(expected.source)
        #expect(error?.message == expected.message)
        #expect(error?.offset == expected.offset)
        #expect(error?.source == expected.source)
    }

    @Test("an error prints its column, the source, and a caret under the character at fault")
    func errorDescription() {
        #expect(
            failure("abs(x) + sqr(y)")?.description == """
                column 10: unknown function "sqr"; did you mean "sqrt"?
                  abs(x) + sqr(y)
                           ^
                """)
        #expect(
            failure("a +")?.description == """
                column 4: unexpected end of expression
                  a +
                     ^
                """)
        // Line breaks and tabs print as spaces, so the caret stays under its character.
        #expect(
            failure("a +\n\tsqr(b)")?.description == """
                column 6: unknown function "sqr"; did you mean "sqrt"?
                  a +  sqr(b)
                       ^
                """)
    }

    @Test("a stage's expected type is checked at load")
    func expectedType() {
        do {
            _ = try Expression("a + 1", expecting: .boolean)
            Issue.record("a number accepted as a condition")
        } catch {
            #expect(error.message == "expected a condition (a boolean), found a number" && error.offset == 0)
        }
        do {
            _ = try Expression("  a > 1", expecting: .number)
            Issue.record("a condition accepted as a number")
        } catch {
            #expect(error.message == "expected a number, found a boolean" && error.offset == 2)
        }
        do {
            _ = try Expression("'x'", expecting: .number)
            Issue.record("a string accepted as a number")
        } catch {
            #expect(error.message == "expected a number, found a string" && error.offset == 0)
        }
    }

    @Test("nesting too deep for the parser is an error, not a crash")
    func deepNesting() {
        let deep = String(repeating: "(", count: 300) + "1" + String(repeating: ")", count: 300)
        let error = failure(deep)
        #expect(error?.message == "expression nested too deeply (more than 200 levels)" && error?.offset == 200)
        let fine = String(repeating: "(", count: 150) + "a" + String(repeating: ")", count: 150)
        #expect(failure(fine) == nil)
        #expect(failure(String(repeating: "-", count: 150) + "a") == nil)
    }
}
