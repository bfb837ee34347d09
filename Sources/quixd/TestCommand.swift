import ArgumentParser
import Foundation
import QuixPipeline

struct Test: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a pipeline's stages on declared input, without a broker, and compare with the expected output and state.",
        discussion: """
            TESTS.yaml defaults to the pipeline file's name with .test.yaml. Prints ok or FAIL per \
            test, with each difference; exits 1 when a test fails, 2 when a file is invalid.
            """)

    @Argument(help: "The pipeline file.") var pipeline: String
    @Argument(help: "The tests file.") var tests: String?

    func run() throws {
        let testsFile = tests ?? (pipeline as NSString).deletingPathExtension + ".test.yaml"
        let loaded: Pipeline
        do {
            loaded = try PipelineLoader.load(file: pipeline, stages: compiledStages)
        } catch {
            for mistake in error.errors { report(mistake.description) }
            throw ExitCode(2)
        }
        let suite: PipelineTestSuite
        do {
            suite = try PipelineTestSuite(file: testsFile)
        } catch {
            for mistake in error.errors { report(mistake.description) }
            throw ExitCode(2)
        }
        let lines: [String]
        let passed: Bool
        do {
            (lines, passed) = try suite.run(loaded, file: pipeline, registry: compiledStages)
        } catch let mistakes as ConfigErrors {
            for mistake in mistakes.errors { report(mistake.description) }
            throw ExitCode(2)
        }
        print(lines.joined(separator: "\n"))
        print(passed ? "\(suite.tests.count) tests passed" : "some of \(suite.tests.count) tests failed")
        if !passed { throw ExitCode(1) }
    }
}
