/// A pipeline file (`kind: Pipeline`, `apiVersion: quixd/v1`): read one topic, run stages per
/// stream, write to one or more routed outputs. See docs/pipelines.md.
public struct Pipeline: Sendable, Hashable {
    public var name: String
    public var input: Input
    public var stages: [Stage]
    /// Compacted topics read in full by every replica, for `lookup` stages, by name.
    public var tables: [Table]
    /// Where rows go: each row to every output whose `when` holds (`spec.output` is a list of one).
    public var outputs: [Output]
    public var delivery: Delivery
    /// How often offsets and state are checkpointed.
    public var checkpointInterval: Duration
    public var changelog: Bool
    /// When a stream's state is removed (besides each stateful stage's own `ttl`).
    public var expiry = StateExpiry()
    public var onError: ErrorPolicy

    public struct Input: Sendable, Hashable {
        public var topic: String
        public var consumerGroup: String
        public var format: DataFormat
        public var startFrom: StartFrom
    }

    /// `spec.tables.<name>`: a topic of rows by key (Kafka Streams' GlobalKTable).
    public struct Table: Sendable, Hashable {
        public enum Key: Sendable, Hashable {
            /// The message key (a Quix stream id).
            case streamID
            /// The value of this field of the row.
            case field(String)
        }

        public var name: String
        public var topic: String
        public var format: DataFormat
        public var key: Key

        public init(name: String, topic: String, format: DataFormat = .json, key: Key = .streamID) {
            self.name = name
            self.topic = topic
            self.format = format
            self.key = key
        }
    }

    public struct Stage: Sendable, Hashable {
        public var id: String
        /// A built-in stage or one compiled in from its own target.
        public var uses: String
        /// The stage's options, checked by the stage itself.
        public var options: [String: ConfigValue]
        /// Where the stage is declared in its file.
        public var line: Int
        public var column: Int

        public init(id: String, uses: String, options: [String: ConfigValue], line: Int = 0, column: Int = 0) {
            self.id = id
            self.uses = uses
            self.options = options
            self.line = line
            self.column = column
        }
    }

    public struct Output: Sendable, Hashable {
        /// Names the output in metrics and in `quixd test` expectations (`main` for `spec.output`).
        public var id: String
        public var topic: String
        public var format: DataFormat
        public var buffer: Buffer
        /// A boolean row expression: the rows this output takes (nil: every row).
        public var when: Expression?
        /// Whether the output takes the events stages pass on.
        public var events: Bool

        public init(id: String = "main", topic: String, format: DataFormat = .quix, buffer: Buffer = Buffer(), when: Expression? = nil, events: Bool = true) {
            self.id = id
            self.topic = topic
            self.format = format
            self.buffer = buffer
            self.when = when
            self.events = events
        }
    }

    /// Output buffering: the 0.5 time-series buffer's conditions.
    public struct Buffer: Sendable, Hashable {
        public var packetSize: Int?
        public var timeSpan: Duration?
        public var timeout: Duration?

        public init(packetSize: Int? = nil, timeSpan: Duration? = nil, timeout: Duration? = nil) {
            self.packetSize = packetSize
            self.timeSpan = timeSpan
            self.timeout = timeout
        }
    }

    /// `spec.state.onStreamEnd` and `spec.state.idle`.
    public struct StateExpiry: Sendable, Hashable {
        public enum OnStreamEnd: String, Sendable, Hashable, CaseIterable {
            case keep, drop
        }

        /// Whether a stream's state is removed when the stream ends (a StreamEnd).
        public var onStreamEnd = OnStreamEnd.keep
        /// A stream's state is removed once its partition's data time is this far past the
        /// stream's last row.
        public var idle: Duration?

        public init(onStreamEnd: OnStreamEnd = .keep, idle: Duration? = nil) {
            self.onStreamEnd = onStreamEnd
            self.idle = idle
        }
    }

    public enum DataFormat: String, Sendable, Hashable, CaseIterable {
        case quix, json, raw
    }

    public enum StartFrom: String, Sendable, Hashable, CaseIterable {
        case earliest, latest
    }

    public enum Delivery: String, Sendable, Hashable, CaseIterable {
        case atLeastOnce = "at-least-once"
        case exactlyOnce = "exactly-once"
    }

    public struct ErrorPolicy: Sendable, Hashable {
        public enum Kind: String, Sendable, Hashable, CaseIterable {
            case deadLetter = "dead-letter", skip, stop
        }

        public var kind: Kind
        /// The dead-letter topic.
        public var topic: String?
    }
}

/// A free-form value of a pipeline file (a stage's options), with where it was written.
public struct ConfigValue: Sendable, Hashable {
    public indirect enum Kind: Sendable, Hashable {
        case scalar(String)
        case list([ConfigValue])
        case map([String: ConfigValue])
    }

    public var kind: Kind
    public var line: Int
    public var column: Int

    public init(_ kind: Kind, line: Int, column: Int) {
        self.kind = kind
        self.line = line
        self.column = column
    }
}
