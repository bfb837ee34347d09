import CRdKafka

/// An error from the Kafka layer. librdkafka errors keep their raw code and name, so callers
/// switch on codes instead of matching message text.
public struct KafkaError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of failure this is. New codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }

        /// A configuration property was unknown or had an invalid value.
        public static let invalidSetting = Code(name: "invalidSetting")
        /// An argument was rejected before it reached librdkafka (empty topic name, ...).
        public static let invalidArgument = Code(name: "invalidArgument")
        /// librdkafka or a broker reported an error; see `librdkafkaCode`.
        public static let broker = Code(name: "broker")
        /// The client was closed before the operation could run.
        public static let closed = Code(name: "closed")
    }

    public var code: Code
    /// The `rd_kafka_resp_err_t` value, unchanged, when librdkafka produced the error.
    public var librdkafkaCode: Int32?
    /// The librdkafka error name (e.g. `_TRANSPORT`, `TOPIC_AUTHORIZATION_FAILED`).
    public var librdkafkaName: String?
    /// The operation may succeed when tried again.
    public var isRetriable = false
    /// The client instance is unusable (a fatal idempotence or transaction error).
    public var isFatal = false
    /// The current transaction must be aborted before another one can begin.
    public var transactionRequiresAbort = false
    /// What happened, in librdkafka's words where it said something.
    public var detail: String

    public init(code: Code, detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String {
        var text = "\(code): \(detail)"
        if let librdkafkaName, let librdkafkaCode { text += " [\(librdkafkaName) (\(librdkafkaCode))]" }
        if isFatal { text += " (fatal)" }
        return text
    }

    /// The error for a librdkafka response code; `nil` for `RD_KAFKA_RESP_ERR_NO_ERROR`.
    static func from(_ err: rd_kafka_resp_err_t, detail: String? = nil) -> KafkaError? {
        guard err != RD_KAFKA_RESP_ERR_NO_ERROR else { return nil }
        var error = KafkaError(code: .broker, detail: detail ?? String(cString: rd_kafka_err2str(err)))
        error.librdkafkaCode = err.rawValue
        error.librdkafkaName = String(cString: rd_kafka_err2name(err))
        error.isFatal = err == RD_KAFKA_RESP_ERR__FATAL
        error.isRetriable = retriableCodes.contains(err)
        return error
    }

    /// Response codes after which the same request may succeed (Kafka's retriable errors and
    /// librdkafka's transient local ones).
    private static let retriableCodes: Set<rd_kafka_resp_err_t> = [
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR__TIMED_OUT, RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN,
        RD_KAFKA_RESP_ERR__WAIT_COORD, RD_KAFKA_RESP_ERR__QUEUE_FULL,
        RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS, RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND, RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    ]

    /// Converts and destroys an `rd_kafka_error_t`; `nil` in, `nil` out.
    static func consuming(_ handle: OpaquePointer?) -> KafkaError? {
        guard let handle else { return nil }
        defer { rd_kafka_error_destroy(handle) }
        var error = KafkaError(code: .broker, detail: String(cString: rd_kafka_error_string(handle)))
        error.librdkafkaCode = rd_kafka_error_code(handle).rawValue
        error.librdkafkaName = String(cString: rd_kafka_error_name(handle))
        error.isRetriable = rd_kafka_error_is_retriable(handle) != 0
        error.isFatal = rd_kafka_error_is_fatal(handle) != 0
        error.transactionRequiresAbort = rd_kafka_error_txn_requires_abort(handle) != 0
        return error
    }

    static func check(_ err: rd_kafka_resp_err_t, _ context: @autoclosure () -> String) throws(KafkaError) {
        if var error = from(err) {
            error.detail = "\(context()): \(error.detail)"
            throw error
        }
    }

    static func check(_ handle: OpaquePointer?, _ context: @autoclosure () -> String) throws(KafkaError) {
        if var error = consuming(handle) {
            error.detail = "\(context()): \(error.detail)"
            throw error
        }
    }
}
