import Synchronization

/// The open streams of one input partition, by stream id. Its partition task adds and ends
/// them; the checkpointer asks what their consumer buffers still hold.
final class StreamRegistry: Sendable {
    private let streams = Mutex([String: StreamConsumer]())

    /// The open stream `id`, or a new one from `make` (then `isNew`).
    func stream(_ id: String, make: () -> StreamConsumer) -> (stream: StreamConsumer, isNew: Bool) {
        streams.withLock { streams in
            if let known = streams[id] { return (known, false) }
            let made = make()
            streams[id] = made
            return (made, true)
        }
    }

    /// Ends stream `id` here (it ended): a later package with its id starts a new one.
    func remove(_ id: String) {
        _ = streams.withLock { $0.removeValue(forKey: id) }
    }

    /// Every open stream, removed.
    func removeAll() -> [StreamConsumer] {
        streams.withLock { streams in
            defer { streams.removeAll() }
            return Array(streams.values)
        }
    }

    /// The streams whose last package came `timeout` or longer before `now`, removed.
    func removeIdle(now: ContinuousClock.Instant, timeout: Duration) -> [StreamConsumer] {
        streams.withLock { streams in
            let idle = streams.values.filter { now - $0.lastPackage >= timeout }
            for stream in idle { streams[stream.streamID] = nil }
            return idle
        }
    }

    var all: [StreamConsumer] { streams.withLock { Array($0.values) } }

    /// The offset of the oldest package whose rows a stream's consumer buffer still holds.
    var oldestHeldOffset: Int64? { all.compactMap(\.oldestHeldOffset).min() }
}
