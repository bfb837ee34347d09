@testable import QuixPipeline
import Testing

@Suite("pipeline activity for the status page")
struct PipelineActivityTests {
    @Test("messages in and out become per-second rates, one sample per 10 s, the last 10 minutes kept; failures newest first, 20 kept")
    func ratesAndFailures() {
        let activity = PipelineActivity()
        let start = ContinuousClock.now
        activity.sample(now: start)
        activity.consumed(100)
        activity.produced(50)
        activity.sample(now: start + .seconds(5))  // too soon: no sample
        activity.sample(now: start + .seconds(10))
        activity.consumed(300)
        var report = PipelineStatusReport(name: "p", phase: "running", ready: true, reason: "")
        activity.fill(&report, now: start + .seconds(20))
        #expect(report.inputHistory == [10, 30] && report.outputHistory == [5, 0])
        #expect(report.inputRate == 30 && report.outputRate == 0)
        for minute in 1...70 { activity.sample(now: start + .seconds(20 + 60 * minute)) }
        activity.fill(&report, now: start + .seconds(20 + 60 * 71))
        #expect(report.inputHistory.count == PipelineActivity.samples, "10 minutes of samples")

        for index in 0..<25 {
            activity.failed(
                PipelineStatusReport.Failure(time: Double(index), stage: "s", code: "bad-data", error: "e\(index)", stream: "A", source: "t[0]@\(index)", outcome: "skipped"))
        }
        activity.fill(&report)
        #expect(report.failures.map(\.error) == (5..<25).reversed().map { "e\($0)" })
    }
}
