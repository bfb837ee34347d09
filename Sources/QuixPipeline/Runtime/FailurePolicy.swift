import Foundation
import Logging
import QuixStreams
import Synchronization

/// A pipeline's `onError` policy for messages it cannot decode or process: dead-letter, skip or
/// stop. Dead letters are outputs like any other: sent with the failed message's origin and not
/// waited for; the checkpointer holds the partition's offset until the broker has them, and a
/// dead-letter topic that refuses one stops the pipeline before its offset is committed.
/// Every failure is counted; the log shows the first few per stage and error kind in each
/// interval in full, then how many more there were.
final class FailurePolicy: Sendable {
    private let pipeline: Pipeline
    private let deadLetters: RecordProducer?
    private let metrics: PipelineMetrics?
    private let activity: PipelineActivity?
    private let logger: Logger
    private let limiter = LogLimiter()

    init(pipeline: Pipeline, client: KafkaStreamingClient, metrics: PipelineMetrics?, activity: PipelineActivity? = nil, logger: Logger) throws {
        self.pipeline = pipeline
        self.metrics = metrics
        self.activity = activity
        self.logger = logger
        deadLetters = pipeline.onError.kind == .deadLetter ? try client.recordProducer() : nil
    }

    /// What the consumer does with a message that failed.
    func handle(_ failure: PackageFailure) async -> PackageDisposition {
        let error = PipelineError(failure)
        let stage = error.stage ?? "handler"
        metrics?.recordError(pipeline: pipeline.name, stage: stage)
        let metadata: Logger.Metadata = [
            "stage": "\(stage)", "code": "\(error.code.rawValue)", "error": "\(error.message)", "stream": "\(failure.streamID)",
            "source": "\(failure.topic)[\(failure.partition)]@\(failure.offset)",
        ]
        let kind = "\(stage): \(error.code.rawValue)" + ((failure.error as? QuixProtocolError).map { " \($0.code)" } ?? "")
        func note(_ outcome: String) {
            activity?.failed(
                PipelineStatusReport.Failure(
                    time: Date().timeIntervalSince1970, stage: stage, code: error.code.rawValue, error: error.message, stream: failure.streamID,
                    source: "\(failure.topic)[\(failure.partition)]@\(failure.offset)", outcome: outcome))
        }
        switch pipeline.onError.kind {
        case .skip:
            metrics?.recordSkipped(pipeline: pipeline.name)
            note("skipped")
            limiter.log(kind, logger) { $0.warning("message skipped", metadata: metadata) }
            return .skip
        case .stop:
            logger.error("pipeline stops at a message it cannot process", metadata: metadata)
            note("stopped")
            return .stop
        case .deadLetter:
            guard let deadLetters, let topic = pipeline.onError.topic else { return .stop }
            let headers = [
                KafkaHeader("quixd-pipeline", Array(pipeline.name.utf8)),
                KafkaHeader("quixd-stage", Array(stage.utf8)),
                KafkaHeader("quixd-error", Array(error.message.utf8)),
                KafkaHeader("quixd-error-code", Array(error.code.rawValue.utf8)),
                KafkaHeader("quixd-source-topic", Array(failure.topic.utf8)),
                KafkaHeader("quixd-source-partition", Array(String(failure.partition).utf8)),
                KafkaHeader("quixd-source-offset", Array(String(failure.offset).utf8)),
            ]
            do {
                try await deadLetters.send(
                    topic: topic, key: failure.key, value: failure.value, headers: headers,
                    timestampMilliseconds: failure.timestampMilliseconds, origin: DeliveryOrigin.current)
            } catch {
                // Not in the dead-letter topic: dropping it would lose it, so the pipeline stops before it.
                logger.error(
                    "the dead-letter topic did not take a message; the pipeline stops before it",
                    metadata: metadata.merging(["dlq-error": "\(error)"]) { a, _ in a })
                return .stop
            }
            metrics?.recordDeadLettered(pipeline: pipeline.name)
            note("dead-lettered")
            limiter.log(kind, logger) { $0.warning("message dead-lettered", metadata: metadata.merging(["topic": "\(topic)"]) { a, _ in a }) }
            return .skip
        }
    }

    /// Waits for the dead letters' acknowledgements and stops.
    func close() async {
        limiter.flush(logger)
        await deadLetters?.close()
    }
}

/// Logs the first `limit` events of each kind per `interval` in full; then counts them, and says
/// how many were not shown when the interval ends.
final class LogLimiter: Sendable {
    static let limit = 5
    static let interval: Duration = .seconds(10)

    private struct Window {
        var started = ContinuousClock.now
        var shown: [String: Int] = [:]
        var hidden: [String: Int] = [:]
    }

    private let window = Mutex(Window())

    func log(_ kind: String, _ logger: Logger, _ entry: (Logger) -> Void) {
        let (show, ended) = window.withLock { window -> (Bool, [String: Int]) in
            var ended: [String: Int] = [:]
            if ContinuousClock.now - window.started >= Self.interval {
                ended = window.hidden
                window = Window()
            }
            let shown = window.shown[kind, default: 0]
            if shown < Self.limit {
                window.shown[kind] = shown + 1
                return (true, ended)
            }
            window.hidden[kind, default: 0] += 1
            return (false, ended)
        }
        report(ended, logger)
        if show { entry(logger) }
    }

    /// Says how many were not shown so far.
    func flush(_ logger: Logger) {
        report(window.withLock { window in
            defer { window = Window() }
            return window.hidden
        }, logger)
    }

    private func report(_ hidden: [String: Int], _ logger: Logger) {
        for (kind, count) in hidden.sorted(by: { $0.key < $1.key }) {
            logger.warning(
                "more failures of this kind were not logged one by one (the metrics count each)",
                metadata: ["kind": "\(kind)", "count": "\(count)", "interval": "\(Self.interval)"])
        }
    }
}
