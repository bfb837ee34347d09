/// One partition's state as a checkpointing handler (`TopicConsumer.onCheckpointing`) sees it:
/// the streams that have state in a store, and any stream's state, whether or not the stream
/// is open. Changes made through it are checkpointed (and changelogged) like a package's.
public struct PartitionStateAccess: Sendable {
    public let partition: TopicPartition
    let state: PartitionState

    /// The ids of the streams with keys in `store` after stream `after` (nil: from the first),
    /// in key order, from at most `limit` keys: a bounded step of a walk over a store's streams.
    /// Fewer than `limit` keys read means the walk reached the end.
    public func streams(in store: String, after: String?, limit: Int) throws -> (ids: [String], keysRead: Int) {
        var lower: [UInt8] = []
        if let after {
            guard let next = Self.successor(of: StreamState.prefix(of: after)) else { return ([], 0) }
            lower = next
        }
        var ids: [String] = []
        let keys = try state.keys(store: store, from: lower, limit: limit)
        for key in keys {
            guard key.count >= 2 else { continue }
            let length = Int(key[0]) << 8 | Int(key[1])
            guard key.count >= 2 + length else { continue }
            let id = String(decoding: key[2..<2 + length], as: UTF8.self)
            if id != ids.last { ids.append(id) }
        }
        return (ids, keys.count)
    }

    /// The state of stream `id` in `store`.
    public func state(stream id: String, store: String) -> StreamState {
        StreamState(partition: state, store: store, streamID: id)
    }

    /// Deletes every key of these streams in `store`, or in every store of the partition. One
    /// change for them all: each change re-reads the pending ones, so clear in batches.
    public func clear(streams ids: some Collection<String>, in store: String? = nil) {
        let prefixes = Set(ids.map(StreamState.prefix(of:)))
        for store in store.map({ [$0] }) ?? Array(state.stores) { state.deleteStreams(store: store, prefixes: prefixes) }
    }

    /// The stores this partition's state has.
    public var stores: Set<String> { state.stores }

    /// The first key after every key that starts with `prefix`; nil when there is none.
    static func successor(of prefix: [UInt8]) -> [UInt8]? {
        var bytes = prefix
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return nil
    }
}
