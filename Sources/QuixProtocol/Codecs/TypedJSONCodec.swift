import OrderedCollections

/// Codec `JT`: the Newtonsoft.Json form of each model. Writing follows the reference exactly
/// (member order, omitted defaults, number format); reading is as tolerant as the reference
/// (any member order, case-insensitive names, unknown members skipped, enum names or numbers).
enum TypedJSONCodec {
    // MARK: Encoding

    static func encode(_ model: QuixModel) -> [UInt8] {
        var writer = JSONWriter()
        switch model {
        case .streamProperties(let properties): write(properties, to: &writer)
        case .timeseries(let data): write(data, to: &writer)
        case .parameterDefinitions(let definitions): write(definitions, to: &writer)
        case .eventData(let events): write(events, to: &writer)
        case .eventDefinitions(let definitions): write(definitions, to: &writer)
        case .streamEnd(let type): write(type, to: &writer)
        }
        return writer.bytes
    }

    private static func write(_ properties: StreamProperties, to writer: inout JSONWriter) {
        writer.beginObject()
        if let name = properties.name { writer.key("Name"); writer.string(name) }
        if let location = properties.location { writer.key("Location"); writer.string(location) }
        writer.key("Metadata")
        writeStringMap(properties.metadata, to: &writer)
        writer.key("Parents")
        writer.beginArray()
        for parent in properties.parents { writer.string(parent) }
        writer.endArray()
        if let time = properties.timeOfRecording { writer.key("TimeOfRecording"); writer.string(time) }
        writer.endObject()
    }

    private static func write(_ data: TimeseriesData, to writer: inout JSONWriter) {
        writer.bytes.reserveCapacity(64 + data.rowCount * (24 + 20 * (data.numericValues.count + data.tagValues.count)))
        writer.beginObject()
        if data.epoch != 0 { writer.key("Epoch"); writer.int64(data.epoch) }
        writer.key("Timestamps")
        writer.beginArray()
        for timestamp in data.timestamps { writer.int64(timestamp) }
        writer.endArray()
        writer.key("NumericValues")
        writer.beginObject()
        for (name, column) in data.numericValues {
            writer.key(name)
            writer.beginArray()
            for cell in column { writer.optionalDouble(cell) }
            writer.endArray()
        }
        writer.endObject()
        writer.key("StringValues")
        writeStringColumns(data.stringValues, to: &writer)
        writer.key("BinaryValues")
        writer.beginObject()
        for (name, column) in data.binaryValues {
            writer.key(name)
            writer.beginArray()
            for cell in column {
                if let cell { writer.base64(cell) } else { writer.null() }
            }
            writer.endArray()
        }
        writer.endObject()
        writer.key("TagValues")
        writeStringColumns(data.tagValues, to: &writer)
        writer.endObject()
    }

    private static func write(_ definitions: ParameterDefinitions, to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("ParameterGroups")
        writer.beginArray()
        for group in definitions.parameterGroups { writeGroup(group, members: "Parameters", to: &writer, write) }
        writer.endArray()
        writer.key("Parameters")
        writer.beginArray()
        for parameter in definitions.parameters { write(parameter, to: &writer) }
        writer.endArray()
        writer.endObject()
    }

    /// A group of a definitions tree: `Name`, `Description`, `CustomProperties`, `ChildGroups`,
    /// then its members under `members` (`Parameters` or `Events`).
    private static func writeGroup<Group: DefinitionGroup>(
        _ group: Group, members: StaticString, to writer: inout JSONWriter,
        _ writeMember: (Group.Member, inout JSONWriter) -> Void
    ) {
        writer.beginObject()
        writer.key("Name"); writer.string(group.name)
        if let description = group.description { writer.key("Description"); writer.string(description) }
        if let custom = group.customProperties { writer.key("CustomProperties"); writer.string(custom) }
        writer.key("ChildGroups")
        writer.beginArray()
        for child in group.childGroups { writeGroup(child, members: members, to: &writer, writeMember) }
        writer.endArray()
        writer.key(members)
        writer.beginArray()
        for member in group.members { writeMember(member, &writer) }
        writer.endArray()
        writer.endObject()
    }

    private static func write(_ parameter: ParameterDefinition, to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("Id"); writer.string(parameter.id)
        if let name = parameter.name { writer.key("Name"); writer.string(name) }
        if let description = parameter.description { writer.key("Description"); writer.string(description) }
        if let minimum = parameter.minimumValue { writer.key("MinimumValue"); writer.double(minimum) }
        if let maximum = parameter.maximumValue { writer.key("MaximumValue"); writer.double(maximum) }
        if let unit = parameter.unit { writer.key("Unit"); writer.string(unit) }
        if let format = parameter.format { writer.key("Format"); writer.string(format) }
        if let custom = parameter.customProperties { writer.key("CustomProperties"); writer.string(custom) }
        writer.endObject()
    }

    private static func write(_ events: [EventData], to writer: inout JSONWriter) {
        writer.beginArray()
        for event in events {
            writer.beginObject()
            if event.timestamp != 0 { writer.key("Timestamp"); writer.int64(event.timestamp) }
            writer.key("Tags")
            writeStringMap(event.tags, to: &writer)
            writer.key("Id"); writer.string(event.id)
            writer.key("Value"); writer.string(event.value)
            writer.endObject()
        }
        writer.endArray()
    }

    private static func write(_ definitions: EventDefinitions, to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("EventGroups")
        writer.beginArray()
        for group in definitions.eventGroups { writeGroup(group, members: "Events", to: &writer, write) }
        writer.endArray()
        writer.key("Events")
        writer.beginArray()
        for event in definitions.events { write(event, to: &writer) }
        writer.endArray()
        writer.endObject()
    }

    private static func write(_ event: EventDefinition, to writer: inout JSONWriter) {
        writer.beginObject()
        writer.key("Id"); writer.string(event.id)
        if let name = event.name { writer.key("Name"); writer.string(name) }
        if let description = event.description { writer.key("Description"); writer.string(description) }
        if let custom = event.customProperties { writer.key("CustomProperties"); writer.string(custom) }
        if let level = event.level, level != .trace { writer.key("Level"); writer.string(level.rawValue) }  // Trace is .NET's default
        writer.endObject()
    }

    private static func write(_ type: StreamEndType, to writer: inout JSONWriter) {
        writer.beginObject()
        if type != .closed { writer.key("StreamEndType"); writer.string(type.rawValue) }
        writer.endObject()
    }

    private static func writeStringMap(_ map: OrderedDictionary<String, String>, to writer: inout JSONWriter) {
        writer.beginObject()
        for (key, value) in map {
            writer.key(key)
            writer.string(value)
        }
        writer.endObject()
    }

    private static func writeStringColumns(_ columns: OrderedDictionary<String, [String?]>, to writer: inout JSONWriter) {
        writer.beginObject()
        for (name, column) in columns {
            writer.key(name)
            writer.beginArray()
            for cell in column { writer.optionalString(cell) }
            writer.endArray()
        }
        writer.endObject()
    }

    // MARK: Decoding

    static func decodeStreamProperties(_ payload: ArraySlice<UInt8>) throws(QuixProtocolError) -> StreamProperties {
        return try JSONReader.read(payload) { reader throws(QuixProtocolError) in
            var properties = StreamProperties()
            try reader.readObject { reader, member throws(QuixProtocolError) in
                if member.equalsIgnoringCase("Name") {
                    properties.name = try reader.readOptionalString()
                } else if member.equalsIgnoringCase("Location") {
                    properties.location = try reader.readOptionalString()
                } else if member.equalsIgnoringCase("Metadata") {
                    properties.metadata = try readStringMap(&reader)
                } else if member.equalsIgnoringCase("Parents") {
                    if try !reader.readNullIfPresent() {
                        try reader.readArray { reader throws(QuixProtocolError) in properties.parents.append(try reader.readString()) }
                    }
                } else if member.equalsIgnoringCase("TimeOfRecording") {
                    properties.timeOfRecording = try reader.readOptionalString()
                } else {
                    try reader.skipValue()
                }
            }
            try reader.expectEnd()
            return properties
        }
    }

    static func decodeTimeseries(_ payload: ArraySlice<UInt8>) throws(QuixProtocolError) -> TimeseriesData {
        return try JSONReader.read(payload) { reader throws(QuixProtocolError) in
            var data = TimeseriesData()
            var sawTimestamps = false
            try reader.readObject { reader, member throws(QuixProtocolError) in
                if member.equalsIgnoringCase("Epoch") {
                    data.epoch = try reader.readInt64()
                } else if member.equalsIgnoringCase("Timestamps") {
                    sawTimestamps = true
                    try reader.readArray { reader throws(QuixProtocolError) in data.timestamps.append(try reader.readInt64()) }
                } else if member.equalsIgnoringCase("NumericValues") {
                    try readColumns(&reader, into: &data.numericValues, rows: data.timestamps.count) { reader throws(QuixProtocolError) in try reader.readOptionalDouble() }
                } else if member.equalsIgnoringCase("StringValues") {
                    try readColumns(&reader, into: &data.stringValues, rows: data.timestamps.count) { reader throws(QuixProtocolError) in try reader.readOptionalString() }
                } else if member.equalsIgnoringCase("BinaryValues") {
                    try readColumns(&reader, into: &data.binaryValues, rows: data.timestamps.count) { reader throws(QuixProtocolError) in
                        if try reader.readNullIfPresent() { return nil }
                        let start = reader.position
                        let text = Array(try reader.readString().utf8)
                        return try Base64.decode(text[...], offset: start + 1 - payload.startIndex)
                    }
                } else if member.equalsIgnoringCase("TagValues") {
                    try readColumns(&reader, into: &data.tagValues, rows: data.timestamps.count) { reader throws(QuixProtocolError) in try reader.readOptionalString() }
                } else {
                    try reader.skipValue()
                }
            }
            try reader.expectEnd()
            guard sawTimestamps else { throw QuixProtocolError(.missingMember, "timeseries data without Timestamps") }
            try data.validate()
            return data
        }
    }

    static func decodeParameterDefinitions(_ payload: ArraySlice<UInt8>) throws(QuixProtocolError) -> ParameterDefinitions {
        return try JSONReader.read(payload) { reader throws(QuixProtocolError) in
            var definitions = ParameterDefinitions()
            try reader.readObject { reader, member throws(QuixProtocolError) in
                if member.equalsIgnoringCase("ParameterGroups") {
                    definitions.parameterGroups = try readList(&reader) { reader throws(QuixProtocolError) in
                    try readGroup(&reader, members: "Parameters", readParameterDefinition)
                }
                } else if member.equalsIgnoringCase("Parameters") {
                    definitions.parameters = try readList(&reader, readParameterDefinition)
                } else {
                    try reader.skipValue()
                }
            }
            try reader.expectEnd()
            return definitions
        }
    }

    static func decodeEventData(_ payload: ArraySlice<UInt8>) throws(QuixProtocolError) -> [EventData] {
        return try JSONReader.read(payload) { reader throws(QuixProtocolError) in
            var events: [EventData] = []
            try reader.readArray { reader throws(QuixProtocolError) in
                var event = EventData(id: "", timestamp: 0, value: "")
                var sawTags = false
                let start = reader.position
                try reader.readObject { reader, member throws(QuixProtocolError) in
                    if member.equalsIgnoringCase("Timestamp") {
                        event.timestamp = try reader.readInt64()
                    } else if member.equalsIgnoringCase("Tags") {
                        if try !reader.readNullIfPresent() {
                            event.tags = try readStringMap(&reader)
                            sawTags = true
                        }
                    } else if member.equalsIgnoringCase("Id") {
                        event.id = try reader.readOptionalString() ?? ""
                    } else if member.equalsIgnoringCase("Value") {
                        event.value = try reader.readOptionalString() ?? ""
                    } else {
                        try reader.skipValue()
                    }
                }
                // The reference consumer loses such an event (ArgumentNullException); say so instead.
                guard sawTags else {
                    throw QuixProtocolError(.missingMember, "an event without Tags", at: start - payload.startIndex)
                }
                events.append(event)
            }
            try reader.expectEnd()
            return events
        }
    }

    static func decodeEventDefinitions(_ payload: ArraySlice<UInt8>) throws(QuixProtocolError) -> EventDefinitions {
        return try JSONReader.read(payload) { reader throws(QuixProtocolError) in
            var definitions = EventDefinitions()
            try reader.readObject { reader, member throws(QuixProtocolError) in
                if member.equalsIgnoringCase("EventGroups") {
                    definitions.eventGroups = try readList(&reader) { reader throws(QuixProtocolError) in
                    try readGroup(&reader, members: "Events", readEventDefinition)
                }
                } else if member.equalsIgnoringCase("Events") {
                    definitions.events = try readList(&reader, readEventDefinition)
                } else {
                    try reader.skipValue()
                }
            }
            try reader.expectEnd()
            return definitions
        }
    }

    static func decodeStreamEnd(_ payload: ArraySlice<UInt8>) throws(QuixProtocolError) -> StreamEndType {
        return try JSONReader.read(payload) { reader throws(QuixProtocolError) in
            var type = StreamEndType.closed
            try reader.readObject { reader, member throws(QuixProtocolError) in
                if member.equalsIgnoringCase("StreamEndType") {
                    type = try readEnum(&reader, StreamEndType.self)
                } else {
                    try reader.skipValue()
                }
            }
            try reader.expectEnd()
            return type
        }
    }

    // MARK: Decoding helpers

    private static func readStringMap(_ reader: inout JSONReader) throws(QuixProtocolError) -> OrderedDictionary<String, String> {
        var map: OrderedDictionary<String, String> = [:]
        if try reader.readNullIfPresent() { return map }
        try reader.readObject { reader, key throws(QuixProtocolError) in map[key] = try reader.readOptionalString() ?? "" }
        return map
    }

    /// Reads `{name: [cells]}`; `rows` (the timestamps read so far, usually all) sizes the columns.
    /// The map is built once at the end, its hash table sized up front.
    @inline(__always)
    private static func readColumns<Cell>(
        _ reader: inout JSONReader, into columns: inout OrderedDictionary<String, [Cell?]>, rows: Int,
        _ readCell: (inout JSONReader) throws(QuixProtocolError) -> Cell?
    ) throws(QuixProtocolError) {
        if try reader.readNullIfPresent() { return }
        var names: [String] = []
        var values: [[Cell?]] = []
        try reader.readObject { reader, name throws(QuixProtocolError) in
            var column: [Cell?] = []
            column.reserveCapacity(rows)
            if try !reader.readNullIfPresent() {
                try reader.readArray { reader throws(QuixProtocolError) in column.append(try readCell(&reader)) }
            }
            names.append(name)
            values.append(column)
        }
        var keys = OrderedSet<String>(minimumCapacity: names.count)
        var unique: [[Cell?]] = []
        unique.reserveCapacity(values.count)
        for (name, column) in zip(names, values) {
            let (inserted, index) = keys.append(name)
            if inserted { unique.append(column) } else { unique[index] = column }  // a repeated name: the later wins
        }
        columns = OrderedDictionary(uncheckedUniqueKeys: keys, values: unique)
    }

    private static func readList<Element>(
        _ reader: inout JSONReader, _ readElement: (inout JSONReader) throws(QuixProtocolError) -> Element
    ) throws(QuixProtocolError) -> [Element] {
        var list: [Element] = []
        if try reader.readNullIfPresent() { return list }
        try reader.readArray { reader throws(QuixProtocolError) in list.append(try readElement(&reader)) }
        return list
    }

    private static func readParameterDefinition(_ reader: inout JSONReader) throws(QuixProtocolError) -> ParameterDefinition {
        var definition = ParameterDefinition(id: "")
        try reader.readObject { reader, member throws(QuixProtocolError) in
            if member.equalsIgnoringCase("Id") {
                definition.id = try reader.readOptionalString() ?? ""
            } else if member.equalsIgnoringCase("Name") {
                definition.name = try reader.readOptionalString()
            } else if member.equalsIgnoringCase("Description") {
                definition.description = try reader.readOptionalString()
            } else if member.equalsIgnoringCase("MinimumValue") {
                definition.minimumValue = try reader.readOptionalDouble()
            } else if member.equalsIgnoringCase("MaximumValue") {
                definition.maximumValue = try reader.readOptionalDouble()
            } else if member.equalsIgnoringCase("Unit") {
                definition.unit = try reader.readOptionalString()
            } else if member.equalsIgnoringCase("Format") {
                definition.format = try reader.readOptionalString()
            } else if member.equalsIgnoringCase("CustomProperties") {
                definition.customProperties = try reader.readOptionalString()
            } else {
                try reader.skipValue()
            }
        }
        return definition
    }

    /// A group of a definitions tree, read in any member order.
    private static func readGroup<Group: DefinitionGroup>(
        _ reader: inout JSONReader, members: StaticString,
        _ readMember: (inout JSONReader) throws(QuixProtocolError) -> Group.Member
    ) throws(QuixProtocolError) -> Group {
        var group = Group(name: "")
        try reader.readObject { reader, member throws(QuixProtocolError) in
            if member.equalsIgnoringCase("Name") {
                group.name = try reader.readOptionalString() ?? ""
            } else if member.equalsIgnoringCase("Description") {
                group.description = try reader.readOptionalString()
            } else if member.equalsIgnoringCase("CustomProperties") {
                group.customProperties = try reader.readOptionalString()
            } else if member.equalsIgnoringCase("ChildGroups") {
                group.childGroups = try readList(&reader) { reader throws(QuixProtocolError) in
                    try readGroup(&reader, members: members, readMember)
                }
            } else if member.equalsIgnoringCase(members) {
                group.members = try readList(&reader, readMember)
            } else {
                try reader.skipValue()
            }
        }
        return group
    }

    private static func readEventDefinition(_ reader: inout JSONReader) throws(QuixProtocolError) -> EventDefinition {
        var definition = EventDefinition(id: "")
        try reader.readObject { reader, member throws(QuixProtocolError) in
            if member.equalsIgnoringCase("Id") {
                definition.id = try reader.readOptionalString() ?? ""
            } else if member.equalsIgnoringCase("Name") {
                definition.name = try reader.readOptionalString()
            } else if member.equalsIgnoringCase("Description") {
                definition.description = try reader.readOptionalString()
            } else if member.equalsIgnoringCase("CustomProperties") {
                definition.customProperties = try reader.readOptionalString()
            } else if member.equalsIgnoringCase("Level") {
                definition.level = try readEnum(&reader, EventLevel.self)
            } else {
                try reader.skipValue()
            }
        }
        return definition
    }

    /// An enum written as its name (any case) or its position.
    private static func readEnum<E: RawRepresentable & CaseIterable>(_ reader: inout JSONReader, _: E.Type) throws(QuixProtocolError) -> E
    where E.RawValue == String {
        let start = reader.position
        if try reader.peekKind() == .string {
            let name = try reader.readString()
            guard let value = E.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else {
                throw QuixProtocolError(.unknownEnumValue, "\"\(name.prefix(40))\" is no \(E.self)", at: start)
            }
            return value
        }
        let number = try reader.readInt64()
        let cases = Array(E.allCases)
        guard number >= 0, number < cases.count else {
            throw QuixProtocolError(.unknownEnumValue, "\(number) is no \(E.self)", at: start)
        }
        return cases[Int(number)]
    }
}
