import QuixKafka
import QuixProtocol

/// Where a consumer starts when its group has no committed offset (0.5's `AutoOffsetReset`).
public enum AutoOffsetReset: Sendable, Hashable {
    case earliest, latest
}

/// When a topic consumer commits the offsets of processed packages.
public struct CommitOptions: Sendable, Hashable {
    /// Commit once this many packages have been processed since the last commit.
    public var everyPackages: Int?
    /// Commit at least this often while packages are processed.
    public var interval: Duration?

    public init(everyPackages: Int? = 5_000, interval: Duration? = .seconds(5)) {
        self.everyPackages = everyPackages
        self.interval = interval
    }

    /// Only `TopicConsumer.commit()` commits.
    public static let manual = CommitOptions(everyPackages: nil, interval: nil)
}

/// A package that could not be decoded, or whose handler threw: what it was and why.
public struct PackageFailure: Sendable {
    public var topic: String
    public var partition: Int32
    /// The offset of its first message (of its first part, for a split package).
    public var offset: Int64
    public var key: [UInt8]?
    /// The package's bytes (merged, for a split package).
    public var value: [UInt8]
    public var timestampMilliseconds: Int64?
    public var streamID: String
    public var error: any Error
    /// Where it failed.
    public var phase: Phase

    public enum Phase: Sendable, Equatable, CustomStringConvertible {
        /// The package is not a Quix package the consumer can read.
        case decoding
        /// A handler threw; the words say which (`a handler of stream car-1`).
        case handling(String)

        public var description: String {
            switch self {
            case .decoding: "decoding"
            case .handling(let handler): handler
            }
        }
    }
}

/// What a topic consumer does after a package failed.
public enum PackageDisposition: Sendable {
    /// Count it as processed and go on.
    case skip
    /// Stop `run()` before it: what came before is committed, it and what follows are not.
    case stop
}

/// `TopicConsumer.run()` stopped at a package, as its failure handler asked.
public struct ConsumerStoppedAtFailure: Error, CustomStringConvertible {
    public var failure: PackageFailure

    public var description: String {
        "stopped at \(failure.topic)[\(failure.partition)] offset \(failure.offset): \(failure.phase): \(failure.error)"
    }
}

/// Turns a Kafka message's value into what a stream receives (the Quix format by default).
public typealias MessageDecoder = @Sendable (_ value: ArraySlice<UInt8>, _ timestampMilliseconds: Int64?) throws -> DecodedMessage
