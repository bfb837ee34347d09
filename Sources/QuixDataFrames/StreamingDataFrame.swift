import AsyncAlgorithms
import QuixPipeline
import QuixStreams
import Synchronization

/// One row of a streaming data frame's result.
public struct DataFrameRow: Sendable, Hashable {
    public let streamID: String
    /// Nanoseconds since the Unix epoch.
    public let timestamp: Int64
    /// The row's numeric cells that have a value.
    public let numbers: [String: Double]
    /// The row's string cells that have a value.
    public let strings: [String: String]
    /// The row's tags that have a value.
    public let tags: [String: String]

    public subscript(_ column: String) -> Double? { numbers[column] }
}

extension TimeseriesFrame {
    /// The rows as one frame, to publish: the seed's `producer_stream.write(row)`. A cell a
    /// row does not have is missing.
    public init(_ rows: [DataFrameRow]) {
        self.init(timestamps: rows.map(\.timestamp))
        func names(_ cells: (DataFrameRow) -> [String: String]) -> [String] { Set(rows.flatMap { cells($0).keys }).sorted() }
        for name in Set(rows.flatMap(\.numbers.keys)).sorted() { self[name] = NumericColumn(rows.map { $0.numbers[name] }) }
        for name in names(\.strings) { setStrings(name, rows.map { $0.strings[name] }) }
        for name in names(\.tags) { setTags(name, rows.map { $0.tags[name] }) }
    }
}

/// A stream's time-series as a data frame, the seed's "What's Next", in Swift:
///
///     consumer.onStreamReceived { stream in
///         var df = stream.dataFrame()
///         df = df[["gForceX", "gForceY", "gForceZ"]]
///         df["gForceTotal"] = df["gForceX"].abs() + df["gForceY"].abs() + df["gForceZ"].abs()
///         df["gForceTotal10m"] = df["gForceTotal"].rolling(.minutes(10)).mean()
///         df = df[df["gForceTotal"] > 2]
///         Task { for try await row in df { print(row.streamID, row["gForceTotal10m"]!) } }
///     }
///
/// The operators build the pipelines' own stages (`select`, `compute`, `rolling`, `filter`), so
/// a data frame and a YAML pipeline run one engine. They run per stream, in the consumer's
/// handler, on each frame as it arrives; `rolling` keeps its window in the stream's state,
/// which the consumer checkpoints with its offsets and restores (give the `TopicConsumer` a
/// `StateOptions`), so a restart goes on where it stopped with no code of yours.
///
/// The stages are fixed when the frame is first iterated; the stream's frames wait for that.
/// A frame's message counts as handled (its offset may commit) once the loop has finished the
/// body for its last row, so what the body writes is covered like any handler's output; a slow
/// loop holds its stream back. A loop that ends early (break, cancellation) lets the stream go
/// on without it.
/// `dataFrame()` takes the stream's frame and closed handlers; iterate one data frame per stream.
public struct StreamingDataFrame: AsyncSequence, Sendable {
    public typealias Element = DataFrameRow

    let source: DataFrameSource
    private(set) var stages: [Pipeline.Stage] = []
    /// Columns computed on the way (rolling aggregates, expressions they read): dropped from the rows.
    private(set) var temporaries: [String] = []

    init(source: DataFrameSource) { self.source = source }

    /// A column, to compute with; set one to add or replace it.
    public subscript(_ column: String) -> DataFrameColumn {
        get { DataFrameColumn(name: column) }
        set { assign(column, newValue) }
    }

    /// Only these columns (and the tags).
    public subscript(_ columns: [String]) -> StreamingDataFrame {
        adding("select", ["columns": .list(columns.map { ConfigValue(.scalar($0), line: 0, column: 0) })])
    }

    /// Only the rows where `condition` holds.
    public subscript(_ condition: DataFrameCondition) -> StreamingDataFrame { filter(condition) }

    /// Only the rows where `condition` holds.
    public func filter(_ condition: DataFrameCondition) -> StreamingDataFrame {
        var frame = self
        frame.addRollings(condition.column.rollings)
        return frame.adding("filter", ["where": .scalar(condition.column.expression)])
    }

    public func makeAsyncIterator() -> Iterator {
        var stages = stages
        if !temporaries.isEmpty {
            stages.append(Self.stage(id: "drop\(stages.count)", "drop", ["columns": .list(temporaries.map { ConfigValue(.scalar($0), line: 0, column: 0) })]))
        }
        source.start(stages)
        return Iterator(rows: source.rows.makeAsyncIterator(), loop: DataFrameSource.Loop(source))
    }

    /// Asking for a row tells the stream that the loop is done with the one before.
    public struct Iterator: AsyncIteratorProtocol {
        var rows: AsyncThrowingChannel<DataFrameRow, any Error>.AsyncIterator
        let loop: DataFrameSource.Loop

        // Concurrent, as the channel's own `next` is: it cannot run on the caller's executor.
        @concurrent public mutating func next() async throws -> DataFrameRow? {
            loop.asks()
            return try await rows.next()
        }
    }

    // MARK: Building stages

    private mutating func assign(_ name: String, _ column: DataFrameColumn) {
        addRollings(column.rollings)
        guard column.name != name else { return }
        self = adding("compute", ["column": .scalar(name), "expression": .scalar(column.expression)])
        temporaries.removeAll { $0 == name }
    }

    /// The rolling stages a column needs, each once: an expression's input computed first.
    private mutating func addRollings(_ rollings: [RollingAggregate]) {
        for rolling in rollings where !temporaries.contains(rolling.output) {
            if rolling.source.name == nil, !temporaries.contains(rolling.input) {
                self = adding("compute", ["column": .scalar(rolling.input), "expression": .scalar(rolling.source.expression)])
                temporaries.append(rolling.input)
            }
            stages.append(
                Self.stage(
                    id: rolling.output, "rolling",
                    ["column": .scalar(rolling.input), "window": .scalar(rolling.window), "aggregate": .scalar(rolling.function.rawValue), "as": .scalar(rolling.output)]))
            temporaries.append(rolling.output)
        }
    }

    private func adding(_ uses: String, _ options: [String: ConfigValue.Kind]) -> StreamingDataFrame {
        var frame = self
        frame.stages.append(Self.stage(id: "\(uses)\(stages.count)", uses, options))
        return frame
    }

    private static func stage(id: String, _ uses: String, _ options: [String: ConfigValue.Kind]) -> Pipeline.Stage {
        Pipeline.Stage(id: id, uses: uses, options: options.mapValues { ConfigValue($0, line: 0, column: 0) })
    }
}

extension StreamConsumer {
    /// The stream's time-series as a streaming data frame (see `StreamingDataFrame`). Call it
    /// in `onStreamReceived`; it takes the stream's frame and closed handlers.
    public func dataFrame() -> StreamingDataFrame { StreamingDataFrame(source: DataFrameSource(self)) }
}
