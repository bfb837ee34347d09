import QuixKafka

/// A partition's state outside a topic consumer, for the state benchmarks
/// (`Benchmarks/Benchmarks/StateBenchmarks`). Not API: it exists so the benchmarks measure the
/// path handlers take (pending overlay, LMDB reads, one write transaction per checkpoint).
@_spi(Benchmarks)
public final class BenchmarkPartitionState: Sendable {
    let state: PartitionState

    public init(directory: String) throws {
        state = try PartitionState(directory: directory, partition: TopicPartition("bench", 0))
    }

    public func stream(_ id: String, store: String = "default") -> StreamState {
        StreamState(partition: state, store: store, streamID: id)
    }

    /// Writes the pending changes with `offset` as the checkpoint, in one transaction.
    public func checkpoint(offset: Int64) throws {
        try state.checkpoint(offset: offset)
    }
}
