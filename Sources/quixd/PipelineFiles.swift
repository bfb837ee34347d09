import Foundation
import QuixPipeline

/// The pipeline files quixd runs: found in the paths given, loaded and checked together.
enum PipelineFiles {
    /// The pipeline files named by `sources`: files, and every `.yaml`/`.yml` in directories
    /// (not `.test.yaml` files).
    static func find(_ sources: [String]) -> [String] {
        sources.flatMap { source -> [String] in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory), isDirectory.boolValue else { return [source] }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: source)) ?? []
            return names.filter { ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml")) && !$0.hasSuffix(".test.yaml") }.sorted()
                .map { (source as NSString).appendingPathComponent($0) }
        }
    }

    /// Loads every file; all must be valid and each needs its own consumer group (nothing
    /// starts otherwise).
    static func load(_ files: [String], overrides: [String]) throws(ConfigErrors) -> [(file: String, pipeline: Pipeline)] {
        var loaded: [(String, Pipeline)] = []
        var errors: [ConfigError] = []
        var groups: [String: String] = [:]
        for file in files {
            do {
                let pipeline = try load(file, overrides: overrides)
                if let other = groups.updateValue(file, forKey: pipeline.input.consumerGroup) {
                    errors.append(ConfigError(file: file, line: 0, column: 0, keyPath: "spec.input.consumerGroup", message: "consumer group \"\(pipeline.input.consumerGroup)\" is also used by \(other); each pipeline needs its own"))
                }
                loaded.append((file, pipeline))
            } catch {
                errors += error.errors
            }
        }
        guard errors.isEmpty else { throw ConfigErrors(errors: errors) }
        return loaded
    }

    /// Loads one file with quixd's compiled-in stages.
    static func load(_ file: String, overrides: [String]) throws(ConfigErrors) -> Pipeline {
        try PipelineLoader.load(file: file, overrides: overrides, stages: compiledStages)
    }
}
