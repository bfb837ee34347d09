import OrderedCollections

/// Stream properties (`StreamProperties`). Replaces the previous properties entirely on read.
public struct StreamProperties: Sendable, Hashable {
    public var name: String?
    /// A path such as `/vehicles/car-1`.
    public var location: String?
    /// In the order set; written in that order.
    public var metadata: OrderedDictionary<String, String>
    /// Ids of the streams this one derives from.
    public var parents: [String]
    /// ISO-8601 date-time text as sent (the Python producer writes it without a zone).
    public var timeOfRecording: String?

    public init(
        name: String? = nil, location: String? = nil, metadata: OrderedDictionary<String, String> = [:],
        parents: [String] = [], timeOfRecording: String? = nil
    ) {
        self.name = name
        self.location = location
        self.metadata = metadata
        self.parents = parents
        self.timeOfRecording = timeOfRecording
    }
}

/// A columnar batch of time-series rows (`ParameterData`, the C# TimeseriesDataRaw).
/// Row `i` is at `epoch + timestamps[i]` ns since the Unix epoch. Every column has one cell per
/// row; `nil` is "no value at that row". Columns keep their order.
public struct TimeseriesData: Sendable, Hashable {
    public var epoch: Int64
    public var timestamps: [Int64]
    public var numericValues: OrderedDictionary<String, [Double?]>
    public var stringValues: OrderedDictionary<String, [String?]>
    public var binaryValues: OrderedDictionary<String, [[UInt8]?]>
    public var tagValues: OrderedDictionary<String, [String?]>

    public init(
        epoch: Int64 = 0, timestamps: [Int64] = [], numericValues: OrderedDictionary<String, [Double?]> = [:],
        stringValues: OrderedDictionary<String, [String?]> = [:], binaryValues: OrderedDictionary<String, [[UInt8]?]> = [:],
        tagValues: OrderedDictionary<String, [String?]> = [:]
    ) {
        self.epoch = epoch
        self.timestamps = timestamps
        self.numericValues = numericValues
        self.stringValues = stringValues
        self.binaryValues = binaryValues
        self.tagValues = tagValues
    }

    public var rowCount: Int { timestamps.count }

    /// Checks that every column has one cell per row.
    public func validate() throws(QuixProtocolError) {
        func check(_ name: String, _ count: Int) throws(QuixProtocolError) {
            guard count == timestamps.count else {
                throw QuixProtocolError(
                    .inconsistentData, "column \"\(name)\" has \(count) cells for \(timestamps.count) timestamps")
            }
        }
        for (name, column) in numericValues { try check(name, column.count) }
        for (name, column) in stringValues { try check(name, column.count) }
        for (name, column) in binaryValues { try check(name, column.count) }
        for (name, column) in tagValues { try check(name, column.count) }
    }
}

/// One event (an element of `EventData[]`).
public struct EventData: Sendable, Hashable {
    /// ns since the Unix epoch, stream epoch included.
    public var timestamp: Int64
    /// Always written: the Python consumer loses an event without it.
    public var tags: OrderedDictionary<String, String>
    public var id: String
    public var value: String

    public init(id: String, timestamp: Int64, value: String, tags: OrderedDictionary<String, String> = [:]) {
        self.id = id
        self.timestamp = timestamp
        self.value = value
        self.tags = tags
    }
}

/// How a stream ended (`StreamEnd`).
public enum StreamEndType: String, Sendable, Hashable, CaseIterable {
    case closed = "Closed"
    case aborted = "Aborted"
    case terminated = "Terminated"
}

/// Severity of an event definition.
public enum EventLevel: String, Sendable, Hashable, CaseIterable {
    case trace = "Trace"
    case debug = "Debug"
    case information = "Information"
    case warning = "Warning"
    case error = "Error"
    case critical = "Critical"
}

/// A parameter definition: what a time-series column means.
public struct ParameterDefinition: Sendable, Hashable {
    public var id: String
    public var name: String?
    public var description: String?
    public var minimumValue: Double?
    public var maximumValue: Double?
    public var unit: String?
    /// A .NET format string such as `{0:0.0}`.
    public var format: String?
    public var customProperties: String?

    public init(
        id: String, name: String? = nil, description: String? = nil, minimumValue: Double? = nil,
        maximumValue: Double? = nil, unit: String? = nil, format: String? = nil, customProperties: String? = nil
    ) {
        self.id = id
        self.name = name
        self.description = description
        self.minimumValue = minimumValue
        self.maximumValue = maximumValue
        self.unit = unit
        self.format = format
        self.customProperties = customProperties
    }
}

/// A location group of parameter definitions (`/chassis/engine` is group `chassis` > `engine`).
public struct ParameterGroup: Sendable, Hashable {
    public var name: String
    public var description: String?
    public var customProperties: String?
    public var childGroups: [ParameterGroup]
    public var parameters: [ParameterDefinition]

    public init(
        name: String, description: String? = nil, customProperties: String? = nil, childGroups: [ParameterGroup] = [],
        parameters: [ParameterDefinition] = []
    ) {
        self.name = name
        self.description = description
        self.customProperties = customProperties
        self.childGroups = childGroups
        self.parameters = parameters
    }
}

/// A parameter or event definition, as a member of a definitions tree.
public protocol DefinitionMember: Sendable, Hashable {
    var id: String { get }
}

extension ParameterDefinition: DefinitionMember {}
extension EventDefinition: DefinitionMember {}

/// What parameter groups and event groups share: a named node of a definitions tree, with
/// child groups and its own members (parameter or event definitions).
public protocol DefinitionGroup: Sendable, Hashable {
    associatedtype Member: DefinitionMember
    var name: String { get set }
    var description: String? { get set }
    var customProperties: String? { get set }
    var childGroups: [Self] { get set }
    var members: [Member] { get set }
    /// An empty group with this name.
    init(name: String)
}

extension ParameterGroup: DefinitionGroup {
    public init(name: String) { self.init(name: name, description: nil) }

    public var members: [ParameterDefinition] {
        get { parameters }
        set { parameters = newValue }
    }
}

extension EventGroup: DefinitionGroup {
    public init(name: String) { self.init(name: name, description: nil) }

    public var members: [EventDefinition] {
        get { events }
        set { events = newValue }
    }
}

/// The whole tree of a stream's parameter definitions; each message replaces the previous set.
public struct ParameterDefinitions: Sendable, Hashable {
    public var parameterGroups: [ParameterGroup]
    public var parameters: [ParameterDefinition]

    public init(parameterGroups: [ParameterGroup] = [], parameters: [ParameterDefinition] = []) {
        self.parameterGroups = parameterGroups
        self.parameters = parameters
    }
}

/// An event definition.
public struct EventDefinition: Sendable, Hashable {
    public var id: String
    public var name: String?
    public var description: String?
    public var customProperties: String?
    /// As on the wire; `nil` when absent. The reference never writes `.trace` (the .NET
    /// default), and reads an absent level as `.information`: see `effectiveLevel`.
    public var level: EventLevel?

    /// The level the reference consumer reports: an absent level is `.information`.
    public var effectiveLevel: EventLevel { level ?? .information }

    public init(
        id: String, name: String? = nil, description: String? = nil, customProperties: String? = nil,
        level: EventLevel? = nil
    ) {
        self.id = id
        self.name = name
        self.description = description
        self.customProperties = customProperties
        self.level = level
    }
}

public struct EventGroup: Sendable, Hashable {
    public var name: String
    public var description: String?
    public var customProperties: String?
    public var childGroups: [EventGroup]
    public var events: [EventDefinition]

    public init(
        name: String, description: String? = nil, customProperties: String? = nil, childGroups: [EventGroup] = [],
        events: [EventDefinition] = []
    ) {
        self.name = name
        self.description = description
        self.customProperties = customProperties
        self.childGroups = childGroups
        self.events = events
    }
}

public struct EventDefinitions: Sendable, Hashable {
    public var eventGroups: [EventGroup]
    public var events: [EventDefinition]

    public init(eventGroups: [EventGroup] = [], events: [EventDefinition] = []) {
        self.eventGroups = eventGroups
        self.events = events
    }
}

/// One Quix Streams 0.5 model, as a package carries it.
public enum QuixModel: Sendable, Hashable {
    case streamProperties(StreamProperties)
    case timeseries(TimeseriesData)
    case parameterDefinitions(ParameterDefinitions)
    case eventData([EventData])
    case eventDefinitions(EventDefinitions)
    case streamEnd(StreamEndType)

    /// The model key (`K`) this model is written with.
    public var modelKey: String {
        switch self {
        case .streamProperties: ModelKey.streamProperties
        case .timeseries: ModelKey.parameterData
        case .parameterDefinitions: ModelKey.parameterDefinitions
        case .eventData: ModelKey.eventData
        case .eventDefinitions: ModelKey.eventDefinitions
        case .streamEnd: ModelKey.streamEnd
        }
    }
}

/// The model keys (`K`) of the 0.5 format.
public enum ModelKey {
    public static let streamProperties = "StreamProperties"
    public static let parameterData = "ParameterData"
    /// Accepted on read as an alias of `ParameterData`.
    public static let timeseriesData = "TimeseriesData"
    public static let parameterDefinitions = "ParameterDefinitions"
    public static let eventData = "EventData[]"
    public static let eventDefinitions = "EventDefinitions"
    public static let streamEnd = "StreamEnd"
}

/// The codec ids (`C`) of the 0.5 format.
public enum CodecID {
    /// Newtonsoft typed JSON: every model.
    public static let typedJSON = "JT"
    /// Compact delta/run JSON: timeseries only.
    public static let compactJSON = "JT-PaDa-1"
    /// Protobuf: timeseries only, in a binary envelope.
    public static let protobuf = "PB-Pd"
}
