import QuixProtocol

/// Builds the parameter-definitions tree the way the 0.5 producer does: definitions added at
/// the root location `/` go to `parameters`, those under `/a/b` into nested groups `a` > `b`.
struct ParameterDefinitionsTree: Sendable, Hashable {
    private(set) var definitions = ParameterDefinitions()

    mutating func add(_ definition: ParameterDefinition, at location: String) throws(StreamError) {
        let path = try Self.path(location)
        guard !contains(definition.id) else {
            throw StreamError(.invalidDefinition, "parameter \"\(definition.id)\" is defined twice")
        }
        if path.isEmpty {
            definitions.parameters.append(definition)
        } else {
            Self.insert(definition, path: path[...], into: &definitions.parameterGroups)
        }
    }

    mutating func update(_ id: String, _ change: (inout ParameterDefinition) -> Void) {
        func apply(_ list: inout [ParameterDefinition]) -> Bool {
            guard let index = list.firstIndex(where: { $0.id == id }) else { return false }
            change(&list[index])
            return true
        }
        func walk(_ groups: inout [ParameterGroup]) -> Bool {
            for index in groups.indices where apply(&groups[index].parameters) || walk(&groups[index].childGroups) { return true }
            return false
        }
        if !apply(&definitions.parameters) { _ = walk(&definitions.parameterGroups) }
    }

    func contains(_ id: String) -> Bool {
        func walk(_ groups: [ParameterGroup]) -> Bool {
            groups.contains { $0.parameters.contains { $0.id == id } || walk($0.childGroups) }
        }
        return definitions.parameters.contains { $0.id == id } || walk(definitions.parameterGroups)
    }

    private static func insert(_ definition: ParameterDefinition, path: ArraySlice<String>, into groups: inout [ParameterGroup]) {
        let name = path.first!
        let index = groups.firstIndex { $0.name == name } ?? {
            groups.append(ParameterGroup(name: name))
            return groups.count - 1
        }()
        if path.count == 1 {
            groups[index].parameters.append(definition)
        } else {
            insert(definition, path: path.dropFirst(), into: &groups[index].childGroups)
        }
    }

    /// `/a/b` → ["a", "b"]; names may not contain a backslash.
    static func path(_ location: String) throws(StreamError) -> [String] {
        let parts = location.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard !parts.contains(where: { $0.contains("\\") }) else {
            throw StreamError(.invalidDefinition, "location \"\(location)\": group names cannot contain '\\'")
        }
        return parts
    }
}

/// The same for event definitions.
struct EventDefinitionsTree: Sendable, Hashable {
    private(set) var definitions = EventDefinitions()

    mutating func add(_ definition: EventDefinition, at location: String) throws(StreamError) {
        let path = try ParameterDefinitionsTree.path(location)
        guard !contains(definition.id) else { throw StreamError(.invalidDefinition, "event \"\(definition.id)\" is defined twice") }
        if path.isEmpty {
            definitions.events.append(definition)
        } else {
            Self.insert(definition, path: path[...], into: &definitions.eventGroups)
        }
    }

    mutating func update(_ id: String, _ change: (inout EventDefinition) -> Void) {
        func apply(_ list: inout [EventDefinition]) -> Bool {
            guard let index = list.firstIndex(where: { $0.id == id }) else { return false }
            change(&list[index])
            return true
        }
        func walk(_ groups: inout [EventGroup]) -> Bool {
            for index in groups.indices where apply(&groups[index].events) || walk(&groups[index].childGroups) { return true }
            return false
        }
        if !apply(&definitions.events) { _ = walk(&definitions.eventGroups) }
    }

    func contains(_ id: String) -> Bool {
        func walk(_ groups: [EventGroup]) -> Bool { groups.contains { $0.events.contains { $0.id == id } || walk($0.childGroups) } }
        return definitions.events.contains { $0.id == id } || walk(definitions.eventGroups)
    }

    private static func insert(_ definition: EventDefinition, path: ArraySlice<String>, into groups: inout [EventGroup]) {
        let name = path.first!
        let index = groups.firstIndex { $0.name == name } ?? {
            groups.append(EventGroup(name: name))
            return groups.count - 1
        }()
        if path.count == 1 {
            groups[index].events.append(definition)
        } else {
            insert(definition, path: path.dropFirst(), into: &groups[index].childGroups)
        }
    }
}

/// Why a stream operation was refused.
public struct StreamError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        fileprivate let name: String
        public var description: String { name }
        /// The stream was closed; nothing more can be published on it.
        public static let closed = Code(name: "closed")
        /// A stream id that is empty or longer than Kafka keys should be.
        public static let invalidStreamID = Code(name: "invalidStreamID")
        /// A definition or location the format cannot carry.
        public static let invalidDefinition = Code(name: "invalidDefinition")
        /// A parameter written with one value type and then another.
        public static let typeChanged = Code(name: "typeChanged")
        /// The broker did not store messages of the stream.
        public static let deliveryFailed = Code(name: "deliveryFailed")
    }

    public var code: Code
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code): \(detail)" }
}
