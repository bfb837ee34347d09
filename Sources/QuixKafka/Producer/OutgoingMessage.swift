/// A Kafka record header. A `nil` value is a header without a value.
public struct KafkaHeader: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]?

    public init(_ name: String, _ value: [UInt8]?) {
        self.name = name
        self.value = value
    }
}

/// A message to produce.
public struct OutgoingMessage: Sendable {
    public var topic: String
    /// The key; the partitioner places equal keys on the same partition.
    public var key: [UInt8]?
    /// The payload; `nil` produces a tombstone (a delete marker for compacted topics).
    public var value: [UInt8]?
    public var headers: [KafkaHeader]
    /// An explicit partition; `nil` lets the partitioner choose from the key.
    public var partition: Int32?
    /// Milliseconds since the Unix epoch; `nil` takes the time of sending.
    public var timestampMilliseconds: Int64?

    public init(
        topic: String, key: [UInt8]? = nil, value: [UInt8]?, headers: [KafkaHeader] = [],
        partition: Int32? = nil, timestampMilliseconds: Int64? = nil
    ) {
        self.topic = topic
        self.key = key
        self.value = value
        self.headers = headers
        self.partition = partition
        self.timestampMilliseconds = timestampMilliseconds
    }
}

/// What the broker said about one produced message.
public struct DeliveryReport: Sendable {
    public var topic: String
    /// The partition the message went to (or was meant for when delivery failed early).
    public var partition: Int32
    /// The offset the broker gave the message; `KafkaOffset.invalid` when it failed.
    public var offset: Int64
    /// Why delivery failed, after librdkafka's retries; `nil` when the message is stored.
    public var error: KafkaError?
    /// The tag given to `send(_:tag:)`; `nil` for messages sent with a per-message handler.
    public var tag: UInt64?

    public var isDelivered: Bool { error == nil }
}
