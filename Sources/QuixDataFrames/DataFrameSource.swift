import AsyncAlgorithms
import QuixPipeline
import QuixStreams
import Synchronization

/// Runs a data frame's stages on each frame of its stream, in the consumer's handler (so their
/// state changes are part of the package's checkpoint), and hands the rows to the loop.
final class DataFrameSource: Sendable {
    let rows = AsyncThrowingChannel<DataFrameRow, any Error>()
    private let streamID: String
    /// The stream's state in a store; weak, as the stream's handlers keep this source.
    private let state: @Sendable (String) throws -> StreamState
    private let started = Mutex<Start>(.waiting([]))
    private let progress = Mutex(Progress())

    /// Rows handed to the loop and rows it asked for: it finished row n when it asks for row n + 1.
    private struct Progress {
        var handed = 0
        var asked = 0
        var ended = false
        var waiter: CheckedContinuation<Void, Never>?

        var loopIsDone: Bool { ended || asked > handed }
    }

    private enum Start {
        case waiting([CheckedContinuation<Result<Running, any Error>, Never>])
        case running(Result<Running, any Error>)
    }

    struct Running: Sendable {
        let chain: StageChain
        let contexts: StreamContexts
    }

    init(_ stream: StreamConsumer) {
        streamID = stream.streamID
        let id = stream.streamID
        state = { [weak stream] store in
            guard let stream else { throw PipelineError(.state, "stream \(id) has ended; its state is closed") }
            return try stream.state(store)
        }
        stream.onFrameReceived { [self] stream, frame in
            let running: Running
            do {
                running = try await started().get()
            } catch {
                rows.fail(error)
                throw error
            }
            let result: TimeseriesFrame
            do {
                result = try running.chain.process(frame, running.contexts)
            } catch {
                rows.fail(error)
                throw error
            }
            for row in Self.rows(of: result, stream: stream.streamID) {
                progress.withLock { $0.handed += 1 }
                await rows.send(row)
            }
            await loopIsDone()
        }
        stream.onStreamClosed { [self] _, _ in rows.finish() }
    }

    /// Fixes the stages: the frames that wait, and those that come, go through them.
    func start(_ stages: [Pipeline.Stage]) {
        let running = Result<Running, any Error> {
            let chain = try StageChain(name: "dataFrame", stages: stages, file: "data frame of stream \(streamID)", registry: .builtIn)
            return Running(chain: chain, contexts: chain.contexts(streamID: streamID, state: chain.isStateful ? state : nil))
        }
        let waiting = started.withLock { start -> [CheckedContinuation<Result<Running, any Error>, Never>] in
            guard case .waiting(let waiting) = start else {
                return []
            }
            start = .running(running)
            return waiting
        }
        for continuation in waiting { continuation.resume(returning: running) }
    }

    /// Waits until the loop finished the body of the last row handed to it, or ended.
    private func loopIsDone() async {
        await withCheckedContinuation { continuation in
            let done = progress.withLock { progress in
                if progress.loopIsDone { return true }
                progress.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
    }

    private func update(_ change: (inout Progress) -> Void) {
        let waiter = progress.withLock { progress -> CheckedContinuation<Void, Never>? in
            change(&progress)
            guard progress.loopIsDone, let waiter = progress.waiter else { return nil }
            progress.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// The loop's hold on its stream: it asks for rows, and lets the stream go when it ends.
    final class Loop: Sendable {
        private let source: DataFrameSource

        init(_ source: DataFrameSource) { self.source = source }

        func asks() { source.update { $0.asked += 1 } }

        deinit {
            source.update { $0.ended = true }
            source.rows.finish()
        }
    }

    private func started() async -> Result<Running, any Error> {
        await withCheckedContinuation { continuation in
            let running = started.withLock { start -> Result<Running, any Error>? in
                switch start {
                case .running(let running): return running
                case .waiting(var waiting):
                    waiting.append(continuation)
                    start = .waiting(waiting)
                    return nil
                }
            }
            if let running { continuation.resume(returning: running) }
        }
    }

    static func rows(of frame: TimeseriesFrame, stream: String) -> [DataFrameRow] {
        frame.timestamps.indices.map { row in
            var numbers: [String: Double] = [:]
            for (name, column) in frame.numeric { if let value = column[row] { numbers[name] = value } }
            var strings: [String: String] = [:]
            for (name, column) in frame.strings { if let value = column[row] { strings[name] = value } }
            var tags: [String: String] = [:]
            for (name, column) in frame.tags { if let value = column[row] { tags[name] = value } }
            return DataFrameRow(streamID: stream, timestamp: frame.timestamps[row], numbers: numbers, strings: strings, tags: tags)
        }
    }
}
