import QuixPipeline
import Testing

/// The lines of `metrics`' exposition, as a set (the registry emits families in no set order).
private func lines(_ metrics: PipelineMetrics) -> Set<String> {
    Set(metrics.exposition().split(separator: "\n").map(String.init))
}

@Suite("PipelineMetrics: the Prometheus text of what the runtime records")
struct PipelineMetricsTests {
    @Test("counters add up per pipeline, topic and partition")
    func counters() {
        let metrics = PipelineMetrics()
        metrics.recordConsumed(pipeline: "gforce", topic: "telemetry", partition: 0, messages: 10, bytes: 1_000)
        metrics.recordConsumed(pipeline: "gforce", topic: "telemetry", partition: 0, messages: 5, bytes: 500)
        metrics.recordConsumed(pipeline: "gforce", topic: "telemetry", partition: 3, messages: 1, bytes: 42)
        metrics.producedRecorder(pipeline: "gforce", topic: "telemetry-enriched")(7, 700)
        metrics.recordRebalance(pipeline: "gforce")
        metrics.recordRebalance(pipeline: "gforce")
        metrics.recordDeadLettered(pipeline: "gforce", count: 3)
        metrics.recordSkipped(pipeline: "gforce")
        metrics.recordError(pipeline: "gforce", stage: "total", count: 2)
        metrics.recordError(pipeline: "gforce", stage: "avg")
        metrics.recordError(pipeline: "gforce", stage: "total")

        let text = lines(metrics)
        for line in [
            "# TYPE quixd_messages_in_total counter",
            #"quixd_messages_in_total{pipeline="gforce",topic="telemetry",partition="0"} 15"#,
            #"quixd_messages_in_total{pipeline="gforce",topic="telemetry",partition="3"} 1"#,
            #"quixd_bytes_in_total{pipeline="gforce",topic="telemetry",partition="0"} 1500"#,
            #"quixd_bytes_in_total{pipeline="gforce",topic="telemetry",partition="3"} 42"#,
            #"quixd_messages_out_total{pipeline="gforce",topic="telemetry-enriched"} 7"#,
            #"quixd_bytes_out_total{pipeline="gforce",topic="telemetry-enriched"} 700"#,
            #"quixd_rebalances_total{pipeline="gforce"} 2"#,
            #"quixd_dead_lettered_total{pipeline="gforce"} 3"#,
            #"quixd_skipped_total{pipeline="gforce"} 1"#,
            "# TYPE quixd_errors_total counter",
            #"quixd_errors_total{pipeline="gforce",stage="total"} 3"#,
            #"quixd_errors_total{pipeline="gforce",stage="avg"} 1"#,
            "# HELP quixd_messages_in_total Messages read from the input topic.",
        ] {
            #expect(text.contains(line), "missing: \(line)")
        }
    }

    @Test("a negative count is ignored, not a trap")
    func negativeCounts() {
        let metrics = PipelineMetrics()
        metrics.recordConsumed(pipeline: "p", topic: "t", partition: 1, messages: 2, bytes: 20)
        metrics.recordConsumed(pipeline: "p", topic: "t", partition: 1, messages: -1, bytes: -5)
        metrics.recordSkipped(pipeline: "p", count: -3)
        let text = lines(metrics)
        #expect(text.contains(#"quixd_messages_in_total{pipeline="p",topic="t",partition="1"} 2"#))
        #expect(text.contains(#"quixd_bytes_in_total{pipeline="p",topic="t",partition="1"} 20"#))
        #expect(text.contains(#"quixd_skipped_total{pipeline="p"} 0"#))
    }

    @Test("processing latency: cumulative buckets from 10 µs to 1 s, sum and count")
    func processingHistogram() {
        let metrics = PipelineMetrics()
        metrics.recordProcessing(pipeline: "gforce", latency: .microseconds(5))
        metrics.recordProcessing(pipeline: "gforce", latencies: [.microseconds(30), .milliseconds(3), .seconds(2)])

        let text = lines(metrics)
        let bucket = { (le: String, count: Int) in #"quixd_processing_seconds_bucket{pipeline="gforce",le="\#(le)"} \#(count)"# }
        for line in [
            "# TYPE quixd_processing_seconds histogram",
            bucket("0.00001", 1),
            bucket("0.000025", 1),
            bucket("0.00005", 2),
            bucket("0.0025", 2),
            bucket("0.005", 3),
            bucket("0.5", 3),
            bucket("1.0", 3),
            bucket("+Inf", 4),
            #"quixd_processing_seconds_sum{pipeline="gforce"} 2.003035"#,
            #"quixd_processing_seconds_count{pipeline="gforce"} 4"#,
        ] {
            #expect(text.contains(line), "missing: \(line)")
        }
        // 16 finite buckets plus +Inf.
        #expect(text.filter { $0.hasPrefix("quixd_processing_seconds_bucket{") }.count == 17)
        #expect(PipelineMetrics.processingBuckets.first == .microseconds(10))
        #expect(PipelineMetrics.processingBuckets.last == .seconds(1))
    }

    @Test("checkpoint duration histogram")
    func checkpointHistogram() {
        let metrics = PipelineMetrics()
        metrics.recordCheckpoint(pipeline: "gforce", duration: .milliseconds(40))
        metrics.recordCheckpoint(pipeline: "gforce", duration: .milliseconds(60))
        let text = lines(metrics)
        for line in [
            "# TYPE quixd_checkpoint_seconds histogram",
            #"quixd_checkpoint_seconds_bucket{pipeline="gforce",le="0.025"} 0"#,
            #"quixd_checkpoint_seconds_bucket{pipeline="gforce",le="0.05"} 1"#,
            #"quixd_checkpoint_seconds_bucket{pipeline="gforce",le="0.1"} 2"#,
            #"quixd_checkpoint_seconds_bucket{pipeline="gforce",le="+Inf"} 2"#,
            #"quixd_checkpoint_seconds_sum{pipeline="gforce"} 0.1"#,
            #"quixd_checkpoint_seconds_count{pipeline="gforce"} 2"#,
        ] {
            #expect(text.contains(line), "missing: \(line)")
        }
    }

    @Test("gauges hold the last value set")
    func gauges() {
        let metrics = PipelineMetrics()
        metrics.setConsumerLag(pipeline: "gforce", topic: "telemetry", partition: 2, lag: 1_200)
        metrics.setConsumerLag(pipeline: "gforce", topic: "telemetry", partition: 2, lag: 17)
        metrics.setConsumerTimeLag(pipeline: "gforce", topic: "telemetry", partition: 2, milliseconds: 2_500)
        metrics.setStateBytes(pipeline: "gforce", topic: "telemetry", partition: 2, bytes: 4_096)
        metrics.setStateBytes(pipeline: "gforce", topic: "telemetry", partition: 2, bytes: 8_192)
        metrics.setReady(pipeline: "gforce", true)
        metrics.setReady(pipeline: "gforce", false)
        metrics.setReady(pipeline: "other", true)

        let text = lines(metrics)
        for line in [
            "# TYPE quixd_consumer_lag gauge",
            #"quixd_consumer_lag{pipeline="gforce",topic="telemetry",partition="2"} 17.0"#,
            "# TYPE quixd_consumer_lag_milliseconds gauge",
            #"quixd_consumer_lag_milliseconds{pipeline="gforce",topic="telemetry",partition="2"} 2500.0"#,
            "# TYPE quixd_state_bytes gauge",
            #"quixd_state_bytes{pipeline="gforce",topic="telemetry",partition="2"} 8192.0"#,
            "# TYPE quixd_pipeline_ready gauge",
            #"quixd_pipeline_ready{pipeline="gforce"} 0.0"#,
            #"quixd_pipeline_ready{pipeline="other"} 1.0"#,
        ] {
            #expect(text.contains(line), "missing: \(line)")
        }
        #expect(text.filter { $0.hasPrefix("quixd_consumer_lag{") }.count == 1)
        #expect(!text.contains { $0.contains("1200") })
    }

    @Test("register(pipeline:) exports the pipeline's series at zero")
    func registerPipeline() {
        let metrics = PipelineMetrics()
        metrics.register(pipeline: "idle")
        let text = lines(metrics)
        for line in [
            #"quixd_rebalances_total{pipeline="idle"} 0"#,
            #"quixd_dead_lettered_total{pipeline="idle"} 0"#,
            #"quixd_skipped_total{pipeline="idle"} 0"#,
            #"quixd_pipeline_ready{pipeline="idle"} 0.0"#,
            #"quixd_processing_seconds_count{pipeline="idle"} 0"#,
            #"quixd_checkpoint_seconds_count{pipeline="idle"} 0"#,
        ] {
            #expect(text.contains(line), "missing: \(line)")
        }
    }

    @Test("a revoked partition's gauges are dropped; its counters stay")
    func forgetPartition() {
        let metrics = PipelineMetrics()
        metrics.recordConsumed(pipeline: "p", topic: "t", partition: 0, messages: 4, bytes: 40)
        metrics.setConsumerLag(pipeline: "p", topic: "t", partition: 0, lag: 9)
        metrics.setConsumerTimeLag(pipeline: "p", topic: "t", partition: 0, milliseconds: 90)
        metrics.setConsumerLag(pipeline: "p", topic: "t", partition: 1, lag: 3)
        metrics.setStateBytes(pipeline: "p", topic: "t", partition: 0, bytes: 100)
        metrics.forgetPartition(pipeline: "p", topic: "t", partition: 0)

        var text = lines(metrics)
        #expect(!text.contains { $0.hasPrefix(#"quixd_consumer_lag{pipeline="p",topic="t",partition="0"}"#) })
        #expect(!text.contains { $0.hasPrefix(#"quixd_consumer_lag_milliseconds{pipeline="p",topic="t",partition="0"}"#) })
        #expect(!text.contains { $0.hasPrefix(#"quixd_state_bytes{pipeline="p",topic="t",partition="0"}"#) })
        #expect(text.contains(#"quixd_consumer_lag{pipeline="p",topic="t",partition="1"} 3.0"#))
        #expect(text.contains(#"quixd_messages_in_total{pipeline="p",topic="t",partition="0"} 4"#))

        // Assigned again: a fresh gauge.
        metrics.setConsumerLag(pipeline: "p", topic: "t", partition: 0, lag: 5)
        text = lines(metrics)
        #expect(text.contains(#"quixd_consumer_lag{pipeline="p",topic="t",partition="0"} 5.0"#))
    }

    @Test("label values are escaped")
    func escaping() {
        let metrics = PipelineMetrics()
        metrics.recordError(pipeline: #"a"b\c"#, stage: "s")
        #expect(lines(metrics).contains(#"quixd_errors_total{pipeline="a\"b\\c",stage="s"} 1"#))
    }

    @Test("recording from many tasks at once loses nothing")
    func concurrentRecording() async {
        let metrics = PipelineMetrics()
        await withTaskGroup(of: Void.self) { group in
            for task in 0..<8 {
                group.addTask {
                    for _ in 0..<1_000 {
                        metrics.recordConsumed(pipeline: "p", topic: "t", partition: Int32(task % 2), messages: 1, bytes: 10)
                        metrics.recordProcessing(pipeline: "p", latency: .microseconds(100))
                    }
                }
            }
        }
        let text = lines(metrics)
        #expect(text.contains(#"quixd_messages_in_total{pipeline="p",topic="t",partition="0"} 4000"#))
        #expect(text.contains(#"quixd_messages_in_total{pipeline="p",topic="t",partition="1"} 4000"#))
        #expect(text.contains(#"quixd_bytes_in_total{pipeline="p",topic="t",partition="1"} 40000"#))
        #expect(text.contains(#"quixd_processing_seconds_count{pipeline="p"} 8000"#))
    }
}
