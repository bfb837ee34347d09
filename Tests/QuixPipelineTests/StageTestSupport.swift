import Foundation
@testable import QuixPipeline
import QuixStreams

// Helpers of the stage tests: stages made as a pipeline file declares them, frames of column x,
// and scratch state directories.

let s: Int64 = 1_000_000_000

/// A new, empty state directory.
func scratchDirectory() throws -> String {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("stateful-stage-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url.path
}

func remove(_ directory: String) {
    try? FileManager.default.removeItem(atPath: directory)
}

/// What stage `stage` sees of `stream` in `local`.
func makeContext(_ local: LocalState, stream: String = "A", stage: String = "s") -> StageContext {
    StageContext(pipeline: "p", stage: stage, streamID: stream, state: { store in local.stream(stream, store: store) }, emitted: EmittedEffects())
}

/// The stage a pipeline file declares with `uses` and these scalar options.
func make(_ uses: String, _ options: [String: String]) throws -> any Stage {
    try make(uses, options.mapValues { ConfigValue(.scalar($0), line: 1, column: 1) })
}

func make(_ uses: String, _ options: [String: ConfigValue]) throws -> any Stage {
    try StageRegistry.builtIn.make(Pipeline.Stage(id: "s", uses: uses, options: options), file: "p.yaml", path: "spec.stages[0]")
}

/// A scalar option written at this line, column 11.
func value(_ text: String, _ line: Int) -> ConfigValue { ConfigValue(.scalar(text), line: line, column: 11) }

func list(_ items: [String]) -> ConfigValue {
    ConfigValue(.list(items.map { ConfigValue(.scalar($0), line: 1, column: 1) }), line: 1, column: 1)
}

/// A frame of rows at these seconds (after `base` ns), with column x.
func frame(_ seconds: [Int64], _ x: [Double?], base: Int64 = 0) -> TimeseriesFrame {
    var frame = TimeseriesFrame(timestamps: seconds.map { base + $0 * s })
    frame["x"] = NumericColumn(x)
    return frame
}

func cells(_ frame: TimeseriesFrame, _ name: String) -> [Double?] {
    frame[name].map { Array($0) } ?? []
}

func cells(_ frames: [TimeseriesFrame], _ name: String) -> [Double?] {
    frames.flatMap { cells($0, name) }
}
