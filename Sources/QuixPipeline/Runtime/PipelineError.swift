import QuixStreams

/// Why a pipeline could not process a message, or could not run: a code to match on, the words
/// for a person, and where it happened (the stage, and the source message's topic, partition
/// and offset) where that is known. Dead letters carry the code in `quixd-error-code`.
public struct PipelineError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable {
        /// The message is not in the format its input declares (a Quix 0.5 package, JSON, raw).
        case malformedMessage = "malformed-message"
        /// A stage cannot take the message's data, such as text in a column it needs as bytes.
        case badData = "bad-data"
        /// A stage's state is unreadable, or the stream's state is closed.
        case state
        /// An output refused what the stages made of the message.
        case output
        /// A topic the pipeline names does not exist.
        case missingTopic = "missing-topic"
        /// The pipeline cannot run as configured: no state directory for stateful stages, a
        /// table it does not declare.
        case configuration
        /// A stage or handler threw an error of its own.
        case failed
    }

    public var code: Code
    public var message: String
    /// The stage id; `input` for a message that could not be decoded.
    public var stage: String?
    public var topic: String?
    public var partition: Int32?
    public var offset: Int64?

    public init(_ code: Code, _ message: String, stage: String? = nil, topic: String? = nil) {
        self.code = code
        self.message = message
        self.stage = stage
        self.topic = topic
    }

    /// `error` as a pipeline error of `stage`: a `PipelineError` keeps its code (and gets the
    /// stage if it had none); any other error is `failed`.
    static func at(stage: String, _ error: any Error) -> PipelineError {
        guard var known = error as? PipelineError else { return PipelineError(.failed, "\(error)", stage: stage) }
        if known.stage == nil { known.stage = stage }
        return known
    }

    /// What the consumer reported, as a pipeline error with its source message: a decoding
    /// failure is `malformed-message` of `input`; a handler's unknown error is `failed` of `handler`.
    init(_ failure: PackageFailure) {
        if let known = failure.error as? PipelineError {
            self = known
        } else if case .decoding = failure.phase {
            self.init(.malformedMessage, "\(failure.error)")
        } else {
            self.init(.failed, "\(failure.error)")
        }
        if stage == nil { stage = failure.phase == .decoding ? "input" : "handler" }
        topic = failure.topic
        partition = failure.partition
        offset = failure.offset
    }

    public var description: String {
        var place: [String] = []
        if let stage { place.append("stage \(stage)") }
        if let topic {
            let partition = partition.map { "[\($0)]" } ?? ""
            place.append("\(topic)\(partition)" + (offset.map { "@\($0)" } ?? ""))
        }
        return (place.isEmpty ? "" : place.joined(separator: ", ") + ": ") + "\(message) (\(code.rawValue))"
    }
}
