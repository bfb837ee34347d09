import Foundation
import Testing

@Suite("quixd validate")
struct ValidateCommandTests {
    @Test("exits 0 for valid files and 2 for any invalid one, naming every mistake")
    func exitCodes() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let good = root.appendingPathComponent("pipelines/gforce.yaml").path
        let valid = try await runQuixd(["validate", good])
        #expect(valid.status == 0, "\(valid.error)")
        #expect(valid.output == "\(good): ok (pipeline gforce: telemetry → 3 stages → telemetry-enriched)\n")

        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).yaml")
        try String(contentsOfFile: good, encoding: .utf8).replacingOccurrences(of: "kind: Pipeline", with: "kind: Pipe")
            .replacingOccurrences(of: "format: quix                 # quix", with: "format: qix                  # quix")
            .write(to: bad, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: bad) }
        let invalid = try await runQuixd(["validate", good, bad.path, "/nonexistent/pipeline.yaml"])
        #expect(invalid.status == 2)
        #expect(invalid.error.split(separator: "\n").map(String.init) == [
            #"\#(bad.path):2:7: kind: expected Pipeline, found "Pipe""#,
            #"\#(bad.path):9:13: spec.input.format: expected one of quix | json | raw, found "qix"; did you mean "quix"?"#,
            "/nonexistent/pipeline.yaml: no such file",
        ], "\(invalid.error)")
    }
}
