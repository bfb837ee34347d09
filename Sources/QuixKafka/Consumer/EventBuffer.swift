import DequeModule
import Foundation

/// The bounded hand-over between the consumer's poll thread and the application's async
/// iteration. The poll thread pushes; one iterator takes. The poll thread reads
/// `messageCount()` to pause fetching when the application falls behind.
///
/// `@unchecked Sendable`: every stored property is read and written only with `condition` held.
final class EventBuffer: @unchecked Sendable {
    private let condition = NSCondition()
    /// Queued events. A deque, not an array with a read index: an event taken must not stay
    /// referenced. Batches kept that way held every message read until the array was compacted
    /// (1,024 batches later), over a hundred megabytes on W1 of the shared bench.
    private var events: Deque<ConsumerEvent> = []
    private var waiter: CheckedContinuation<ConsumerEvent?, Never>?
    private var finished = false
    /// A cancellation that arrived before its `next()` began to wait.
    private var cancelled = false
    private var pushed: UInt64 = 0
    private var nextCalls: UInt64 = 0
    private var queuedErrors = 0
    private var bufferedMessages = 0

    /// Messages queued and not yet taken by the application.
    func messageCount() -> Int {
        condition.withLock { bufferedMessages }
    }

    /// Events pushed so far.
    func pushedCount() -> UInt64 {
        condition.withLock { pushed }
    }

    /// Appends an event and returns its sequence number (for `waitUntilHandled`).
    @discardableResult
    func push(_ event: ConsumerEvent) -> UInt64 {
        let (sequence, receiver): (UInt64, CheckedContinuation<ConsumerEvent?, Never>?) = condition.withLock {
            let sequence = pushed
            pushed += 1
            if let waiter {
                self.waiter = nil
                return (sequence, waiter)
            }
            if case .messages(let messages) = event { bufferedMessages += messages.count }
            if case .error = event {
                queuedErrors += 1
                if queuedErrors > 100 { dropOldestError() }
            }
            events.append(event)
            condition.broadcast()  // a blocking `next(timeout:)` may wait
            return (sequence, nil)
        }
        receiver?.resume(returning: event)
        return sequence
    }

    /// Removes queued messages of partitions that are no longer ours.
    func discardMessages(of partitions: Set<TopicPartition>) {
        condition.withLock {
            for index in events.indices {
                guard case .messages(let messages) = events[index] else { continue }
                let kept = messages.filter { !partitions.contains($0.topicPartition) }
                bufferedMessages -= messages.count - kept.count
                events[index] = .messages(kept)
            }
        }
    }

    /// Blocks the calling (poll) thread until the application has asked for the event after
    /// event `sequence`, the buffer is finished, or `timeout` passes. Returns whether it was handled.
    func waitUntilHandled(_ sequence: UInt64, timeout: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.milliseconds) / 1000)
        return condition.withLock {
            while nextCalls < sequence + 2 && !finished {
                if !condition.wait(until: deadline) { return false }
            }
            return true
        }
    }

    /// Blocks the calling (poll) thread until at most `count` messages are buffered, the buffer
    /// is finished, or `timeout` passes. Returns whether the messages fell to `count`.
    func waitUntilAtMost(_ count: Int, timeout: Duration) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.milliseconds) / 1000)
        return condition.withLock {
            while bufferedMessages > count && !finished {
                if !condition.wait(until: deadline) { return bufferedMessages <= count }
            }
            return true
        }
    }

    /// No more events will come; the iterator ends after those already queued.
    func finish() {
        let receiver = condition.withLock {
            finished = true
            condition.broadcast()
            defer { waiter = nil }
            return waiter
        }
        receiver?.resume(returning: nil)
    }

    nonisolated(nonsending)
    func next() async -> ConsumerEvent? {
        enum Taken { case event(ConsumerEvent), end, wait }
        let taken: Taken = condition.withLock {
            if Task.isCancelled { return .end }
            cancelled = false
            nextCalls += 1
            condition.broadcast()
            if let event = popLocked() { return .event(event) }
            return finished ? .end : .wait
        }
        switch taken {
        case .event(let event):
            return event
        case .end:
            return nil
        case .wait:
            return await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    let ready: ConsumerEvent?? = condition.withLock {
                        if let event = popLocked() { return .some(event) }
                        if finished || cancelled { return .some(nil) }
                        waiter = continuation
                        return .none
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            } onCancel: {
                cancelWaiter()
            }
        }
    }

    /// The next event for a synchronous reader, waiting up to `timeout`: `nil` when none came in
    /// time or the buffer is finished. Do not mix with `next()`.
    func next(timeout: Duration) -> ConsumerEvent? {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.milliseconds) / 1000)
        return condition.withLock {
            nextCalls += 1
            condition.broadcast()
            while true {
                if let event = popLocked() { return event }
                if finished || !condition.wait(until: deadline) { return nil }
            }
        }
    }

    /// Ends the pending `next()` of a cancelled task with `nil`.
    private func cancelWaiter() {
        let receiver = condition.withLock {
            defer { waiter = nil }
            if waiter == nil { cancelled = true }
            return waiter
        }
        receiver?.resume(returning: nil)
    }

    private func popLocked() -> ConsumerEvent? {
        guard let event = events.popFirst() else { return nil }
        switch event {
        case .messages(let messages): bufferedMessages -= messages.count
        case .error: queuedErrors -= 1
        default: break
        }
        return event
    }

    private func dropOldestError() {
        guard let index = events.firstIndex(where: { if case .error = $0 { true } else { false } }) else { return }
        events.remove(at: index)
        queuedErrors -= 1
    }
}

extension NSCondition {
    fileprivate func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
