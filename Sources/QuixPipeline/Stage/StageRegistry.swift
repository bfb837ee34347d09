/// An option a stage takes in its `with:` mapping, as `quixd stages` lists it.
public struct StageOption: Sendable, Hashable {
    public var name: String
    /// What it takes, in words: "expression", "duration (10s) or row count", "list of names".
    public var type: String
    public var required: Bool
    public var summary: String
    /// The value used when it is not given.
    public var defaultValue: String?

    public init(_ name: String, _ type: String, required: Bool = false, default defaultValue: String? = nil, _ summary: String) {
        self.name = name
        self.type = type
        self.required = required
        self.summary = summary
        self.defaultValue = defaultValue
    }
}

/// A stage quixd can run: its name for `uses:`, its options, and how to make it from them.
public struct StageDescriptor: Sendable {
    public var name: String
    public var summary: String
    public var options: [StageOption]
    /// Whether it keeps per-stream state (the pipeline then needs a state directory).
    public var isStateful: Bool
    /// The options that decide what its stored state means (with `ttl`): a change of one makes
    /// the state kept so far incompatible (`StateShape`).
    public var stateShapedBy: [String]
    /// Makes the stage; a mistake in the options is recorded in `options` (and nil returned).
    public var make: @Sendable (inout StageOptions) -> (any Stage)?

    /// - Parameter stateShapedBy: for a stateful stage, the options that shape its state; nil:
    ///   every option (the safe choice for a stage that does not say).
    public init(
        name: String, summary: String, options: [StageOption], isStateful: Bool = false, stateShapedBy: [String]? = nil,
        make: @escaping @Sendable (inout StageOptions) -> (any Stage)?
    ) {
        self.name = name
        self.summary = summary
        // Every stateful stage takes a ttl; the registry applies it (`ExpiringStage`).
        self.options = isStateful ? options + [Self.ttlOption] : options
        self.isStateful = isStateful
        self.stateShapedBy = isStateful ? (stateShapedBy ?? options.map(\.name)) + [Self.ttlOption.name] : []
        self.make = make
    }
}

extension StageDescriptor {
    static let ttlOption = StageOption(
        "ttl", "duration", "remove a stream's state in this stage when no row of it reached the stage for this long (data time); default: kept")
}

/// The stages compiled into quixd, by name: the built-in ones and those of stage targets
/// (`Sources/Stages/*`), which the quixd executable adds.
public struct StageRegistry: Sendable {
    public private(set) var descriptors: [StageDescriptor]

    public init(_ descriptors: [StageDescriptor]) {
        self.descriptors = []
        for descriptor in descriptors { register(descriptor) }
    }

    /// The stages of this target.
    public static let builtIn = StageRegistry([
        FilterStage.descriptor, ComputeStage.descriptor, SelectStage.descriptor, DropStage.descriptor, RenameStage.descriptor,
        RollingStage.descriptor, WindowStage.descriptor, CumulativeStage.descriptor, EventStage.descriptor, ThrottleStage.descriptor,
        DedupStage.descriptor, LookupStage.descriptor, JoinStage.descriptor,
    ])

    /// Adds a stage; a later one with the same name replaces the earlier.
    public mutating func register(_ descriptor: StageDescriptor) {
        descriptors.removeAll { $0.name == descriptor.name }
        descriptors.append(descriptor)
    }

    public func registering(_ more: [StageDescriptor]) -> StageRegistry {
        var registry = self
        for descriptor in more { registry.register(descriptor) }
        return registry
    }

    public var names: [String] { descriptors.map(\.name) }

    public subscript(name: String) -> StageDescriptor? { descriptors.first { $0.name == name } }

    /// Makes the stage a pipeline file declares, checking its options against the stage's
    /// schema (unknown and missing ones) and the stage's own checks. `path` is the stage's key
    /// path (`spec.stages[1]`) for errors.
    public func make(_ stage: Pipeline.Stage, file: String, path: String) throws(ConfigErrors) -> any Stage {
        var options = StageOptions(stage.options, file: file, path: "\(path).with", line: stage.line, column: stage.column)
        guard let descriptor = self[stage.uses] else {
            throw ConfigErrors(errors: [
                ConfigError(file: file, line: stage.line, column: stage.column, keyPath: "\(path).uses", message: "no stage named \"\(stage.uses)\"")
            ])
        }
        let statelessTTL = !descriptor.isStateful && options.values["ttl"] != nil
        options.check(against: descriptor.options + (statelessTTL ? [StageDescriptor.ttlOption] : []), stage: descriptor.name)
        if statelessTTL { options.fail("ttl", "stage \(descriptor.name) keeps no state, so it has none to expire") }
        var made = options.errors.isEmpty ? descriptor.make(&options) : nil
        if descriptor.isStateful, options.values["ttl"] != nil, let inner = made {
            made = StageTime.positive(&options, "ttl").map { ExpiringStage(inner: inner, ttl: $0) }
        }
        guard options.errors.isEmpty, let made else {
            throw ConfigErrors(errors: options.errors.isEmpty ? [options.error("", "the stage could not be made from these options")] : options.errors)
        }
        return made
    }
}
