import QuixKafka

/// State kept in a directory outside a topic consumer: for tools and tests that run a stream's
/// handlers without Kafka (`quixd test`), and for the state benchmarks. It works as a partition's
/// state does: changes are visible at once and written, in one transaction, by `checkpoint`.
public final class LocalState: Sendable {
    let state: PartitionState

    /// Opens (creating it if needed) the state in `directory`, which no other process may use.
    public init(directory: String) throws {
        state = try PartitionState(directory: directory, partition: TopicPartition("local", 0))
    }

    /// The state of stream `id` in `store`.
    public func stream(_ id: String, store: String = "default") -> StreamState {
        StreamState(partition: state, store: store, streamID: id)
    }

    /// The state as a checkpointing handler sees a partition's (`TopicConsumer.onCheckpointing`).
    public var access: PartitionStateAccess { PartitionStateAccess(partition: state.partition, state: state) }

    /// Writes the pending changes with `offset` as the checkpoint, in one transaction.
    public func checkpoint(offset: Int64) throws {
        try state.checkpoint(offset: offset)
    }
}
