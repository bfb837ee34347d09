import Foundation
import QuixPipeline
import QuixStreams
import Testing

/// Makes a stage from `uses` and `with` options written as text, as a pipeline file gives them.
private func stage(_ uses: String, _ options: [String: ConfigValue.Kind]) throws(ConfigErrors) -> any Stage {
    try StageRegistry.builtIn.make(
        Pipeline.Stage(id: "s", uses: uses, options: options.mapValues { ConfigValue($0, line: 3, column: 7) }, line: 2, column: 7), file: "p.yaml",
        path: "spec.stages[0]")
}

private func context(_ stream: String = "car-1", _ emitted: EmittedEffects = EmittedEffects()) -> StageContext {
    StageContext(pipeline: "p", stage: "s", streamID: stream, state: nil, emitted: emitted)
}

/// Rows at 0, 1, 2 and 3 s: speed 90, 135, missing, 140; gear text; a tag.
private func sample() -> TimeseriesFrame {
    var frame = TimeseriesFrame(timestamps: [0, 1_000_000_000, 2_000_000_000, 3_000_000_000])
    frame["speed"] = [90, 135, nil, 140]
    frame["rpm"] = [2_000, 3_000, 3_100, 3_200]
    frame.setStrings("driver", ["ana", "ana", "bo", "bo"])
    frame.setTags("lap", ["1", "1", "2", "2"])
    return frame
}

@Suite("Row and column stages")
struct RowStageTests {
    @Test("filter keeps the rows where its expression holds; a missing cell never matches")
    func filter() throws {
        let result = try stage("filter", ["where": .scalar("speed > 100 and driver == 'bo' or rpm < 2500")]).process(sample(), context())
        #expect(result.timestamps == [0, 3_000_000_000])
        #expect(result["speed"] == [90, 140] && result.tags["lap"] == ["1", "2"])
    }

    @Test("compute adds a column row by row and replaces one of the same name")
    func compute() throws {
        let added = try stage("compute", ["column": .scalar("kmPerRev"), "expression": .scalar("speed / rpm * 1000")]).process(sample(), context())
        #expect(added["kmPerRev"] == [45, 45, nil, 43.75])
        let replaced = try stage("compute", ["column": .scalar("rpm"), "expression": .scalar("round(rpm / 1000, 1)")]).process(sample(), context())
        #expect(replaced["rpm"] == [2, 3, 3.1, 3.2] && replaced.numeric.keys.elementsEqual(["speed", "rpm"]))
    }

    @Test("select, drop and rename change columns and, with them, the parameter definitions")
    func columns() throws {
        let definitions = ParameterDefinitions(
            parameterGroups: [ParameterGroup(name: "engine", parameters: [ParameterDefinition(id: "rpm")])],
            parameters: [ParameterDefinition(id: "speed", unit: "km/h")])
        let select = try stage("select", ["columns": .list([ConfigValue(.scalar("speed"), line: 3, column: 9)])])
        let selected = try select.process(sample(), context())
        #expect(Array(selected.numeric.keys) == ["speed"] && selected.strings.isEmpty && selected.tags["lap"] != nil)
        #expect(select.definitions(definitions).parameterGroups.first?.parameters.isEmpty == true)

        let drop = try stage("drop", ["columns": .scalar("rpm")])
        #expect(Array(try drop.process(sample(), context()).numeric.keys) == ["speed"])
        #expect(drop.definitions(definitions).parameters.map(\.id) == ["speed"])

        let rename = try stage("rename", ["columns": .map(["speed": ConfigValue(.scalar("speed_kmh"), line: 3, column: 20), "lap": ConfigValue(.scalar("lap_no"), line: 3, column: 30)])])
        let renamed = try rename.process(sample(), context())
        #expect(Array(renamed.numeric.keys) == ["speed_kmh", "rpm"] && renamed.tags["lap_no"] == ["1", "1", "2", "2"])
        #expect(rename.definitions(definitions).parameters == [ParameterDefinition(id: "speed_kmh", unit: "km/h")])
    }

    @Test("event sends one event per matching row, its value filled from the row, and passes the rows on")
    func event() throws {
        let emitted = EmittedEffects()
        let result = try stage("event", [
            "when": .scalar("speed > 130"), "id": .scalar("speeding"), "value": .scalar("{streamId}: {driver} at {speed} km/h, lap {lap}{nothing}"),
        ]).process(sample(), context("car-9", emitted))
        #expect(result == sample())
        let events = emitted.take().events
        #expect(events.map(\.value) == ["car-9: ana at 135 km/h, lap 1", "car-9: bo at 140 km/h, lap 2"])
        #expect(events.map(\.timestamp) == [1_000_000_000, 3_000_000_000] && events.allSatisfy { $0.id == "speeding" })
    }

    @Test("options are checked at load: each mistake with its position, key path and what was expected")
    func optionErrors() {
        func errors(_ uses: String, _ options: [String: ConfigValue.Kind]) -> [String] {
            do {
                _ = try stage(uses, options)
                return []
            } catch {
                return error.errors.map(\.description)
            }
        }
        #expect(errors("filter", ["where": .scalar("speed + 1")]) == [
            #"p.yaml:3:7: spec.stages[0].with.where: expected a boolean expression, found a number one: "speed + 1""#
        ])
        #expect(errors("compute", ["column": .scalar("x"), "expresion": .scalar("1")]) == [
            #"p.yaml:3:7: spec.stages[0].with.expresion: unknown option; did you mean "expression"?"#,
            #"p.yaml:2:7: spec.stages[0].with.expression: missing; stage compute needs it (its value per row, e.g. abs(gForceX) + abs(gForceY))"#,
        ])
        #expect(errors("compute", ["column": .scalar("x"), "expression": .scalar("sqr(y)")]).first?.hasPrefix(
            #"p.yaml:3:7: spec.stages[0].with.expression: column 1: unknown function "sqr"; did you mean "sqrt"?"#) == true)
        #expect(errors("rename", ["columns": .map(["a": ConfigValue(.scalar("c"), line: 4, column: 1), "b": ConfigValue(.scalar("c"), line: 4, column: 9)])]) == [
            "p.yaml:3:7: spec.stages[0].with.columns: two columns would get the same name"
        ])
    }
}
