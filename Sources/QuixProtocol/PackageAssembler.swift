/// Turns Kafka messages into whole packages in stream order: split parts are merged
/// (`SplitMerger`), and a stream's messages that arrive while one of its split messages is
/// incomplete wait for it, so every stream sees its packages in the order they were written.
/// Other streams are not held up, unlike in the reference, where one incomplete message stops
/// the whole consumer.
public struct PackageAssembler: Sendable {
    /// A whole package with the Kafka context of its first part.
    public struct Assembled: Sendable {
        public var partition: Int32
        public var key: [UInt8]?
        /// The offset of the first part: commit past it only once the package is processed.
        public var offset: Int64
        /// The offset of the last part (equal to `offset` when not split).
        public var lastOffset: Int64
        /// Kafka messages this package was merged from (1 unless split).
        public var parts: Int
        public var timestampMilliseconds: Int64?
        /// The bytes: a slice of the consumer's poll batch, or of the merged parts.
        public var value: ArraySlice<UInt8>

        public init(
            partition: Int32, key: [UInt8]?, offset: Int64, lastOffset: Int64, parts: Int, timestampMilliseconds: Int64?,
            value: ArraySlice<UInt8>
        ) {
            self.partition = partition
            self.key = key
            self.offset = offset
            self.lastOffset = lastOffset
            self.parts = parts
            self.timestampMilliseconds = timestampMilliseconds
            self.value = value
        }
    }

    private struct StreamKey: Hashable, Sendable {
        var partition: Int32
        var key: [UInt8]?
    }

    private var merger: SplitMerger
    private var held: [StreamKey: [Assembled]] = [:]

    public init(merger: SplitMerger = SplitMerger()) {
        self.merger = merger
    }

    /// Adds one Kafka message; returns the packages now ready, in order. A split message that
    /// cannot be completed is reported by `takeDropped` and releases what waited behind it.
    public mutating func add(
        partition: Int32, key: [UInt8]?, offset: Int64, timestampMilliseconds: Int64?, value: ArraySlice<UInt8>
    ) -> [Assembled] {
        let stream = StreamKey(partition: partition, key: key)
        let outcome: SplitMerger.Outcome
        do {
            outcome = try merger.add(value, partition: partition, key: key, offset: offset)
        } catch {
            failures.append(error)
            return release(stream)
        }
        switch outcome {
        case .pending:
            return []
        case .whole:
            let package = Assembled(
                partition: partition, key: key, offset: offset, lastOffset: offset, parts: 1,
                timestampMilliseconds: timestampMilliseconds, value: value)
            if merger.hasPending(partition: partition, key: key) {
                held[stream, default: []].append(package)
                return []
            }
            return [package]
        case .merged(let bytes, let firstOffset, let parts):
            let package = Assembled(
                partition: partition, key: key, offset: firstOffset, lastOffset: offset, parts: parts,
                timestampMilliseconds: timestampMilliseconds, value: bytes[...])
            return [package] + release(stream)
        }
    }

    private var failures: [QuixProtocolError] = []

    /// Split messages given up on since the last call (missing parts, timed out, evicted).
    public mutating func takeDropped() -> [QuixProtocolError] {
        let dropped = failures + merger.takeDropped()
        failures.removeAll()
        return dropped
    }

    /// Expires stale split messages; returns what waited behind them.
    public mutating func expire(now: ContinuousClock.Instant = .now) -> [Assembled] {
        merger.expire(now: now)
        return held.keys.flatMap { release($0) }
    }

    /// Forgets a revoked partition: its parts and its held packages.
    public mutating func forget(partition: Int32) {
        merger.forget(partition: partition)
        held = held.filter { $0.key.partition != partition }
    }

    private mutating func release(_ stream: StreamKey) -> [Assembled] {
        guard !merger.hasPending(partition: stream.partition, key: stream.key) else { return [] }
        return held.removeValue(forKey: stream) ?? []
    }
}
