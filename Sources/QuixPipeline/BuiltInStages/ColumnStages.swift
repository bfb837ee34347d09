import QuixStreams

/// `select`: keeps only the named columns (tags are always kept).
public struct SelectStage: Stage {
    public let columns: [String]

    public static let descriptor = StageDescriptor(
        name: "select", summary: "Keeps only the named columns; tags are kept.",
        options: [StageOption("columns", "list of names", required: true, "the columns to keep")]
    ) { options in
        options.names("columns").map(SelectStage.init)
    }

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        frame.select(columns)
    }

    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions {
        let kept = Set(columns)
        return definitions.mappingParameters { kept.contains($0.id) ? $0 : nil }
    }
}

/// `drop`: removes the named columns.
public struct DropStage: Stage {
    public let columns: [String]

    public static let descriptor = StageDescriptor(
        name: "drop", summary: "Removes the named columns.",
        options: [StageOption("columns", "list of names", required: true, "the columns to remove")]
    ) { options in
        options.names("columns").map(DropStage.init)
    }

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        frame.dropping(columns)
    }

    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions {
        let dropped = Set(columns)
        return definitions.mappingParameters { dropped.contains($0.id) ? nil : $0 }
    }
}

/// `rename`: gives columns (and tags) new names.
public struct RenameStage: Stage {
    public let names: [String: String]

    public static let descriptor = StageDescriptor(
        name: "rename", summary: "Renames columns and tags.",
        options: [StageOption("columns", "mapping of old: new names", required: true, "e.g. { spd: speed }")]
    ) { options in
        guard let pairs = options.nameMap("columns") else { return nil }
        let targets = pairs.map(\.value)
        if Set(targets).count != targets.count {
            options.fail("columns", "two columns would get the same name")
            return nil
        }
        return RenameStage(names: Dictionary(uniqueKeysWithValues: pairs.map { ($0.key, $0.value) }))
    }

    public func process(_ frame: TimeseriesFrame, _ context: StageContext) throws -> TimeseriesFrame {
        frame.renaming(names)
    }

    public func definitions(_ definitions: ParameterDefinitions) -> ParameterDefinitions {
        definitions.mappingParameters { definition in
            guard let name = names[definition.id] else { return definition }
            var renamed = definition
            renamed.id = name
            return renamed
        }
    }
}

extension ParameterDefinitions {
    /// The definitions with each parameter transformed (nil removes it), groups kept.
    func mappingParameters(_ transform: (ParameterDefinition) -> ParameterDefinition?) -> ParameterDefinitions {
        func map(_ group: ParameterGroup) -> ParameterGroup {
            var group = group
            group.parameters = group.parameters.compactMap(transform)
            group.childGroups = group.childGroups.map(map)
            return group
        }
        return ParameterDefinitions(parameterGroups: parameterGroups.map(map), parameters: parameters.compactMap(transform))
    }

    /// The definitions with `id` defined (at the root, without details) unless it already is: for
    /// a column a stage adds.
    public func adding(_ id: String) -> ParameterDefinitions {
        func defines(_ groups: [ParameterGroup]) -> Bool {
            groups.contains { $0.parameters.contains { $0.id == id } || defines($0.childGroups) }
        }
        guard !parameters.contains(where: { $0.id == id }), !defines(parameterGroups) else { return self }
        var result = self
        result.parameters.append(ParameterDefinition(id: id))
        return result
    }
}
