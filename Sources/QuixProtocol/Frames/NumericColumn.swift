/// A column of doubles with missing cells, stored as two flat arrays (values and presence) so
/// that arithmetic runs over contiguous memory without boxing a cell.
public struct NumericColumn: Sendable, Hashable, RandomAccessCollection, ExpressibleByArrayLiteral {
    /// Cell values; a missing cell holds 0.
    public private(set) var values: [Double]
    /// Whether each cell has a value.
    public private(set) var present: [Bool]

    public init(_ cells: some Sequence<Double?>) {
        values = []
        present = []
        for cell in cells {
            values.append(cell ?? 0)
            present.append(cell != nil)
        }
    }

    public init(values: [Double]) {
        self.values = values
        present = Self.allPresent(count: values.count)
    }

    /// Values and presence as they are; both have one entry per cell.
    package init(values: [Double], present: [Bool]) {
        precondition(values.count == present.count, "\(values.count) values and \(present.count) presence flags")
        self.values = values
        self.present = present
    }

    public init(repeating value: Double?, count: Int) {
        values = Array(repeating: value ?? 0, count: count)
        present = Array(repeating: value != nil, count: count)
    }

    public init(arrayLiteral cells: Double?...) { self.init(cells) }

    /// `count` presence flags, all true. Up to 128 cells the array is one shared per count
    /// (copied on write): a column whose cells all have values, the usual case, then costs one
    /// allocation, not two.
    package static func allPresent(count: Int) -> [Bool] {
        count < sharedAllPresent.count ? sharedAllPresent[count] : Array(repeating: true, count: count)
    }

    private static let sharedAllPresent: [[Bool]] = (0...128).map { Array(repeating: true, count: $0) }

    public var startIndex: Int { 0 }
    public var endIndex: Int { values.count }

    public subscript(row: Int) -> Double? {
        get { present[row] ? values[row] : nil }
        set {
            values[row] = newValue ?? 0
            present[row] = newValue != nil
        }
    }

    /// Cells that have a value.
    public var presentCount: Int { present.reduce(0) { $0 + ($1 ? 1 : 0) } }

    // MARK: Aggregates (missing cells are skipped; nil when no cell has a value)

    public func sum() -> Double? { presentCount == 0 ? nil : zip(values, present).reduce(0) { $0 + ($1.1 ? $1.0 : 0) } }
    public func mean() -> Double? { sum().map { $0 / Double(presentCount) } }
    public func min() -> Double? { zip(values, present).lazy.filter(\.1).map(\.0).min() }
    public func max() -> Double? { zip(values, present).lazy.filter(\.1).map(\.0).max() }

    public func abs() -> NumericColumn { map { Swift.abs($0) } }

    /// Applies `transform` to every present cell.
    public func map(_ transform: (Double) -> Double) -> NumericColumn {
        var result = self
        for index in values.indices where present[index] { result.values[index] = transform(values[index]) }
        return result
    }

    /// Combines two columns cell by cell; a cell is missing when it is missing in either.
    public func combined(with other: NumericColumn, _ operation: (Double, Double) -> Double) -> NumericColumn {
        precondition(count == other.count, "columns of \(count) and \(other.count) rows cannot be combined")
        var result = NumericColumn(repeating: nil, count: count)
        for index in values.indices where present[index] && other.present[index] {
            result.values[index] = operation(values[index], other.values[index])
            result.present[index] = true
        }
        return result
    }

    /// Rows where the predicate holds for a present cell (a missing cell never matches).
    public func mask(_ predicate: (Double) -> Bool) -> RowMask {
        RowMask(values.indices.map { present[$0] && predicate(values[$0]) })
    }

    public static func + (a: NumericColumn, b: NumericColumn) -> NumericColumn { a.combined(with: b, +) }
    public static func - (a: NumericColumn, b: NumericColumn) -> NumericColumn { a.combined(with: b, -) }
    public static func * (a: NumericColumn, b: NumericColumn) -> NumericColumn { a.combined(with: b, *) }
    public static func / (a: NumericColumn, b: NumericColumn) -> NumericColumn { a.combined(with: b, /) }
    public static func + (a: NumericColumn, b: Double) -> NumericColumn { a.map { $0 + b } }
    public static func - (a: NumericColumn, b: Double) -> NumericColumn { a.map { $0 - b } }
    public static func * (a: NumericColumn, b: Double) -> NumericColumn { a.map { $0 * b } }
    public static func / (a: NumericColumn, b: Double) -> NumericColumn { a.map { $0 / b } }

    public static func > (a: NumericColumn, b: Double) -> RowMask { a.mask { $0 > b } }
    public static func >= (a: NumericColumn, b: Double) -> RowMask { a.mask { $0 >= b } }
    public static func < (a: NumericColumn, b: Double) -> RowMask { a.mask { $0 < b } }
    public static func <= (a: NumericColumn, b: Double) -> RowMask { a.mask { $0 <= b } }
    public static func == (a: NumericColumn, b: Double) -> RowMask { a.mask { $0 == b } }
}

/// Which rows to keep: the result of a comparison, combined with `&&`, `||` and `!`.
public struct RowMask: Sendable, Hashable {
    public var rows: [Bool]

    public init(_ rows: [Bool]) { self.rows = rows }

    public var selectedCount: Int { rows.reduce(0) { $0 + ($1 ? 1 : 0) } }

    public static func && (a: RowMask, b: RowMask) -> RowMask { RowMask(zip(a.rows, b.rows).map { $0 && $1 }) }
    public static func || (a: RowMask, b: RowMask) -> RowMask { RowMask(zip(a.rows, b.rows).map { $0 || $1 }) }
    public static prefix func ! (a: RowMask) -> RowMask { RowMask(a.rows.map { !$0 }) }
}
