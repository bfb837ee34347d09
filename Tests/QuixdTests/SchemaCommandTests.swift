import Foundation
import Testing

@Suite("quixd schema")
struct SchemaCommandTests {
    @Test("every example pipeline, config and tests file of the repository is valid by the schemas quixd schema prints")
    func examplesAreValid() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("quixd-schema-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var schemas: [String] = []
        for file in ["pipeline", "config", "tests"] {
            let printed = try await runQuixd(["schema", file])
            #expect(printed.status == 0, "\(printed.error)")
            #expect(printed.output.contains(#""$schema" : "https://json-schema.org/draft/2020-12/schema""#))
            schemas.append("\(directory)/\(file).schema.json")
            try printed.output.write(toFile: schemas.last!, atomically: true, encoding: .utf8)
        }
        let examples = try FileManager.default.contentsOfDirectory(atPath: repository.appendingPathComponent("pipelines").path)
            .filter { $0.hasSuffix(".yaml") }.sorted().map { "pipelines/\($0)" }
        let configs = ["deploy/docker/quixd.yaml", "deploy/test/quixd.yaml", "packaging/deb/quixd.yaml", "deploy/kubernetes/configmap.yaml"]
        #expect(examples.count >= 8)
        let result = try await runProcess(
            repository.appendingPathComponent(".venv-interop/bin/python"),
            [repository.appendingPathComponent("Tests/Schema/validate.py").path] + schemas + (examples + configs).map { repository.appendingPathComponent($0).path })
        #expect(result.status == 0, "\(result.error)")
        let lines = result.output.split(separator: "\n")
        #expect(lines.count == examples.count + configs.count + 1, "the ConfigMap holds a config and a pipeline: \(result.output)")
        #expect(lines.allSatisfy { $0.hasPrefix("ok ") }, "\(result.output)")
    }
}
