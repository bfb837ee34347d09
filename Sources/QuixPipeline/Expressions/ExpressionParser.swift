// The syntax of expressions: tokens, the tree, and a recursive-descent parser with one function
// per precedence level (or < and < not < comparison < + - < * / % < unary minus < primary).

extension Expression {
    /// A token of an expression's source.
    struct Token {
        enum Kind: Equatable {
            case number(Double)
            case string(String)
            /// An identifier, or (quoted) a name in backticks.
            case name(String, quoted: Bool)
            /// An operator or punctuation: `( ) , + - * / % < <= > >= == != ! && ||`.
            case symbol(String)
            case end
        }

        var kind: Kind
        /// The character offset of its first character.
        var offset: Int
        /// Its source text.
        var text: String

        /// How an error message names it.
        var described: String {
            switch kind {
            case .end: "the end of the expression"
            case .string: "the string \(text)"
            default: "\"\(text)\""
            }
        }

        func isSymbol(_ symbol: String) -> Bool { kind == .symbol(symbol) }

        /// An unquoted identifier equal to `keyword`.
        func isKeyword(_ keyword: String) -> Bool { kind == .name(keyword, quoted: false) }
    }

    /// A node of the parsed tree, with where it starts in the source.
    struct Node {
        indirect enum Kind {
            case number(Double)
            case string(String)
            case boolean(Bool)
            /// A column; `timestamp` is the unquoted identifier `timestamp`, which falls back to the
            /// row's timestamp when the frame has no column of that name.
            case column(String, timestamp: Bool)
            case negate(Node)
            case not(Node)
            case binary(BinaryOperator, Node, Node)
            case call(Function, [Node])
        }

        var kind: Kind
        /// Where the node's text starts (its opening parenthesis, if it has one).
        var offset: Int
        /// Where its operator or function name is, and how it was written (`and` or `&&`).
        var operatorOffset: Int
        var operatorText: String

        init(_ kind: Kind, at offset: Int, operator operatorOffset: Int? = nil, _ operatorText: String = "") {
            self.kind = kind
            self.offset = offset
            self.operatorOffset = operatorOffset ?? offset
            self.operatorText = operatorText
        }
    }

    enum BinaryOperator {
        case add, subtract, multiply, divide, remainder
        case less, lessOrEqual, greater, greaterOrEqual, equal, notEqual
        case and, or

        var isArithmetic: Bool { [.add, .subtract, .multiply, .divide, .remainder].contains(self) }
        var isEquality: Bool { self == .equal || self == .notEqual }
        var isOrdering: Bool { [.less, .lessOrEqual, .greater, .greaterOrEqual].contains(self) }
    }

    /// The functions an expression can call.
    enum Function: String, CaseIterable {
        case abs, coalesce, exp, log, max, min, pow, round, sqrt

        /// How many arguments it takes (`Int.max` as the upper bound: any number from the lower).
        var arity: ClosedRange<Int> {
            switch self {
            case .abs, .exp, .log, .sqrt: 1...1
            case .pow: 2...2
            case .round: 1...2
            case .min, .max, .coalesce: 2...Int.max
            }
        }

        var arityDescription: String {
            switch (arity.lowerBound, arity.upperBound) {
            case (1, 1): "1 argument"
            case (let low, .max): "at least \(low) arguments"
            case (let low, let high) where low == high: "\(low) arguments"
            case (let low, let high): "\(low) or \(high) arguments"
            }
        }

        /// Names people write for these functions in other languages.
        static let aliases: [String: Function] = ["ln": .log, "power": .pow, "ifnull": .coalesce, "nvl": .coalesce, "fabs": .abs]
    }

    /// Splits a source into tokens; the last is `.end`, at `source.count`.
    static func tokenize(_ source: String) throws(ExpressionError) -> [Token] {
        let characters = Array(source)
        var tokens: [Token] = []
        var index = 0

        func fail(_ message: String, _ offset: Int) -> ExpressionError {
            ExpressionError(message: message, offset: offset, source: source)
        }
        func text(_ start: Int) -> String { String(characters[start..<index]) }
        func isDigit(_ index: Int) -> Bool { index < characters.count && ("0"..."9").contains(characters[index]) }
        func isNameStart(_ character: Character) -> Bool {
            character == "_" || ("a"..."z").contains(character) || ("A"..."Z").contains(character)
        }
        func isNamePart(_ character: Character) -> Bool { isNameStart(character) || ("0"..."9").contains(character) || character == "." }

        while index < characters.count {
            let character = characters[index]
            let start = index
            if character.isWhitespace {
                index += 1
            } else if isDigit(index) || (character == "." && isDigit(index + 1)) {
                while isDigit(index) { index += 1 }
                if index < characters.count && characters[index] == "." {
                    index += 1
                    while isDigit(index) { index += 1 }
                }
                if index < characters.count && (characters[index] == "e" || characters[index] == "E") {
                    index += 1
                    if index < characters.count && (characters[index] == "+" || characters[index] == "-") { index += 1 }
                    guard isDigit(index) else {
                        while index < characters.count && isNamePart(characters[index]) { index += 1 }
                        throw fail("malformed number \"\(text(start))\"", start)
                    }
                    while isDigit(index) { index += 1 }
                }
                guard let value = Double(text(start)) else { throw fail("malformed number \"\(text(start))\"", start) }
                tokens.append(Token(kind: .number(value), offset: start, text: text(start)))
            } else if isNameStart(character) {
                while index < characters.count && isNamePart(characters[index]) { index += 1 }
                tokens.append(Token(kind: .name(text(start), quoted: false), offset: start, text: text(start)))
            } else if character == "`" {
                index += 1
                while index < characters.count && characters[index] != "`" { index += 1 }
                guard index < characters.count else { throw fail("unterminated name: no closing \"`\"", start) }
                let name = String(characters[(start + 1)..<index])
                index += 1
                guard !name.isEmpty else { throw fail("empty name \"``\"", start) }
                tokens.append(Token(kind: .name(name, quoted: true), offset: start, text: text(start)))
            } else if character == "'" || character == "\"" {
                index += 1
                var value = ""
                while index < characters.count && characters[index] != character {
                    if characters[index] == "\\" && index + 1 < characters.count { index += 1 }
                    value.append(characters[index])
                    index += 1
                }
                guard index < characters.count else { throw fail("unterminated string: no closing \(character)", start) }
                index += 1
                tokens.append(Token(kind: .string(value), offset: start, text: text(start)))
            } else {
                let pair = index + 1 < characters.count ? String(characters[index...(index + 1)]) : ""
                if ["<=", ">=", "==", "!=", "&&", "||"].contains(pair) {
                    index += 2
                } else if "()+-*/%<>!,".contains(character) {
                    index += 1
                } else {
                    let hints: [Character: String] = ["=": "==", "&": "&&", "|": "||"]
                    let hint = hints[character].map { "; did you mean \"\($0)\"?" } ?? ""
                    throw fail("unexpected character \"\(character)\"\(hint)", start)
                }
                tokens.append(Token(kind: .symbol(text(start)), offset: start, text: text(start)))
            }
        }
        tokens.append(Token(kind: .end, offset: characters.count, text: ""))
        return tokens
    }

    /// Builds the tree of an expression from its tokens, and collects the column names it reads.
    struct Parser {
        let source: String
        private let tokens: [Token]
        private var index = 0
        private var depth = 0
        /// Column names in order of first appearance.
        private(set) var columns: [String] = []

        /// Nesting deeper than this is refused rather than risking the stack.
        static let maximumDepth = 200

        init(_ source: String) throws(ExpressionError) {
            self.source = source
            tokens = try Expression.tokenize(source)
        }

        private var current: Token { tokens[index] }

        private mutating func advance() -> Token {
            defer { if index < tokens.count - 1 { index += 1 } }
            return tokens[index]
        }

        private func fail(_ message: String, at offset: Int) -> ExpressionError {
            ExpressionError(message: message, offset: offset, source: source)
        }

        /// The whole expression.
        mutating func parse() throws(ExpressionError) -> Node {
            if current.kind == .end { throw fail("empty expression", at: 0) }
            let node = try parseOr()
            if current.kind != .end {
                if current.isSymbol(")") { throw fail("unmatched \")\"", at: current.offset) }
                throw fail("expected an operator, found \(current.described)\(keywordHint(current))", at: current.offset)
            }
            return node
        }

        /// `; did you mean "and"?` for `AND`.
        private func keywordHint(_ token: Token) -> String {
            guard case .name(let name, quoted: false) = token.kind, ["and", "or", "not"].contains(name.lowercased()) else { return "" }
            return "; did you mean \"\(name.lowercased())\"?"
        }

        private mutating func parseOr() throws(ExpressionError) -> Node {
            var node = try parseAnd()
            while current.isKeyword("or") || current.isSymbol("||") {
                let op = advance()
                let rhs = try parseAnd()
                node = Node(.binary(.or, node, rhs), at: node.offset, operator: op.offset, op.text)
            }
            return node
        }

        private mutating func parseAnd() throws(ExpressionError) -> Node {
            var node = try parseNot()
            while current.isKeyword("and") || current.isSymbol("&&") {
                let op = advance()
                let rhs = try parseNot()
                node = Node(.binary(.and, node, rhs), at: node.offset, operator: op.offset, op.text)
            }
            return node
        }

        private mutating func parseNot() throws(ExpressionError) -> Node {
            guard current.isKeyword("not") || current.isSymbol("!") else { return try parseComparison() }
            let op = advance()
            try enter(op)
            defer { depth -= 1 }
            return Node(.not(try parseNot()), at: op.offset, operator: op.offset, op.text)
        }

        private static let comparisons: [String: BinaryOperator] = [
            "<": .less, "<=": .lessOrEqual, ">": .greater, ">=": .greaterOrEqual, "==": .equal, "!=": .notEqual,
        ]

        private mutating func parseComparison() throws(ExpressionError) -> Node {
            let lhs = try parseAdditive()
            guard case .symbol(let symbol) = current.kind, let comparison = Self.comparisons[symbol] else { return lhs }
            let op = advance()
            let rhs = try parseAdditive()
            if case .symbol(let next) = current.kind, Self.comparisons[next] != nil {
                throw fail("comparisons cannot be chained; join them with \"and\"", at: current.offset)
            }
            return Node(.binary(comparison, lhs, rhs), at: lhs.offset, operator: op.offset, op.text)
        }

        private mutating func parseAdditive() throws(ExpressionError) -> Node {
            var node = try parseMultiplicative()
            while current.isSymbol("+") || current.isSymbol("-") {
                let op = advance()
                let rhs = try parseMultiplicative()
                node = Node(.binary(op.text == "+" ? .add : .subtract, node, rhs), at: node.offset, operator: op.offset, op.text)
            }
            return node
        }

        private mutating func parseMultiplicative() throws(ExpressionError) -> Node {
            var node = try parseUnary()
            while current.isSymbol("*") || current.isSymbol("/") || current.isSymbol("%") {
                let op = advance()
                let rhs = try parseUnary()
                let kind: BinaryOperator = op.text == "*" ? .multiply : op.text == "/" ? .divide : .remainder
                node = Node(.binary(kind, node, rhs), at: node.offset, operator: op.offset, op.text)
            }
            return node
        }

        private mutating func parseUnary() throws(ExpressionError) -> Node {
            guard current.isSymbol("-") else { return try parsePrimary() }
            let op = advance()
            try enter(op)
            defer { depth -= 1 }
            return Node(.negate(try parseUnary()), at: op.offset, operator: op.offset, op.text)
        }

        /// Counts a level of nesting at `token`.
        private mutating func enter(_ token: Token) throws(ExpressionError) {
            depth += 1
            if depth > Self.maximumDepth { throw fail("expression nested too deeply (more than \(Self.maximumDepth) levels)", at: token.offset) }
        }

        private mutating func parsePrimary() throws(ExpressionError) -> Node {
            let token = current
            switch token.kind {
            case .number(let value):
                _ = advance()
                return Node(.number(value), at: token.offset)
            case .string(let value):
                _ = advance()
                return Node(.string(value), at: token.offset)
            case .name(let name, quoted: false) where name == "true" || name == "false":
                _ = advance()
                return Node(.boolean(name == "true"), at: token.offset)
            case .name(let name, quoted: false) where ["and", "or", "not"].contains(name):
                throw fail("expected a value, found \(token.described)", at: token.offset)
            case .name(let name, let quoted):
                _ = advance()
                if !quoted && current.isSymbol("(") { return try parseCall(name, at: token) }
                if !columns.contains(name) { columns.append(name) }
                return Node(.column(name, timestamp: !quoted && name == "timestamp"), at: token.offset)
            case .symbol("("):
                _ = advance()
                try enter(token)
                defer { depth -= 1 }
                var node = try parseOr()
                if !current.isSymbol(")") {
                    if current.kind == .end { throw fail("unclosed \"(\"", at: token.offset) }
                    throw fail("expected an operator or \")\", found \(current.described)\(keywordHint(current))", at: current.offset)
                }
                _ = advance()
                node.offset = token.offset
                return node
            case .end:
                throw fail("unexpected end of expression", at: token.offset)
            case .symbol:
                throw fail("expected a value, found \(token.described)", at: token.offset)
            }
        }

        /// `name(arguments)`, the current token being the parenthesis.
        private mutating func parseCall(_ name: String, at nameToken: Token) throws(ExpressionError) -> Node {
            guard let function = Function(rawValue: name) else {
                throw fail("unknown function \"\(name)\"\(Self.suggestion(for: name))", at: nameToken.offset)
            }
            let parenthesis = advance()
            try enter(parenthesis)
            defer { depth -= 1 }
            var arguments: [Node] = []
            if current.isSymbol(")") {
                _ = advance()
            } else {
                while true {
                    arguments.append(try parseOr())
                    if current.isSymbol(",") {
                        _ = advance()
                    } else if current.isSymbol(")") {
                        _ = advance()
                        break
                    } else if current.kind == .end {
                        throw fail("unclosed \"(\"", at: parenthesis.offset)
                    } else {
                        throw fail("expected \",\" or \")\", found \(current.described)\(keywordHint(current))", at: current.offset)
                    }
                }
            }
            guard function.arity.contains(arguments.count) else {
                throw fail("\"\(name)\" takes \(function.arityDescription), found \(arguments.count)", at: nameToken.offset)
            }
            return Node(.call(function, arguments), at: nameToken.offset, operator: nameToken.offset, name)
        }

        /// `; did you mean "sqrt"?` for a near miss, else the list of functions.
        static func suggestion(for name: String) -> String {
            let lowered = name.lowercased()
            if let alias = Function.aliases[lowered] { return "; did you mean \"\(alias.rawValue)\"?" }
            let names = Function.allCases.map(\.rawValue)
            let scored = names.map { ($0, editDistance(lowered, $0)) }
            if let best = scored.min(by: { $0.1 < $1.1 }), best.1 <= 2, best.1 <= max(1, lowered.count / 2) {
                return "; did you mean \"\(best.0)\"?"
            }
            return "; the functions are \(names.joined(separator: ", "))"
        }

        /// Edits (insertions, deletions, substitutions, swaps of neighbours) from `a` to `b`.
        static func editDistance(_ a: String, _ b: String) -> Int {
            let a = Array(a), b = Array(b)
            if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
            var table = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
            for i in 0...a.count { table[i][0] = i }
            for j in 0...b.count { table[0][j] = j }
            for i in 1...a.count {
                for j in 1...b.count {
                    let cost = a[i - 1] == b[j - 1] ? 0 : 1
                    table[i][j] = Swift.min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                    if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                        table[i][j] = Swift.min(table[i][j], table[i - 2][j - 2] + 1)
                    }
                }
            }
            return table[a.count][b.count]
        }
    }
}
