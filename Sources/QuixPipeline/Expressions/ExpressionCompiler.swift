// Type checking, constant folding, and translation of the tree into a register program.

extension Expression {
    /// The type of a subexpression while checking: a bare column name is a number, or a string
    /// when compared with a string (which kind it is shows only in a frame).
    enum ValueType: Equatable {
        case number, boolean, string, column

        var isNumeric: Bool { self == .number || self == .column }

        /// As an error message names it.
        var described: String {
            switch self {
            case .number, .column: "a number"
            case .boolean: "a boolean"
            case .string: "a string"
            }
        }
    }

    enum Compiler {
        /// The program computing `tree`, after checking its types.
        static func compile(_ tree: Node, source: String) throws(ExpressionError) -> Program {
            var emitter = Emitter(source: source)
            let resultType: ResultType
            switch try emitter.check(tree) {
            case .number, .column:
                emitter.emitNumber(tree, into: 0)
                resultType = .number
            case .boolean:
                emitter.emitBoolean(tree, into: 0)
                resultType = .boolean
            case .string:
                resultType = .string
            }
            let code = emitter.code
            return Program(
                instructions: code.instructions, registerCount: code.registerCount, names: code.names, literals: code.literals,
                resultType: resultType)
        }
    }

    struct Emitter {
        let source: String
        /// The program so far.
        var code: (instructions: [Instruction], registerCount: Int, names: [String], literals: [String]) = ([], 0, [], [])

        init(source: String) { self.source = source }

        private func fail(_ message: String, at offset: Int) -> ExpressionError {
            ExpressionError(message: message, offset: offset, source: source)
        }

        // MARK: Types

        /// The type of `node`, or the first type error in it.
        func check(_ node: Node) throws(ExpressionError) -> ValueType {
            switch node.kind {
            case .number: return .number
            case .string: return .string
            case .boolean: return .boolean
            case .column: return .column
            case .negate(let operand):
                try expectNumber(operand, "\"-\" needs a number")
                return .number
            case .not(let operand):
                let type = try check(operand)
                guard type == .boolean else {
                    throw fail("\"\(node.operatorText)\" needs a boolean, found \(type.described)", at: operand.offset)
                }
                return .boolean
            case .call(let function, let arguments):
                for (index, argument) in arguments.enumerated() {
                    try expectNumber(argument, "argument \(index + 1) of \"\(function.rawValue)\" must be a number")
                }
                return .number
            case .binary(let op, let lhs, let rhs):
                if op.isArithmetic || op.isOrdering {
                    try expectNumber(lhs, "\"\(node.operatorText)\" needs numbers")
                    try expectNumber(rhs, "\"\(node.operatorText)\" needs numbers")
                    return op.isArithmetic ? .number : .boolean
                }
                if op == .and || op == .or {
                    for operand in [lhs, rhs] {
                        let type = try check(operand)
                        guard type == .boolean else {
                            throw fail("\"\(node.operatorText)\" needs booleans, found \(type.described)", at: operand.offset)
                        }
                    }
                    return .boolean
                }
                // == and !=: numbers with numbers, strings with strings or columns, booleans
                // with booleans.
                let left = try check(lhs), right = try check(rhs)
                let compatible =
                    (left.isNumeric && right.isNumeric) || (left == .string && (right == .string || right == .column))
                    || (right == .string && left == .column) || (left == .boolean && right == .boolean)
                guard compatible else {
                    throw fail("cannot compare \(left.described) with \(right.described)", at: node.operatorOffset)
                }
                return .boolean
            }
        }

        private func expectNumber(_ node: Node, _ message: String) throws(ExpressionError) {
            let type = try check(node)
            guard type.isNumeric else { throw fail("\(message), found \(type.described)", at: node.offset) }
        }

        // MARK: Constants

        /// The value of a numeric subexpression without columns.
        func constantNumber(_ node: Node) -> Double? {
            switch node.kind {
            case .number(let value):
                return value
            case .negate(let operand):
                return constantNumber(operand).map { -$0 }
            case .binary(let op, let lhs, let rhs) where op.isArithmetic:
                guard let a = constantNumber(lhs), let b = constantNumber(rhs) else { return nil }
                return Arithmetic(op).apply(a, b)
            case .call(let function, let arguments):
                var values: [Double] = []
                for argument in arguments {
                    guard let value = constantNumber(argument) else { return nil }
                    values.append(value)
                }
                switch function {
                case .abs, .sqrt, .log, .exp: return Unary(function).apply(values[0])
                case .round where values.count == 1: return Unary.round.apply(values[0])
                case .coalesce: return values[0]
                case .pow, .min, .max, .round: return values.dropFirst().reduce(values[0]) { Arithmetic(function).apply($0, $1) }
                }
            default:
                return nil
            }
        }

        /// The value of a boolean subexpression without columns.
        func constantTruth(_ node: Node) -> Bool? {
            switch node.kind {
            case .boolean(let value):
                return value
            case .not(let operand):
                return constantTruth(operand).map { !$0 }
            case .binary(.and, let lhs, let rhs):
                guard let a = constantTruth(lhs), let b = constantTruth(rhs) else { return nil }
                return a && b
            case .binary(.or, let lhs, let rhs):
                guard let a = constantTruth(lhs), let b = constantTruth(rhs) else { return nil }
                return a || b
            case .binary(let op, let lhs, let rhs) where op.isEquality || op.isOrdering:
                if case .string(let a) = lhs.kind, case .string(let b) = rhs.kind { return (a == b) == (op == .equal) }
                if let a = constantTruth(lhs), let b = constantTruth(rhs) { return (a == b) == (op == .equal) }
                guard let a = constantNumber(lhs), let b = constantNumber(rhs) else { return nil }
                return Comparison(op).apply(a, b)
            default:
                return nil
            }
        }

        // MARK: Code

        /// Counts `register` (and so the ones below it) as needed.
        private mutating func use(_ register: Int) {
            code.registerCount = max(code.registerCount, register + 1)
        }

        private mutating func slot(_ name: String) -> Int {
            if let index = code.names.firstIndex(of: name) { return index }
            code.names.append(name)
            return code.names.count - 1
        }

        /// Code leaving the value of the numeric `node` in `register`, using registers above it
        /// as scratch.
        mutating func emitNumber(_ node: Node, into register: Int) {
            use(register)
            if let value = constantNumber(node) {
                code.instructions.append(.constant(register, value))
                return
            }
            switch node.kind {
            case .column(let name, let timestamp):
                code.instructions.append(.load(register, column: slot(name), timestamp: timestamp))
            case .negate(let operand):
                emitNumber(operand, into: register)
                code.instructions.append(.unary(.negate, register))
            case .binary(let op, let lhs, let rhs):
                emitCombination(Arithmetic(op), lhs, rhs, into: register)
            case .call(let function, let arguments):
                switch function {
                case .abs, .sqrt, .log, .exp:
                    emitNumber(arguments[0], into: register)
                    code.instructions.append(.unary(Unary(function), register))
                case .round where arguments.count == 1:
                    emitNumber(arguments[0], into: register)
                    code.instructions.append(.unary(.round, register))
                case .pow, .round, .min, .max:
                    emitNumber(arguments[0], into: register)
                    for argument in arguments.dropFirst() { emitCombination(Arithmetic(function), nil, argument, into: register) }
                case .coalesce:
                    emitNumber(arguments[0], into: register)
                    for argument in arguments.dropFirst() {
                        if let value = constantNumber(argument) {
                            code.instructions.append(.coalesceConstant(register, value))
                            break  // always present: the rest cannot be reached
                        }
                        emitNumber(argument, into: register + 1)
                        code.instructions.append(.coalesce(register, register + 1))
                    }
                }
            case .number, .string, .boolean, .not:
                preconditionFailure("not a number: \(node.kind)")
            }
        }

        /// `lhs op rhs` into `register`; a nil `lhs` is already there.
        private mutating func emitCombination(_ op: Arithmetic, _ lhs: Node?, _ rhs: Node, into register: Int) {
            if let lhs, let value = constantNumber(lhs) {
                emitNumber(rhs, into: register)
                code.instructions.append(.combineConstant(op, register, value, constantFirst: true))
                return
            }
            if let lhs { emitNumber(lhs, into: register) }
            if let value = constantNumber(rhs) {
                code.instructions.append(.combineConstant(op, register, value, constantFirst: false))
            } else {
                emitNumber(rhs, into: register + 1)
                code.instructions.append(.combine(op, register, register + 1))
            }
        }

        /// Code leaving the truth of the boolean `node` in `register`'s flags.
        mutating func emitBoolean(_ node: Node, into register: Int) {
            use(register)
            if let value = constantTruth(node) {
                code.instructions.append(.truth(register, value))
                return
            }
            switch node.kind {
            case .not(let operand):
                emitBoolean(operand, into: register)
                code.instructions.append(.not(register))
            case .binary(let op, let lhs, let rhs) where op == .and || op == .or:
                emitBoolean(lhs, into: register)
                emitBoolean(rhs, into: register + 1)
                use(register + 1)
                code.instructions.append(op == .and ? .and(register, register + 1) : .or(register, register + 1))
            case .binary(let op, let lhs, let rhs):
                emitComparison(op, lhs, rhs, into: register)
            case .number, .string, .boolean, .column, .negate, .call:
                preconditionFailure("not a boolean: \(node.kind)")
            }
        }

        private mutating func emitComparison(_ op: BinaryOperator, _ lhs: Node, _ rhs: Node, into register: Int) {
            let negated = op == .notEqual
            switch (lhs.kind, rhs.kind) {
            case (.column(let name, _), .string(let text)), (.string(let text), .column(let name, _)):
                code.literals.append(text)
                code.instructions.append(
                    .stringEquals(register, column: slot(name), literal: code.literals.count - 1, negated: negated))
                return
            case (.column(let a, let aTimestamp), .column(let b, let bTimestamp)) where op.isEquality:
                use(register + 1)
                code.instructions.append(
                    .columnsEqual(
                        register, Column(slot: slot(a), timestamp: aTimestamp), Column(slot: slot(b), timestamp: bTimestamp),
                        negated: negated))
                return
            default:
                break
            }
            // Booleans, by their truth.
            if isBoolean(lhs) {
                emitBoolean(lhs, into: register)
                emitBoolean(rhs, into: register + 1)
                use(register + 1)
                code.instructions.append(.booleansEqual(register, register + 1, negated: negated))
                return
            }
            let comparison = Comparison(op)
            if let value = constantNumber(rhs) {
                emitNumber(lhs, into: register)
                code.instructions.append(.compareConstant(comparison, register, value))
            } else if let value = constantNumber(lhs) {
                emitNumber(rhs, into: register)
                code.instructions.append(.compareConstant(comparison.flipped, register, value))
            } else {
                emitNumber(lhs, into: register)
                emitNumber(rhs, into: register + 1)
                code.instructions.append(.compare(comparison, register, register + 1))
            }
        }

        private func isBoolean(_ node: Node) -> Bool {
            (try? check(node)) == .boolean
        }
    }
}
