import DequeModule
import QuixKafka
import Synchronization

/// A topic consumer's queue of work on one worker: batches of its partitions' messages, which
/// run in the order they came, and urgent actions (checkpoint cuts, revocations, timers), which
/// run before the next batch. One task that prefers the worker drains it (`run`), so a
/// partition's messages are processed in offset order, one package at a time, on one thread.
final class Lane: Sendable {
    let worker: Worker

    enum Item: Sendable {
        case batch(PartitionTask, ArraySlice<KafkaMessage>)
        case urgent(@Sendable () async -> Void)
    }

    private struct State {
        var batches: Deque<(task: PartitionTask, messages: ArraySlice<KafkaMessage>)> = []
        var urgent: Deque<@Sendable () async -> Void> = []
        var waiter: CheckedContinuation<Item?, Never>?
        var finished = false
        /// `run` has ended: nothing queued now would ever run.
        var exited = false
    }

    private let state = Mutex(State())
    private let flow: FlowControl

    init(worker: Worker, flow: FlowControl) {
        self.worker = worker
        self.flow = flow
    }

    /// Queues messages of one partition (in offset order) for its task.
    /// After the lane has ended, the messages are dropped (they are read again from the
    /// committed offset).
    func push(_ messages: ArraySlice<KafkaMessage>, for task: PartitionTask) {
        if !deliver(.batch(task, messages), enqueue: { $0.batches.append((task, messages)) }) { flow.release(messages.count) }
    }

    /// Runs `action` on the lane before the next batch and waits until it has run. After the
    /// lane has ended (no batch runs any more), `action` runs at once in the caller's task: a
    /// checkpoint that began as the consumer stopped must not wait for ever.
    func urgent<T: Sendable>(_ action: @escaping @Sendable () async -> T) async -> T {
        let result: T? = await withCheckedContinuation { continuation in
            let item: @Sendable () async -> Void = { continuation.resume(returning: await action()) }
            if !deliver(.urgent(item), enqueue: { $0.urgent.append(item) }) { continuation.resume(returning: nil) }
        }
        if let result { return result }
        return await action()
    }

    /// Runs `action` on the lane before the next batch, without waiting for it; nothing after
    /// the lane has ended.
    func post(_ action: @escaping @Sendable () async -> Void) {
        _ = deliver(.urgent(action)) { $0.urgent.append(action) }
    }

    /// Drops the queued batches of `task` (its partition is going away); returns how many
    /// messages they held.
    @discardableResult
    func drop(_ task: PartitionTask) -> Int {
        let dropped = state.withLock { state -> Int in
            let count = state.batches.reduce(0) { $0 + ($1.task === task ? $1.messages.count : 0) }
            state.batches.removeAll { $0.task === task }
            return count
        }
        flow.release(dropped)
        return dropped
    }

    /// Drops every queued batch (the consumer stops after the batch in hand; what was not
    /// processed is read again from the committed offset).
    func dropBatches() {
        let dropped = state.withLock { state -> Int in
            defer { state.batches.removeAll() }
            return state.batches.reduce(0) { $0 + $1.messages.count }
        }
        flow.release(dropped)
    }

    /// No more work: `run` ends once what is queued is done.
    func finish() {
        let waiter = state.withLock { state -> CheckedContinuation<Item?, Never>? in
            state.finished = true
            if state.waiter != nil { state.exited = true }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: nil)
    }

    /// Drains the lane until `finish()`. A batch whose processing throws (the consumer stops at
    /// a failed package) goes to `onFailure`; later batches are skipped, urgent actions still run
    /// (the consumer's final checkpoint and revocations need them).
    func run(onFailure: @Sendable (any Error) -> Void) async {
        var failed = false
        while let item = await next() {
            switch item {
            case .urgent(let action):
                await action()
            case .batch(let task, let messages):
                defer { flow.release(messages.count) }
                guard !failed else { continue }
                do {
                    try await task.process(messages)
                } catch {
                    failed = true
                    onFailure(error)
                }
            }
        }
    }

    /// Hands `item` to the waiting `run`, or queues it; false once `run` has ended.
    private func deliver(_ item: Item, enqueue: (inout State) -> Void) -> Bool {
        let (accepted, waiter) = state.withLock { state -> (Bool, CheckedContinuation<Item?, Never>?) in
            if state.exited { return (false, nil) }
            if let waiter = state.waiter {
                state.waiter = nil
                return (true, waiter)
            }
            enqueue(&state)
            return (true, nil)
        }
        waiter?.resume(returning: item)
        return accepted
    }

    private func next() async -> Item? {
        if let ready = state.withLock({ Self.take(&$0) }) { return ready }
        return await withCheckedContinuation { continuation in
            let ready: Item?? = state.withLock { state in
                if let item = Self.take(&state) { return .some(item) }
                if state.finished {
                    state.exited = true
                    return .some(nil)
                }
                state.waiter = continuation
                return .none
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    private static func take(_ state: inout State) -> Item? {
        if let action = state.urgent.popFirst() { return .urgent(action) }
        if let batch = state.batches.popFirst() { return .batch(batch.task, batch.messages) }
        return nil
    }
}

/// Bounds the messages a topic consumer has handed to its lanes and not yet processed: the
/// dispatcher waits while the lanes are that far behind, the Kafka consumer's own buffer then
/// fills, and it pauses fetching. Batches, not messages, are counted in and out.
///
/// A waiting dispatcher is woken only once the lanes have drained to half the limit, not as
/// soon as one batch fits: under a backlog each wake-up is a thread switch, and waking for
/// every processed batch (a partition's run of a poll, a few dozen messages) cost more CPU
/// than the work it let in.
final class FlowControl: Sendable {
    private let limit: Int
    private let resumeBelow: Int
    private struct State {
        var inFlight = 0
        var waiters: [(count: Int, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = max(1, limit)
        resumeBelow = self.limit / 2
    }

    /// Messages handed to lanes and not yet processed or dropped.
    var inFlight: Int { state.withLock { $0.inFlight } }

    /// Waits until `count` more messages fit (a batch larger than the limit fits an empty lane).
    func acquire(_ count: Int) async {
        let admitted = state.withLock { state in
            guard state.inFlight == 0 || state.inFlight + count <= limit else { return false }
            state.inFlight += count
            return true
        }
        guard !admitted else { return }
        await withCheckedContinuation { continuation in
            let now = state.withLock { state in
                guard state.inFlight == 0 || state.inFlight + count <= limit else {
                    state.waiters.append((count, continuation))
                    return false
                }
                state.inFlight += count
                return true
            }
            if now { continuation.resume() }
        }
    }

    func release(_ count: Int) {
        guard count > 0 else { return }
        let admitted = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.inFlight -= count
            var admitted: [CheckedContinuation<Void, Never>] = []
            guard state.inFlight <= resumeBelow else { return [] }
            while let first = state.waiters.first, state.inFlight == 0 || state.inFlight + first.count <= limit {
                state.inFlight += first.count
                admitted.append(first.continuation)
                state.waiters.removeFirst()
            }
            return admitted
        }
        for continuation in admitted { continuation.resume() }
    }
}
