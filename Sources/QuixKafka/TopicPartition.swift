import CRdKafka

/// One partition of one topic.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var topic: String
    public var partition: Int32

    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)[\(partition)]" }

    public static func < (a: TopicPartition, b: TopicPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
}

/// A partition with an offset: a position to read from, or an offset to commit
/// (the offset of the next message to read, i.e. last processed + 1).
public struct TopicPartitionOffset: Hashable, Sendable, CustomStringConvertible {
    public var topicPartition: TopicPartition
    public var offset: Int64

    public init(_ topicPartition: TopicPartition, offset: Int64) {
        self.topicPartition = topicPartition
        self.offset = offset
    }

    public init(_ topic: String, _ partition: Int32, offset: Int64) {
        self.init(TopicPartition(topic, partition), offset: offset)
    }

    public var topic: String { topicPartition.topic }
    public var partition: Int32 { topicPartition.partition }
    public var description: String { "\(topicPartition)@\(offset)" }
}

/// Logical offsets librdkafka understands in place of a real one.
public enum KafkaOffset {
    public static let beginning = Int64(RD_KAFKA_OFFSET_BEGINNING)
    public static let end = Int64(RD_KAFKA_OFFSET_END)
    public static let stored = Int64(RD_KAFKA_OFFSET_STORED)
    /// No offset is known (nothing committed yet).
    public static let invalid = Int64(RD_KAFKA_OFFSET_INVALID)
}

/// An owned `rd_kafka_topic_partition_list_t`, built from and read back into Swift values.
struct PartitionList: ~Copyable {
    let handle: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>

    init(capacity: Int = 0) {
        handle = rd_kafka_topic_partition_list_new(Int32(capacity))
    }

    init(_ partitions: some Collection<TopicPartition>) {
        self.init(capacity: partitions.count)
        for tp in partitions { rd_kafka_topic_partition_list_add(handle, tp.topic, tp.partition) }
    }

    init(_ offsets: some Collection<TopicPartitionOffset>) {
        self.init(capacity: offsets.count)
        for tpo in offsets {
            rd_kafka_topic_partition_list_add(handle, tpo.topic, tpo.partition).pointee.offset = tpo.offset
        }
    }

    deinit { rd_kafka_topic_partition_list_destroy(handle) }

    /// Reads a list librdkafka owns (e.g. the one handed to the rebalance callback).
    static func partitions(of list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartition] {
        elements(of: list).map { TopicPartition(String(cString: $0.topic), $0.partition) }
    }

    static func offsets(of list: UnsafePointer<rd_kafka_topic_partition_list_t>) -> [TopicPartitionOffset] {
        elements(of: list).map { TopicPartitionOffset(String(cString: $0.topic), $0.partition, offset: $0.offset) }
    }

    /// The first per-partition error in a list, if any, other than the codes in `ignoring`.
    static func firstError(
        of list: UnsafePointer<rd_kafka_topic_partition_list_t>, ignoring: Set<rd_kafka_resp_err_t> = []
    ) -> KafkaError? {
        for element in elements(of: list) where !ignoring.contains(element.err) {
            if var error = KafkaError.from(element.err) {
                error.detail = "\(String(cString: element.topic))[\(element.partition)]: \(error.detail)"
                return error
            }
        }
        return nil
    }

    private static func elements(of list: UnsafePointer<rd_kafka_topic_partition_list_t>)
        -> UnsafeBufferPointer<rd_kafka_topic_partition_t>
    {
        UnsafeBufferPointer(start: list.pointee.elems, count: Int(list.pointee.cnt))
    }

    var partitions: [TopicPartition] { Self.partitions(of: handle) }
    var offsets: [TopicPartitionOffset] { Self.offsets(of: handle) }
    var firstError: KafkaError? { Self.firstError(of: handle) }

    func firstError(ignoring codes: Set<rd_kafka_resp_err_t>) -> KafkaError? { Self.firstError(of: handle, ignoring: codes) }
}
