/// Splitting of packages larger than a Kafka message may be, and merging of the parts (SPEC 4).
/// A part is `<` id(i32 LE) `/` index `/` lastIndex `>` followed by a chunk of the envelope.
public enum MessageSplit {
    /// The reference's limit: message.max.bytes (1,000,012) less 1,024 reserved for the key.
    public static let maximumMessageSize = 998_988
    public static let headerSize = 10
    public static let maximumParts = 255

    /// The envelope itself when it fits, else its parts in order.
    public static func split(_ envelope: [UInt8], messageID: UInt32, maximumSize: Int = maximumMessageSize) throws(QuixProtocolError) -> [[UInt8]] {
        guard envelope.count > maximumSize else { return [envelope] }
        let chunkSize = maximumSize - headerSize
        let parts = (envelope.count + chunkSize - 1) / chunkSize
        guard parts <= maximumParts else {
            throw QuixProtocolError(.invalidSplit, "a package of \(envelope.count) bytes needs \(parts) parts, more than \(maximumParts)")
        }
        return (0..<parts).map { index in
            var part: [UInt8] = [0x3C]
            part.reserveCapacity(maximumSize)
            for shift in stride(from: 0, to: 32, by: 8) { part.append(UInt8(truncatingIfNeeded: messageID >> UInt32(shift))) }
            part += [0x2F, UInt8(index), 0x2F, UInt8(parts - 1), 0x3E]
            part += envelope[(index * chunkSize)..<min(envelope.count, (index + 1) * chunkSize)]
            return part
        }
    }

    /// The header of a split part, or `nil` when `value` is not one.
    public static func header(of value: ArraySlice<UInt8>) -> (messageID: UInt32, index: Int, lastIndex: Int)? {
        let start = value.startIndex
        guard value.count >= headerSize, value[start] == 0x3C, value[start + 5] == 0x2F, value[start + 7] == 0x2F,
            value[start + 9] == 0x3E
        else { return nil }
        var id: UInt32 = 0
        for index in 0..<4 { id |= UInt32(value[start + 1 + index]) << UInt32(8 * index) }
        return (id, Int(value[start + 6]), Int(value[start + 8]))
    }
}

/// Collects split parts until a message is whole. Robust where the reference is not: parts are
/// grouped by (partition, key, message id), so concurrent split messages of different streams do
/// not mix; a message missing a part is dropped with an error when its last part arrives or
/// its time runs out, and the caller keeps going; the buffer is bounded in messages and bytes.
public struct SplitMerger: Sendable {
    public struct PartKey: Hashable, Sendable {
        public var partition: Int32
        public var key: [UInt8]?
        public var messageID: UInt32
    }

    public enum Outcome: Sendable {
        /// Not a part: use the value as it is.
        case whole
        /// A part was stored; the message is not complete yet.
        case pending
        /// The message is complete. `firstOffset` is the offset of its first part, the offset to
        /// commit past only once this message is processed.
        case merged(bytes: [UInt8], firstOffset: Int64, parts: Int)
    }

    private struct Pending: Sendable {
        var parts: [[UInt8]?]
        var firstOffset: Int64
        var lastSeen: ContinuousClock.Instant
        var bytes: Int
    }

    public let maximumMessages: Int
    public let maximumBytes: Int
    public let timeToLive: Duration
    private var pending: [PartKey: Pending] = [:]
    private var bufferedBytes = 0
    private var dropped: [QuixProtocolError] = []

    public init(maximumMessages: Int = 50, maximumBytes: Int = 256 << 20, timeToLive: Duration = .seconds(60)) {
        self.maximumMessages = maximumMessages
        self.maximumBytes = maximumBytes
        self.timeToLive = timeToLive
    }

    /// Messages still waiting for parts.
    public var pendingCount: Int { pending.count }

    /// Whether a split message of this stream (partition and key) is incomplete; later messages
    /// of the stream must wait for it to keep their order.
    public func hasPending(partition: Int32, key: [UInt8]?) -> Bool {
        pending.keys.contains { $0.partition == partition && $0.key == key }
    }

    /// Adds one Kafka value. Throws for a part that cannot belong to a whole message (an index
    /// beyond its last index, a last index that changed, a missing part once the last one came).
    public mutating func add(
        _ value: ArraySlice<UInt8>, partition: Int32, key: [UInt8]?, offset: Int64, now: ContinuousClock.Instant? = nil
    ) throws(QuixProtocolError) -> Outcome {
        guard let header = MessageSplit.header(of: value) else { return .whole }
        let now = now ?? .now  // read only for a part: a whole message costs no clock read
        let id = PartKey(partition: partition, key: key, messageID: header.messageID)
        guard header.index <= header.lastIndex else {
            throw QuixProtocolError(.invalidSplit, "part \(header.index) of a message whose last part is \(header.lastIndex)")
        }
        var entry = pending[id] ?? Pending(parts: Array(repeating: nil, count: header.lastIndex + 1), firstOffset: offset, lastSeen: now, bytes: 0)
        guard entry.parts.count == header.lastIndex + 1 else {
            drop(id)
            throw QuixProtocolError(
                .invalidSplit, "message \(header.messageID) changed its last part index from \(entry.parts.count - 1) to \(header.lastIndex)")
        }
        if entry.parts[header.index] == nil {  // a part that arrives twice is ignored
            let chunk = Array(value.dropFirst(MessageSplit.headerSize))
            entry.parts[header.index] = chunk
            entry.bytes += chunk.count
            bufferedBytes += chunk.count
            entry.firstOffset = min(entry.firstOffset, offset)
        }
        entry.lastSeen = now
        pending[id] = entry
        if header.index == header.lastIndex || entry.parts.allSatisfy({ $0 != nil }) {
            guard entry.parts.allSatisfy({ $0 != nil }) else {
                let missing = entry.parts.indices.filter { entry.parts[$0] == nil }
                drop(id)
                throw QuixProtocolError(.invalidSplit, "message \(header.messageID) is missing parts \(missing) of 0...\(header.lastIndex)")
            }
            drop(id)
            return .merged(bytes: entry.parts.reduce(into: []) { $0 += $1! }, firstOffset: entry.firstOffset, parts: entry.parts.count)
        }
        enforceLimits(now: now)
        return .pending
    }

    /// Drops messages whose parts stopped coming more than `timeToLive` ago (reported by `takeDropped`).
    public mutating func expire(now: ContinuousClock.Instant = .now) {
        for (id, entry) in pending where now - entry.lastSeen > timeToLive {
            drop(id)
            dropped.append(
                QuixProtocolError(
                    .invalidSplit,
                    "split message \(id.messageID) on partition \(id.partition) timed out with \(entry.parts.filter { $0 == nil }.count) of \(entry.parts.count) parts missing"))
        }
    }

    /// Incomplete messages dropped since the last call (timed out, or evicted over the limits).
    public mutating func takeDropped() -> [QuixProtocolError] {
        defer { dropped.removeAll() }
        return dropped
    }

    /// Forgets every message of a partition (it was revoked).
    public mutating func forget(partition: Int32) {
        for id in pending.keys where id.partition == partition { drop(id) }
    }

    private mutating func enforceLimits(now: ContinuousClock.Instant) {
        expire(now: now)
        while pending.count > maximumMessages || bufferedBytes > maximumBytes {
            guard let oldest = pending.min(by: { $0.value.lastSeen < $1.value.lastSeen })?.key else { break }
            drop(oldest)
            dropped.append(
                QuixProtocolError(
                    .invalidSplit,
                    "split message \(oldest.messageID) on partition \(oldest.partition) evicted: over \(maximumMessages) incomplete messages or \(maximumBytes) bytes"))
        }
    }

    private mutating func drop(_ id: PartKey) {
        if let entry = pending.removeValue(forKey: id) { bufferedBytes -= entry.bytes }
    }
}
