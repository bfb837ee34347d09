import QuixProtocol

/// Builds a definitions tree the way the 0.5 producer does: definitions added at the root
/// location `/` are root members, those under `/a/b` go into nested groups `a` > `b`. Ids are
/// unique across the tree.
struct DefinitionsTree<Group: DefinitionGroup>: Sendable, Hashable {
    private(set) var root: [Group.Member] = []
    private(set) var groups: [Group] = []

    mutating func add(_ definition: Group.Member, at location: String) throws(StreamError) {
        let path = try Self.path(location)
        guard !contains(definition.id) else {
            throw StreamError(.invalidDefinition, "\"\(definition.id)\" is defined twice")
        }
        if path.isEmpty {
            root.append(definition)
        } else {
            Self.insert(definition, path: path[...], into: &groups)
        }
    }

    func contains(_ id: String) -> Bool {
        func walk(_ groups: [Group]) -> Bool { groups.contains { $0.members.contains { $0.id == id } || walk($0.childGroups) } }
        return root.contains { $0.id == id } || walk(groups)
    }

    private static func insert(_ definition: Group.Member, path: ArraySlice<String>, into groups: inout [Group]) {
        let name = path.first!
        let index = groups.firstIndex { $0.name == name } ?? {
            groups.append(Group(name: name))
            return groups.count - 1
        }()
        if path.count == 1 {
            groups[index].members.append(definition)
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

extension DefinitionsTree<ParameterGroup> {
    var definitions: ParameterDefinitions {
        get { ParameterDefinitions(parameterGroups: groups, parameters: root) }
        set {
            root = newValue.parameters
            groups = newValue.parameterGroups
        }
    }
}

extension DefinitionsTree<EventGroup> {
    var definitions: EventDefinitions {
        get { EventDefinitions(eventGroups: groups, events: root) }
        set {
            root = newValue.events
            groups = newValue.eventGroups
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
