import CRdKafka

/// A consumed record. Key and value are slices of one buffer shared by the whole poll batch,
/// so a batch costs one allocation for its bytes, not two per message.
public struct KafkaMessage: Sendable {
    public let topic: String
    public let partition: Int32
    public let offset: Int64
    /// Milliseconds since the Unix epoch (create or log-append time), if the broker gave one.
    public let timestampMilliseconds: Int64?
    public let key: ArraySlice<UInt8>?
    /// `nil` for a tombstone.
    public let value: ArraySlice<UInt8>?
    public let headers: [KafkaHeader]

    public var topicPartition: TopicPartition { TopicPartition(topic, partition) }
    /// The offset to commit once this message is processed.
    public var nextOffset: TopicPartitionOffset { TopicPartitionOffset(topic, partition, offset: offset + 1) }
}

/// What a consumer hands to the application, in the order it happened.
public enum ConsumerEvent: Sendable {
    /// Messages from one poll, in offset order per partition.
    case messages([KafkaMessage])
    /// Partitions added to this member's assignment; their messages follow.
    case assigned([TopicPartition])
    /// Partitions taken away in an orderly rebalance. No message of theirs follows. Until the
    /// application asks for the next event (or `revocationTimeout` passes) the partitions stay
    /// assigned: this is the moment to finish their in-flight work and commit.
    case revoked([TopicPartition])
    /// Partitions lost without an orderly handover (session timed out); another member may
    /// already own them, so their offsets cannot be committed.
    case lost([TopicPartition])
    /// The consumer read to the current end of a partition (with `reportPartitionEnd`).
    case partitionEnd(TopicPartitionOffset)
    /// A problem the consumer reports and keeps working through (broker down, unknown topic).
    case error(KafkaError)
    /// Nothing happened for `idleInterval` (only with that setting).
    case idle
}

/// The consumer group's identity and generation, for `sendOffsetsToTransaction`.
public final class ConsumerGroupMetadata: Sendable {
    /// Owned; destroyed with this object. Immutable once made, so sharing it is safe.
    nonisolated(unsafe) let handle: OpaquePointer

    init(handle: OpaquePointer) { self.handle = handle }
    deinit { rd_kafka_consumer_group_metadata_destroy(handle) }
}
