import Logging
import Synchronization

/// Does a topic producer's work that is due by time, while nothing is written to its streams:
/// sends changed properties and definitions after their delay, and releases the rows of
/// buffers that waited longer than their timeout. One task per topic producer, started by the
/// first stream that needs it and stopped when the topic producer closes or goes away.
final class BufferClock: Sendable {
    /// How long the clock sleeps at most when no deadline is due sooner.
    static let longestSleep: Duration = .milliseconds(100)

    private struct WeakStream {
        weak var stream: StreamProducer?
    }

    private struct State {
        var streams: [ObjectIdentifier: WeakStream] = [:]
        var task: Task<Void, Never>?
        var stopped = false
    }

    private let state = Mutex(State())
    private let logger: Logger

    init(logger: Logger) {
        self.logger = logger
    }

    deinit { state.withLock { $0.task?.cancel() } }

    /// Serves `stream` from now on.
    func watch(_ stream: StreamProducer) {
        state.withLock { state in
            guard !state.stopped else { return }
            state.streams[ObjectIdentifier(stream)] = WeakStream(stream: stream)
            guard state.task == nil else { return }
            state.task = Task { [weak self] in
                while !Task.isCancelled, let self {
                    let sleep = await self.tick()
                    try? await Task.sleep(for: sleep)
                }
            }
        }
    }

    func stop() {
        state.withLock { state in
            state.stopped = true
            state.task?.cancel()
            state.streams.removeAll()
        }
    }

    /// Releases what is due; returns how long to sleep until the next deadline.
    private func tick() async -> Duration {
        let streams = state.withLock { $0.streams.values.compactMap(\.stream) }
        let now = ContinuousClock.now
        var next = now + Self.longestSleep
        for stream in streams {
            guard let deadline = stream.nextDeadline else { continue }
            if deadline <= now {
                do {
                    try await stream.sendDue(now: now)
                } catch {
                    logger.error("sending on time failed", metadata: ["stream": "\(stream.streamID)", "error": "\(error)"])
                }
            } else {
                next = min(next, deadline)
            }
        }
        // Streams with nothing waiting leave until their next change calls `watch` again.
        state.withLock { state in
            state.streams = state.streams.filter { $0.value.stream?.nextDeadline != nil }
        }
        return max(.milliseconds(1), next - .now)
    }
}
