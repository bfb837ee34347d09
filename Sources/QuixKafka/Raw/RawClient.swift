import CRdKafka
import Foundation
import Logging
import Synchronization

/// What librdkafka calls back into Swift, reached through the handle's opaque pointer.
/// Set up before `rd_kafka_new` and only read afterwards, from librdkafka's threads.
final class ClientCallbacks: Sendable {
    let logger: Logger
    let onError: @Sendable (KafkaError) -> Void
    /// Called on the thread that serves the consumer queue (our poll thread).
    let onRebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void)?
    /// A producer's handler of tagged delivery reports.
    let delivery: TaggedDelivery?

    init(
        logger: Logger,
        onError: @escaping @Sendable (KafkaError) -> Void,
        onRebalance: (@Sendable (OpaquePointer, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>) -> Void)? = nil,
        delivery: TaggedDelivery? = nil
    ) {
        self.logger = logger
        self.onError = onError
        self.onRebalance = onRebalance
        self.delivery = delivery
    }

    static func of(_ rk: OpaquePointer?) -> ClientCallbacks? {
        guard let rk, let opaque = rd_kafka_opaque(rk) else { return nil }
        return Unmanaged<ClientCallbacks>.fromOpaque(opaque).takeUnretainedValue()
    }
}

/// Owns one `rd_kafka_t`. The handle is thread-safe (librdkafka's guarantee), which is why this
/// class is `Sendable`; it is destroyed when the last owner lets go.
final class RawClient: @unchecked Sendable {
    let handle: OpaquePointer
    /// Kept alive for as long as librdkafka may call back through the opaque pointer.
    private let callbacks: ClientCallbacks
    private let abandoned = Atomic(false)

    /// Creates the client. `configure` may install more callbacks on the configuration.
    init(
        _ type: rd_kafka_type_t, properties: [String: String], callbacks: ClientCallbacks,
        configure: (OpaquePointer) -> Void = { _ in }
    ) throws(KafkaError) {
        let conf = try Self.makeConfiguration(properties)
        self.callbacks = callbacks
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(callbacks).toOpaque())
        rd_kafka_conf_set_log_cb(conf, logCallback)
        rd_kafka_conf_set_error_cb(conf, errorCallback)
        configure(conf)
        var errorText = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)  // rd_kafka_new takes the configuration only on success
            throw KafkaError(code: .invalidSetting, detail: String(cText: errorText))
        }
        self.handle = handle
    }

    deinit {
        if !abandoned.load(ordering: .relaxed) { rd_kafka_destroy(handle) }
    }

    /// Leaves the (closed) client alive for the rest of the process instead of destroying it.
    /// librdkafka 2.0.2, Debian 12's, fails an assertion and aborts in `rd_kafka_destroy` for a
    /// group consumer that joined a group but never got an assignment (confluentinc/librdkafka
    /// #4312, fixed in 2.3.0). Its threads may still log, so the callbacks stay alive too.
    func abandon() {
        abandoned.store(true, ordering: .relaxed)
        _ = Unmanaged.passRetained(callbacks)
    }

    /// A configuration with every property set, or librdkafka's own message for the first one it refuses.
    static func makeConfiguration(_ properties: [String: String]) throws(KafkaError) -> OpaquePointer {
        let conf = rd_kafka_conf_new()!
        var errorText = [CChar](repeating: 0, count: 512)
        for (key, value) in properties.sorted(by: { $0.key < $1.key }) {
            if rd_kafka_conf_set(conf, key, value, &errorText, errorText.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                throw KafkaError(code: .invalidSetting, detail: String(cText: errorText))
            }
        }
        return conf
    }

    /// The fatal error the client raised, if any (idempotence or transaction state lost).
    func fatalError() -> KafkaError? {
        var text = [CChar](repeating: 0, count: 512)
        let err = rd_kafka_fatal_error(handle, &text, text.count)
        guard var error = KafkaError.from(err, detail: String(cText: text)) else { return nil }
        error.isFatal = true
        return error
    }
}

/// Runs a blocking librdkafka call (flush, synchronous commit, metadata, transactions) on a
/// thread of its own, so it never occupies a thread of Swift concurrency's cooperative pool.
/// These calls are rare (per checkpoint, not per message), so a thread per call is cheap enough
/// and can never starve behind another blocking call.
func runBlocking<T: Sendable>(
    _ name: String, _ body: @escaping @Sendable () throws(KafkaError) -> T
) async throws(KafkaError) -> T {
    let result: Result<T, KafkaError> = await withCheckedContinuation { continuation in
        let thread = Thread {
            continuation.resume(returning: Result { () throws(KafkaError) -> T in try body() })
        }
        thread.name = "quix-\(name)"
        thread.start()
    }
    return try result.get()
}

private func logCallback(_ rk: OpaquePointer?, _ level: Int32, _ facility: UnsafePointer<CChar>?, _ text: UnsafePointer<CChar>?) {
    guard let callbacks = ClientCallbacks.of(rk), let text else { return }
    let logLevel: Logger.Level =
        switch level {
        case ...2: .critical
        case 3: .error
        case 4: .warning
        case 5, 6: .info
        default: .debug
        }
    callbacks.logger.log(
        level: logLevel, "\(String(cString: text))",
        metadata: ["librdkafka.facility": "\(facility.map { String(cString: $0) } ?? "")"])
}

private func errorCallback(_ rk: OpaquePointer?, _ code: Int32, _ reason: UnsafePointer<CChar>?, _ opaque: UnsafeMutableRawPointer?) {
    guard let callbacks = ClientCallbacks.of(rk) else { return }
    let err = rd_kafka_resp_err_t(rawValue: code)
    guard var error = KafkaError.from(err, detail: reason.map { String(cString: $0) }) else { return }
    if err == RD_KAFKA_RESP_ERR__FATAL, let rk {
        var text = [CChar](repeating: 0, count: 512)
        let underlying = rd_kafka_fatal_error(rk, &text, text.count)
        error = KafkaError.from(underlying, detail: String(cText: text)) ?? error
        error.isFatal = true
    }
    callbacks.onError(error)
}

extension String {
    /// The text of a NUL-terminated C buffer that librdkafka filled in.
    init(cText buffer: [CChar]) {
        self = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
