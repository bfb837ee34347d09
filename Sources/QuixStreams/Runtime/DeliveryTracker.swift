import QuixKafka
import Synchronization

/// The input offset whose processing caused what is being sent: the checkpointer of its
/// partition commits no further than the lowest such offset still waiting for the broker.
/// Set by the topic consumer while a package's handlers run (`DeliveryOrigin.current`), and
/// carried by output buffers for the rows they hold.
public struct DeliveryOrigin: Sendable {
    let tracker: DeliveryTracker
    /// The offset of the input package.
    public let offset: Int64

    /// The origin of the package whose handlers run in this task, if any.
    @TaskLocal public static var current: DeliveryOrigin?
}

/// What one input partition has sent and not yet seen acknowledged, and what output buffers
/// hold back, by origin (input offset). A message is tracked from its send (`sent`, whose tag
/// travels with it through librdkafka) to its delivery report (`delivered`); a holder (a stream
/// producer's buffer or pending properties) declares the oldest origin it keeps. The
/// checkpointer reads `lowestHeld` and waits with `waitForDeliveries(below:)`.
public final class DeliveryTracker: Sendable {
    public let partition: TopicPartition
    private let slot: UInt64
    private let state = Mutex(State())

    private struct State {
        /// Messages in flight per origin.
        var pending: [Int64: Int] = [:]
        var held: [ObjectIdentifier: Int64] = [:]
        /// Origins are stored relative to this (the first one), so they fit the tag.
        var base: Int64?
        var failure: DeliveryFailure?
        var waiters: [(below: Int64, continuation: CheckedContinuation<Void, any Error>)] = []
    }

    init(partition: TopicPartition) {
        self.partition = partition
        slot = DeliveryTags.register()
        DeliveryTags.attach(self, slot: slot)
    }

    deinit { DeliveryTags.detach(slot: slot) }

    /// The origin for what the handlers of the package at `offset` send. The first call fixes
    /// the base of the tags: later origins are never lower (the partition is read in order, and
    /// buffers hold only what came since).
    func origin(_ offset: Int64) -> DeliveryOrigin {
        state.withLock { state in
            if state.base == nil { state.base = offset }
        }
        return DeliveryOrigin(tracker: self, offset: offset)
    }

    /// Registers a message about to be sent for `origin`; returns its delivery tag.
    func sent(origin: Int64) -> UInt64 {
        state.withLock { state in
            let base = state.base ?? origin
            state.base = base
            state.pending[origin, default: 0] += 1
            precondition(origin >= base, "origin \(origin) below the partition's first, \(base)")
            return DeliveryTags.tag(slot: slot, relative: UInt64(origin - base))
        }
    }

    /// A send that librdkafka refused: the message was never in flight.
    func unsent(origin: Int64) {
        finish(origin, failure: nil)
    }

    /// The delivery report of a tagged message.
    fileprivate func delivered(relative: UInt64, error: KafkaError?, topic: String) {
        let origin = state.withLock { ($0.base ?? 0) + Int64(relative) }
        finish(origin, failure: error.map { DeliveryFailure(partition: partition, origin: origin, topic: topic, error: $0) })
    }

    private func finish(_ origin: Int64, failure: DeliveryFailure?) {
        let resumed: [(CheckedContinuation<Void, any Error>, (any Error)?)] = state.withLock { state in
            if let count = state.pending[origin] { state.pending[origin] = count > 1 ? count - 1 : nil }
            if let failure, state.failure == nil { state.failure = failure }
            return Self.takeReady(&state)
        }
        for (continuation, error) in resumed {
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }

    /// Declares the oldest origin `holder` keeps unsent (nil: it keeps none).
    func hold(_ holder: AnyObject, origin: Int64?) {
        state.withLock { $0.held[ObjectIdentifier(holder)] = origin }
    }

    /// The oldest origin an output buffer still holds.
    var lowestHeld: Int64? { state.withLock { $0.held.values.min() } }

    /// The first delivery that failed, if any: nothing at or after its origin may be committed.
    var failure: DeliveryFailure? { state.withLock { $0.failure } }

    /// Waits until no message of an origin below `offset` is in flight. Throws the delivery
    /// failure of such a message.
    func waitForDeliveries(below offset: Int64) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let ready: (any Error)?? = state.withLock { state in
                if let failure = state.failure, failure.origin < offset { return .some(failure) }
                if !state.pending.keys.contains(where: { $0 < offset }) { return .some(nil) }
                state.waiters.append((offset, continuation))
                return .none
            }
            guard let ready else { return }
            if let error = ready { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }

    /// Waiters whose messages are all delivered (or one failed), removed from `state`.
    private static func takeReady(_ state: inout State) -> [(CheckedContinuation<Void, any Error>, (any Error)?)] {
        guard !state.waiters.isEmpty else { return [] }
        let lowestPending = state.pending.keys.min()
        var ready: [(CheckedContinuation<Void, any Error>, (any Error)?)] = []
        state.waiters.removeAll { waiter in
            if let failure = state.failure, failure.origin < waiter.below {
                ready.append((waiter.continuation, failure))
                return true
            }
            guard lowestPending.map({ $0 >= waiter.below }) ?? true else { return false }
            ready.append((waiter.continuation, nil))
            return true
        }
        return ready
    }

    /// Ends every wait with `error` (the partition is going away).
    func cancelWaits(_ error: any Error) {
        let waiters = state.withLock { state in
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume(throwing: error) }
    }
}

/// A message sent for an input package that the broker did not store: the package's effects
/// are not durable, so its partition commits nothing at or after it.
public struct DeliveryFailure: Error, Sendable, CustomStringConvertible {
    public var partition: TopicPartition
    /// The input offset the message came from.
    public var origin: Int64
    /// Where the message was going.
    public var topic: String
    public var error: KafkaError

    public var description: String {
        "a message to \(topic) for input \(partition.topic)[\(partition.partition)] offset \(origin) was not delivered: \(error)"
    }
}

/// Delivery tags: a tracker's slot in the high 20 bits and the origin, relative to the
/// tracker's first, in the low 43, so a delivery report finds its tracker without allocating.
enum DeliveryTags {
    private static let relativeBits: UInt64 = 43
    private static let slotMask: UInt64 = (1 << 20) - 1

    private struct Registry {
        var next: UInt64 = 1
        var trackers: [UInt64: Weak] = [:]
    }

    private struct Weak {
        weak var tracker: DeliveryTracker?
    }

    private static let registry = Mutex(Registry())

    static func register() -> UInt64 {
        registry.withLock { registry in
            defer { registry.next = registry.next & slotMask == slotMask ? 1 : registry.next + 1 }
            return registry.next
        }
    }

    static func attach(_ tracker: DeliveryTracker, slot: UInt64) {
        registry.withLock { $0.trackers[slot] = Weak(tracker: tracker) }
    }

    static func detach(slot: UInt64) {
        _ = registry.withLock { $0.trackers.removeValue(forKey: slot) }
    }

    static func tag(slot: UInt64, relative: UInt64) -> UInt64 {
        precondition(relative < 1 << relativeBits, "an origin \(relative) offsets after the partition's first does not fit a delivery tag")
        return slot << relativeBits | relative
    }

    /// Hands a delivery report to the tracker of its tag; false if the tag is not a tracked one.
    @discardableResult
    static func route(_ report: DeliveryReport) -> Bool {
        guard let tag = report.tag, tag != 0 else { return false }
        let slot = tag >> relativeBits
        guard let tracker = registry.withLock({ $0.trackers[slot]?.tracker }) else { return true }  // its partition went away
        tracker.delivered(relative: tag & ((1 << relativeBits) - 1), error: report.error, topic: report.topic)
        return true
    }
}
