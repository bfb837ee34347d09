import QuixStreams

/// `join`: an as-of join with another stream topic, like quixstreams 3's `join_asof`. Each row
/// gets the columns of the latest row of the same stream id in `topic` whose timestamp is at or
/// before the row's and no more than `tolerance` older; rows without one get missing cells, or
/// are dropped with `onMissing: drop`. The columns are named `<as><column>`.
///
/// The topic must be co-partitioned with the input (checked at start). It is read beside the
/// input by the pipeline's `JoinSource`, which holds each stream's rows for `tolerance` of data
/// time and keeps in the partition's state where a restart reads again from.
public struct JoinStage: Stage {
    public let topic: String
    public let format: Pipeline.DataFormat
    public let columns: [String]
    /// In nanoseconds.
    public let tolerance: Int64
    public let prefix: String
    public let onMissing: LookupStage.OnMissing
    /// How long a frame waits for the topic to be read up to its time.
    public let wait: Duration

    /// Where the partition's read position is kept: a stream id no Quix stream has.
    static let partitionEntry = ""
    static let watermarkKey = "join.offset"

    public static let descriptor = StageDescriptor(
        name: "join",
        summary: "Adds the columns of the latest row of the same stream in another (co-partitioned) topic at or before each row, within a tolerance.",
        options: [
            StageOption("topic", "name", required: true, "the other topic, partitioned like the input"),
            StageOption("format", "quix | json", default: "quix", "the other topic's format"),
            StageOption("columns", "list of names", required: true, "its columns to add"),
            StageOption("tolerance", "duration", required: true, "how much older than the row its match may be (data time)"),
            StageOption("as", "text", default: "\"\"", "a prefix for the added columns' names"),
            StageOption("onMissing", "keep | drop", default: "keep", "rows without a match: kept with missing cells, or dropped"),
            StageOption("wait", "duration", default: "1s", "how long a row waits for the other topic to be read up to its time"),
        ],
        isStateful: true,
        stateShapedBy: ["topic"]
    ) { options in
        let topic = options.string("topic")
        let format = options.values["format"] == nil ? .quix : options.choice("format", Pipeline.DataFormat.self)
        let columns = options.names("columns")
        let tolerance = StageTime.positive(&options, "tolerance")
        let prefix = options.values["as"] == nil ? "" : options.string("as")
        let onMissing = options.values["onMissing"] == nil ? .keep : options.choice("onMissing", LookupStage.OnMissing.self)
        let wait = options.values["wait"] == nil ? .seconds(1) : StageTime.nonNegative(&options, "wait").map { Duration.nanoseconds($0) }
        if format == .raw { options.fail("format", "a join reads rows: quix or json, not raw") }
        guard let topic, let format, format != .raw, let columns, let tolerance, let prefix, let onMissing, let wait else { return nil }
        return JoinStage(topic: topic, format: format, columns: columns, tolerance: tolerance, prefix: prefix, onMissing: onMissing, wait: wait)
    }

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        guard frame.rowCount > 0 else { return frame }
        let source = try context.joinSource()
        let partition = try context.partitionState()
        let newest = frame.timestamps.max()!
        let matches = try source.withRows(
            partition: partition.partition.partition, stream: context.streamID, upTo: newest,
            start: { try partition.state(stream: Self.partitionEntry, store: context.stage).get(Self.watermarkKey, as: Int.self).map(Int64.init) }
        ) { rows in
            frame.timestamps.map { time -> JoinRow? in
                guard let index = rows.lastIndex(where: { $0.timestamp <= time }), StageTime.minus(time, rows[index].timestamp) <= tolerance else { return nil }
                return rows[index]
            }
        }
        var result = frame
        for column in columns {
            let cells = matches.map { $0?.cells[column] }
            if cells.contains(where: { if case .text = $0 { true } else { false } }) {
                result.setStrings(prefix + column, cells.map { if case .text(let text) = $0 { text } else { nil } })
            } else {
                result[prefix + column] = NumericColumn(cells.map { if case .number(let value) = $0 { value } else { nil } })
            }
        }
        if onMissing == .drop, matches.contains(where: { $0 == nil }) { return result.filter(RowMask(matches.map { $0 != nil })) }
        return result
    }

    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions {
        columns.reduce(definitions) { $0.adding(prefix + $1) }
    }
}
