// The compiled form of an expression and its evaluation: a short list of instructions, each a
// loop over whole columns held in registers (`rows` doubles and `rows` presence flags per
// register, all in one scratch allocation per evaluation). A number register's flags say which
// cells are present; a boolean register's flags are its truth, 0 or 1. Constants are folded at
// compile time, or combined with a register directly (`a * 2` never fills a register with 2s).

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import OrderedCollections
import QuixStreams

extension Expression {
    /// A binary numeric operation: an operator, or a function of two arguments.
    enum Arithmetic {
        case add, subtract, multiply, divide, remainder, power, minimum, maximum, round

        init(_ op: BinaryOperator) {
            switch op {
            case .add: self = .add
            case .subtract: self = .subtract
            case .multiply: self = .multiply
            case .divide: self = .divide
            case .remainder: self = .remainder
            default: preconditionFailure("not arithmetic: \(op)")
            }
        }

        init(_ function: Function) {
            switch function {
            case .pow: self = .power
            case .min: self = .minimum
            case .max: self = .maximum
            case .round: self = .round
            default: preconditionFailure("not a binary function: \(function)")
            }
        }

        @inline(__always)
        func apply(_ a: Double, _ b: Double) -> Double {
            switch self {
            case .add: a + b
            case .subtract: a - b
            case .multiply: a * b
            case .divide: a / b
            case .remainder: a.truncatingRemainder(dividingBy: b)
            case .power: pow(a, b)
            case .minimum: Double.minimum(a, b)
            case .maximum: Double.maximum(a, b)
            case .round: Self.round(a, digits: b)
            }
        }

        /// `x` rounded to `digits` decimals (a whole number of them, negative for tens,
        /// hundreds, ...), halves away from zero.
        static func round(_ x: Double, digits: Double) -> Double {
            guard digits.isFinite, x.isFinite else { return digits.isNaN ? .nan : x }
            let places = Swift.min(Swift.max(digits.rounded(.towardZero), -400), 400)
            if places >= 0 {
                let scale = pow(10, places)
                let result = (x * scale).rounded() / scale
                return result.isFinite ? result : x  // x has no more decimals than that
            } else {
                let scale = pow(10, -places)
                return (x / scale).rounded() * scale
            }
        }
    }

    /// A numeric function of one argument, or negation.
    enum Unary {
        case negate, abs, sqrt, log, exp, round

        init(_ function: Function) {
            switch function {
            case .abs: self = .abs
            case .sqrt: self = .sqrt
            case .log: self = .log
            case .exp: self = .exp
            case .round: self = .round
            default: preconditionFailure("not a unary function: \(function)")
            }
        }

        @inline(__always)
        func apply(_ x: Double) -> Double {
            switch self {
            case .negate: -x
            case .abs: Swift.abs(x)
            case .sqrt: x.squareRoot()
            case .log: Expression.naturalLog(x)
            case .exp: Expression.exponential(x)
            case .round: x.rounded()
            }
        }
    }

    @inline(__always) static func naturalLog(_ x: Double) -> Double { log(x) }
    @inline(__always) static func exponential(_ x: Double) -> Double { exp(x) }

    enum Comparison {
        case less, lessOrEqual, greater, greaterOrEqual, equal, notEqual

        init(_ op: BinaryOperator) {
            switch op {
            case .less: self = .less
            case .lessOrEqual: self = .lessOrEqual
            case .greater: self = .greater
            case .greaterOrEqual: self = .greaterOrEqual
            case .equal: self = .equal
            case .notEqual: self = .notEqual
            default: preconditionFailure("not a comparison: \(op)")
            }
        }

        /// The comparison with its operands swapped: `c < x` is `x > c`.
        var flipped: Comparison {
            switch self {
            case .less: .greater
            case .lessOrEqual: .greaterOrEqual
            case .greater: .less
            case .greaterOrEqual: .lessOrEqual
            case .equal, .notEqual: self
            }
        }

        @inline(__always)
        func apply(_ a: Double, _ b: Double) -> Bool {
            switch self {
            case .less: a < b
            case .lessOrEqual: a <= b
            case .greater: a > b
            case .greaterOrEqual: a >= b
            case .equal: a == b
            case .notEqual: a != b
            }
        }
    }

    /// A name the program reads, and whether it is the `timestamp` identifier.
    struct Column {
        var slot: Int
        var timestamp: Bool
    }

    /// One step of a program; the first register is where it writes.
    enum Instruction {
        /// A numeric column (or the timestamps, for `timestamp` where no column has the name).
        case load(Int, column: Int, timestamp: Bool)
        case constant(Int, Double)
        case truth(Int, Bool)
        case unary(Unary, Int)
        case combine(Arithmetic, Int, Int)
        case combineConstant(Arithmetic, Int, Double, constantFirst: Bool)
        case coalesce(Int, Int)
        case coalesceConstant(Int, Double)
        case compare(Comparison, Int, Int)
        case compareConstant(Comparison, Int, Double)
        case and(Int, Int)
        case or(Int, Int)
        case not(Int)
        case booleansEqual(Int, Int, negated: Bool)
        /// A string or tag column against a literal (`program.literals`).
        case stringEquals(Int, column: Int, literal: Int, negated: Bool)
        /// Two columns, as numbers or as strings, whichever they both are in the frame; uses the
        /// register after the first too.
        case columnsEqual(Int, Column, Column, negated: Bool)
    }

    /// A compiled expression; its value ends in register 0. Immutable, so shared freely.
    final class Program: Sendable {
        let instructions: [Instruction]
        let registerCount: Int
        /// The column names instructions refer to by index.
        let names: [String]
        let literals: [String]
        let resultType: ResultType

        init(instructions: [Instruction], registerCount: Int, names: [String], literals: [String], resultType: ResultType) {
            self.instructions = instructions
            self.registerCount = registerCount
            self.names = names
            self.literals = literals
            self.resultType = resultType
        }

        func numbers(in frame: TimeseriesFrame) -> NumericColumn {
            let rows = frame.rowCount
            guard rows > 0, resultType != .string else { return NumericColumn(repeating: nil, count: rows) }
            return Machine.with(rows: rows, registers: registerCount) { machine in
                run(frame, machine)
                let (values, flags) = (machine.values, machine.flags)
                let boolean = resultType == .boolean
                var column = NumericColumn(values: [Double](unsafeUninitializedCapacity: rows) { buffer, count in
                    if boolean {
                        for row in 0..<rows { buffer[row] = Double(flags[row]) }
                    } else {
                        buffer.baseAddress!.initialize(from: values, count: rows)
                    }
                    count = rows
                })
                var allPresent: UInt8 = 1
                for row in 0..<rows { allPresent &= flags[row] }
                if !boolean && allPresent == 0 {
                    // Setting nil also zeroes the cell's value, as NumericColumn keeps missing cells.
                    for row in 0..<rows where flags[row] == 0 { column[row] = nil }
                }
                return column
            }
        }

        func mask(in frame: TimeseriesFrame) -> RowMask {
            let rows = frame.rowCount
            guard rows > 0, resultType != .string else { return RowMask(Array(repeating: false, count: rows)) }
            return Machine.with(rows: rows, registers: registerCount) { machine in
                run(frame, machine)
                let (values, flags) = (machine.values, machine.flags)
                let number = resultType == .number
                return RowMask([Bool](unsafeUninitializedCapacity: rows) { buffer, count in
                    if number {
                        for row in 0..<rows { buffer[row] = flags[row] != 0 && values[row] != 0 }
                    } else {
                        // A boolean register's flags are 0 or 1, as a Bool's byte.
                        UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: flags, byteCount: rows)
                    }
                    count = rows
                })
            }
        }

        /// Runs the instructions over `frame`. (No closure here: one would capture a copy of
        /// the frame.)
        private func run(_ frame: TimeseriesFrame, _ machine: Machine) {
            for index in instructions.indices { execute(instructions[index], machine, frame) }
        }

        // MARK: Instructions

        @inline(__always)
        private func execute(_ instruction: Instruction, _ machine: Machine, _ frame: TimeseriesFrame) {
            let rows = machine.rows
            switch instruction {
            case .load(let register, let column, let timestamp):
                load(names[column], timestamp: timestamp, into: register, machine, frame)
            case .constant(let register, let value):
                machine.values(register).update(repeating: value, count: rows)
                machine.flags(register).update(repeating: 1, count: rows)
            case .truth(let register, let value):
                machine.flags(register).update(repeating: value ? 1 : 0, count: rows)
            case .unary(let op, let register):
                let v = machine.values(register)
                switch op {
                case .negate: Machine.map(v, rows) { -$0 }
                case .abs: Machine.map(v, rows) { Swift.abs($0) }
                case .sqrt: Machine.map(v, rows) { $0.squareRoot() }
                case .log: Machine.map(v, rows) { Unary.log.apply($0) }
                case .exp: Machine.map(v, rows) { Unary.exp.apply($0) }
                case .round: Machine.map(v, rows) { $0.rounded() }
                }
            case .combine(let op, let target, let source):
                let (a, b) = (machine.values(target), machine.values(source))
                Machine.both(machine.flags(target), machine.flags(source), rows)
                switch op {
                case .add: Machine.zip(a, b, rows) { $0 + $1 }
                case .subtract: Machine.zip(a, b, rows) { $0 - $1 }
                case .multiply: Machine.zip(a, b, rows) { $0 * $1 }
                case .divide: Machine.zip(a, b, rows) { $0 / $1 }
                case .remainder: Machine.zip(a, b, rows) { $0.truncatingRemainder(dividingBy: $1) }
                case .power: Machine.zip(a, b, rows) { Arithmetic.power.apply($0, $1) }
                case .minimum: Machine.zip(a, b, rows) { Double.minimum($0, $1) }
                case .maximum: Machine.zip(a, b, rows) { Double.maximum($0, $1) }
                case .round: Machine.zip(a, b, rows) { Arithmetic.round($0, digits: $1) }
                }
            case .combineConstant(let op, let register, let c, let first):
                let a = machine.values(register)
                switch op {
                case .add: Machine.zip(a, c, first, rows) { $0 + $1 }
                case .subtract: Machine.zip(a, c, first, rows) { $0 - $1 }
                case .multiply: Machine.zip(a, c, first, rows) { $0 * $1 }
                case .divide: Machine.zip(a, c, first, rows) { $0 / $1 }
                case .remainder: Machine.zip(a, c, first, rows) { $0.truncatingRemainder(dividingBy: $1) }
                case .power: Machine.zip(a, c, first, rows) { Arithmetic.power.apply($0, $1) }
                case .minimum: Machine.zip(a, c, first, rows) { Double.minimum($0, $1) }
                case .maximum: Machine.zip(a, c, first, rows) { Double.maximum($0, $1) }
                case .round: Machine.zip(a, c, first, rows) { Arithmetic.round($0, digits: $1) }
                }
            case .coalesce(let target, let source):
                let (a, b) = (machine.values(target), machine.values(source))
                let (fa, fb) = (machine.flags(target), machine.flags(source))
                for row in 0..<rows {
                    a[row] = fa[row] != 0 ? a[row] : b[row]
                    fa[row] |= fb[row]
                }
            case .coalesceConstant(let register, let c):
                let (a, fa) = (machine.values(register), machine.flags(register))
                for row in 0..<rows {
                    a[row] = fa[row] != 0 ? a[row] : c
                    fa[row] = 1
                }
            case .compare(let comparison, let target, let source):
                let (a, b) = (machine.values(target), machine.values(source))
                let (fa, fb) = (machine.flags(target), machine.flags(source))
                switch comparison {
                case .less: Machine.test(a, fa, b, fb, rows) { $0 < $1 }
                case .lessOrEqual: Machine.test(a, fa, b, fb, rows) { $0 <= $1 }
                case .greater: Machine.test(a, fa, b, fb, rows) { $0 > $1 }
                case .greaterOrEqual: Machine.test(a, fa, b, fb, rows) { $0 >= $1 }
                case .equal: Machine.test(a, fa, b, fb, rows) { $0 == $1 }
                case .notEqual: Machine.test(a, fa, b, fb, rows) { $0 != $1 }
                }
            case .compareConstant(let comparison, let register, let c):
                let (a, fa) = (machine.values(register), machine.flags(register))
                switch comparison {
                case .less: Machine.test(a, fa, rows) { $0 < c }
                case .lessOrEqual: Machine.test(a, fa, rows) { $0 <= c }
                case .greater: Machine.test(a, fa, rows) { $0 > c }
                case .greaterOrEqual: Machine.test(a, fa, rows) { $0 >= c }
                case .equal: Machine.test(a, fa, rows) { $0 == c }
                case .notEqual: Machine.test(a, fa, rows) { $0 != c }
                }
            case .and(let target, let source):
                Machine.both(machine.flags(target), machine.flags(source), rows)
            case .or(let target, let source):
                let (fa, fb) = (machine.flags(target), machine.flags(source))
                for row in 0..<rows { fa[row] |= fb[row] }
            case .not(let register):
                let fa = machine.flags(register)
                for row in 0..<rows { fa[row] ^= 1 }
            case .booleansEqual(let target, let source, let negated):
                let (fa, fb) = (machine.flags(target), machine.flags(source))
                let flip: UInt8 = negated ? 1 : 0
                for row in 0..<rows { fa[row] = (fa[row] ^ fb[row] ^ 1) ^ flip }
            case .stringEquals(let register, let column, let literal, let negated):
                let flags = machine.flags(register)
                guard case .strings(let cells) = kind(of: Column(slot: column, timestamp: false), frame) else {
                    flags.update(repeating: 0, count: rows)
                    return
                }
                let text = literals[literal]
                let count = Swift.min(rows, cells.count)
                for row in 0..<count {
                    if let cell = cells[row] { flags[row] = (cell == text) != negated ? 1 : 0 } else { flags[row] = 0 }
                }
                if count < rows { (flags + count).update(repeating: 0, count: rows - count) }
            case .columnsEqual(let register, let a, let b, let negated):
                let flags = machine.flags(register)
                switch (kind(of: a, frame), kind(of: b, frame)) {
                case (.numbers, .numbers):
                    load(names[a.slot], timestamp: a.timestamp, into: register, machine, frame)
                    load(names[b.slot], timestamp: b.timestamp, into: register + 1, machine, frame)
                    let (x, fx) = (machine.values(register), machine.flags(register))
                    let (y, fy) = (machine.values(register + 1), machine.flags(register + 1))
                    Machine.test(x, fx, y, fy, rows) { ($0 == $1) != negated }
                case (.strings(let left), .strings(let right)):
                    for row in 0..<rows {
                        if row < left.count, row < right.count, let x = left[row], let y = right[row] {
                            flags[row] = (x == y) != negated ? 1 : 0
                        } else {
                            flags[row] = 0
                        }
                    }
                default:
                    flags.update(repeating: 0, count: rows)
                }
            }
        }

        /// What a name is in `frame`: a numeric column, else a string column, else a tag; the
        /// `timestamp` identifier is the timestamps when no column has that name.
        private enum Kind {
            case numbers
            case strings([String?])
            case absent
        }

        private func kind(of column: Column, _ frame: TimeseriesFrame) -> Kind {
            let name = names[column.slot]
            if frame.numeric[name] != nil { return .numbers }
            if let cells = frame.strings[name] ?? frame.tags[name] { return .strings(cells) }
            if column.timestamp && frame.binary[name] == nil { return .numbers }
            return .absent
        }

        /// A numeric column into `register`: missing cells where the frame has none of that name
        /// (or a string, tag or binary column), the timestamps for the `timestamp` identifier
        /// when no column has the name.
        private func load(_ name: String, timestamp: Bool, into register: Int, _ machine: Machine, _ frame: TimeseriesFrame) {
            let (rows, values, flags) = (machine.rows, machine.values(register), machine.flags(register))
            if let column = frame.numeric[name] {
                let count = Swift.min(rows, column.count)
                column.values.withUnsafeBufferPointer { source in
                    if count > 0 { values.update(from: source.baseAddress!, count: count) }
                }
                column.present.withUnsafeBufferPointer { source in
                    // A Bool's byte is 0 or 1, as the flags are.
                    if count > 0 { UnsafeMutableRawPointer(flags).copyMemory(from: source.baseAddress!, byteCount: count) }
                }
                if count < rows {
                    (values + count).update(repeating: 0, count: rows - count)
                    (flags + count).update(repeating: 0, count: rows - count)
                }
            } else if timestamp && frame.strings[name] == nil && frame.tags[name] == nil && frame.binary[name] == nil {
                frame.timestamps.withUnsafeBufferPointer { source in
                    for row in 0..<rows { values[row] = Double(source[row]) }
                }
                flags.update(repeating: 1, count: rows)
            } else {
                values.update(repeating: 0, count: rows)
                flags.update(repeating: 0, count: rows)
            }
        }
    }

    /// The registers of one evaluation, and the loops
    /// of the instructions.
    struct Machine {
        let values: UnsafeMutablePointer<Double>
        let flags: UnsafeMutablePointer<UInt8>
        let rows: Int

        /// Calls `body` with registers of `rows` rows (at least one register), on the stack when
        /// they are small (no allocation per evaluation); uninitialized, as every instruction
        /// writes its register before reading it.
        static func with<Result>(rows: Int, registers: Int, _ body: (Machine) -> Result) -> Result {
            let count = Swift.max(1, registers) * rows
            return withUnsafeTemporaryAllocation(byteCount: count * 9, alignment: MemoryLayout<Double>.alignment) { raw in
                body(Machine(raw.baseAddress!, count: count, rows: rows))
            }
        }

        private init(_ raw: UnsafeMutableRawPointer, count: Int, rows: Int) {
            values = raw.bindMemory(to: Double.self, capacity: count)
            flags = (raw + count * 8).bindMemory(to: UInt8.self, capacity: count)
            self.rows = rows
        }

        @inline(__always) func values(_ register: Int) -> UnsafeMutablePointer<Double> { values + register * rows }
        @inline(__always) func flags(_ register: Int) -> UnsafeMutablePointer<UInt8> { flags + register * rows }

        @inline(__always)
        static func map(_ a: UnsafeMutablePointer<Double>, _ rows: Int, _ f: (Double) -> Double) {
            for row in 0..<rows { a[row] = f(a[row]) }
        }

        @inline(__always)
        static func zip(_ a: UnsafeMutablePointer<Double>, _ b: UnsafeMutablePointer<Double>, _ rows: Int, _ f: (Double, Double) -> Double) {
            for row in 0..<rows { a[row] = f(a[row], b[row]) }
        }

        /// `a op c`, or `c op a` when the constant comes first.
        @inline(__always)
        static func zip(_ a: UnsafeMutablePointer<Double>, _ c: Double, _ first: Bool, _ rows: Int, _ f: (Double, Double) -> Double) {
            if first {
                for row in 0..<rows { a[row] = f(c, a[row]) }
            } else {
                for row in 0..<rows { a[row] = f(a[row], c) }
            }
        }

        /// Flags of `a` and `b` both set.
        @inline(__always)
        static func both(_ a: UnsafeMutablePointer<UInt8>, _ b: UnsafeMutablePointer<UInt8>, _ rows: Int) {
            for row in 0..<rows { a[row] &= b[row] }
        }

        /// Present in both, and the test holds: into the flags of `a`.
        @inline(__always)
        static func test(
            _ a: UnsafeMutablePointer<Double>, _ fa: UnsafeMutablePointer<UInt8>, _ b: UnsafeMutablePointer<Double>,
            _ fb: UnsafeMutablePointer<UInt8>, _ rows: Int, _ f: (Double, Double) -> Bool
        ) {
            for row in 0..<rows { fa[row] = fa[row] & fb[row] & (f(a[row], b[row]) ? 1 : 0) }
        }

        /// Present, and the test holds.
        @inline(__always)
        static func test(_ a: UnsafeMutablePointer<Double>, _ fa: UnsafeMutablePointer<UInt8>, _ rows: Int, _ f: (Double) -> Bool) {
            for row in 0..<rows { fa[row] = fa[row] & (f(a[row]) ? 1 : 0) }
        }
    }
}
