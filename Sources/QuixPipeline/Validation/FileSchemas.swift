/// The keys of quixd's files: the pipeline file, the daemon config and the tests file. The
/// loaders read each mapping by its declaration here, and `FileSchema` prints them as JSON Schema.
enum FileSchemas {
    private static func choices<Choice: RawRepresentable & CaseIterable>(_: Choice.Type) -> SchemaValue where Choice.RawValue == String {
        .choice(Choice.allCases.map(\.rawValue))
    }

    // MARK: Pipeline files

    static let pipeline = SchemaObject(
        [
            SchemaKey("apiVersion", .constant(PipelineLoader.apiVersion), "the file format's version"),
            SchemaKey("kind", .constant("Pipeline"), "what the file holds"),
            SchemaKey("metadata", .object(metadata), "the pipeline's name"),
            SchemaKey("spec", .object(spec), "what the pipeline reads, does and writes"),
        ], required: ["apiVersion", "kind", "metadata", "spec"])

    static let metadata = SchemaObject(
        [
            SchemaKey(
                "name", .pattern("^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"),
                "names the default consumer group, the state folder and the changelog topic: letters, digits, dots, dashes, underscores")
        ], required: ["name"])

    static let spec = SchemaObject(
        [
            SchemaKey("input", .object(input), "the topic read"),
            SchemaKey("stages", .stages, "the stages each stream's rows go through, in order"),
            SchemaKey("output", .object(output), "the one output (or use outputs)"),
            SchemaKey("outputs", .list(.object(routedOutput)), "outputs, each taking the rows its when holds for"),
            SchemaKey("tables", .map(.object(table)), "topics of rows by key that every replica reads in full, for lookup stages"),
            SchemaKey("delivery", choices(Pipeline.Delivery.self), "at-least-once (default) or exactly-once"),
            SchemaKey("checkpoint", .object(checkpoint), "how often offsets and state are checkpointed"),
            SchemaKey("state", .object(state), "the changelog and when a stream's state goes"),
            SchemaKey("onError", .object(onError), "what happens to a message that cannot be processed"),
        ], required: ["input", "stages"])

    static let input = SchemaObject(
        [
            SchemaKey("topic", .nonEmptyText, "the input topic"),
            SchemaKey("consumerGroup", .text, "the consumer group (default: the pipeline's name)"),
            SchemaKey("format", choices(Pipeline.DataFormat.self), "quix (default), json or raw"),
            SchemaKey("startFrom", choices(Pipeline.StartFrom.self), "where a group without offsets starts (default earliest)"),
        ], required: ["topic"])

    private static let outputKeys = [
        SchemaKey("id", .text, "names the output in metrics and quixd test (spec.output: main)"),
        SchemaKey("topic", .nonEmptyText, "the output topic"),
        SchemaKey("format", choices(Pipeline.DataFormat.self), "quix (default), json or raw"),
        SchemaKey("buffer", .object(buffer), "the output buffer (quix format)"),
        SchemaKey("when", .text, "a boolean row expression: the rows this output takes (default every row)"),
        SchemaKey("events", .flag, "whether it takes events (default true)"),
    ]
    static let output = SchemaObject(outputKeys, required: ["topic"])
    static let routedOutput = SchemaObject(outputKeys, required: ["id", "topic"])

    static let buffer = SchemaObject([
        SchemaKey("packetSize", .integer(1...1_000_000), "rows per message at most"),
        SchemaKey("timeSpan", .duration, "data time per message at most"),
        SchemaKey("timeout", .duration, "how long rows wait at most"),
    ])

    static let table = SchemaObject(
        [
            SchemaKey("topic", .nonEmptyText, "the table's topic"),
            SchemaKey("format", .choice(["json", "quix"]), "json (default) or quix"),
            SchemaKey("key", .text, "streamId (default: the message key) or a field of the row"),
        ], required: ["topic"])

    static let checkpoint = SchemaObject([SchemaKey("interval", .duration, "default 1s")])

    static let state = SchemaObject([
        SchemaKey("changelog", .flag, "whether state changes go to a changelog topic (default true)"),
        SchemaKey("onStreamEnd", choices(Pipeline.StateExpiry.OnStreamEnd.self), "keep (default) or drop a stream's state at its end"),
        SchemaKey("idle", .duration, "remove a stream's state after this long without data (data time)"),
    ])

    static let onError = SchemaObject(
        [
            SchemaKey("policy", choices(Pipeline.ErrorPolicy.Kind.self), "dead-letter, skip or stop (default)"),
            SchemaKey("topic", .nonEmptyText, "the dead-letter topic"),
        ], required: ["policy"])

    static let stage = SchemaObject(
        [
            SchemaKey("id", .nonEmptyText, "the stage's id"),
            SchemaKey("uses", .nonEmptyText, "the stage's name (quixd stages lists them)"),
            SchemaKey("with", .map(.scalar), "the stage's options"),
        ], required: ["id", "uses"])

    // MARK: The daemon config

    static let config = SchemaObject(
        [
            SchemaKey("apiVersion", .constant(PipelineLoader.apiVersion), "the file format's version"),
            SchemaKey("kind", .constant("Config"), "what the file holds"),
            SchemaKey("kafka", .object(kafka), "how to reach the brokers"),
            SchemaKey("state", .object(configState), "local state"),
            SchemaKey("http", .object(http), "the operations port"),
            SchemaKey("pipelines", .list(.text), "pipeline files or directories of them"),
            SchemaKey("log", .object(log), "log level and format"),
            SchemaKey("shutdown", .object(shutdown), "shutdown"),
            SchemaKey("workers", .anyOf([.integer(1...1_024), .constant("auto")]), "worker threads (default auto: the cores quixd may use)"),
        ], required: ["apiVersion", "kind"])

    static let configState = SchemaObject([SchemaKey("directory", .text, "the state directory (default ./state)")])
    static let shutdown = SchemaObject([SchemaKey("grace", .duration, "how long SIGTERM waits for pipelines (default 30s)")])

    static let kafka = SchemaObject([
        SchemaKey("brokers", .text, "bootstrap servers, host:port[,host:port...]"),
        SchemaKey("clientId", .text, "the Kafka client id"),
        SchemaKey("groupInstanceId", .text, "static group membership (the pod name)"),
        SchemaKey("security", .object(security), "TLS and SASL"),
        SchemaKey("properties", .map(.scalar), "librdkafka properties passed on"),
    ])

    static let security = SchemaObject([
        SchemaKey("protocol", .text, "plaintext, ssl, sasl_plaintext or sasl_ssl"),
        SchemaKey("saslMechanism", .text, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
        SchemaKey("saslUsername", .text, "the SASL user"),
        SchemaKey("saslPassword", .text, "the SASL password (masked in logs)"),
        SchemaKey("caLocation", .text, "the CA certificates file"),
    ])

    static let http = SchemaObject([
        SchemaKey("listen", .text, "host:port of /healthz, /readyz, /metrics and the status page, or off"),
        SchemaKey("statusPage", .flag, "whether / and /status.json are served (default true)"),
    ])

    static let log = SchemaObject([
        SchemaKey("level", choices(DaemonConfig.LogLevel.self), "default info"),
        SchemaKey("format", choices(DaemonConfig.LogFormat.self), "text (default) or json"),
    ])

    // MARK: Tests files

    static let tests = SchemaObject([SchemaKey("tests", .list(.object(testCase)), "the tests")], required: ["tests"])

    static let testCase = SchemaObject(
        [
            SchemaKey("name", .text, "the test's name"),
            SchemaKey("input", .list(.object(testInput)), "rows and events fed in order, one message per row"),
            SchemaKey("expect", .list(.object(expectation)), "what comes out, per stream"),
            SchemaKey("state", .list(.object(stateExpectation)), "stateful stages' keys after the input"),
            SchemaKey("tables", .map(.list(.map(.scalar))), "rows of the pipeline's tables, by table name"),
        ], required: ["name", "input"])

    static let testInput = SchemaObject(
        [
            SchemaKey("stream", .text, "the stream id"),
            SchemaKey("topic", .text, "the input topic (default) or a join stage's topic"),
            SchemaKey("rows", .list(.map(.scalar)), "rows: a timestamp and cells"),
            SchemaKey("events", .list(.object(inputEvent)), "events"),
        ], required: ["stream"])

    static let inputEvent = SchemaObject(
        [SchemaKey("id", .text, "the event id"), SchemaKey("timestamp", .scalar, "ns, a duration from 0, or ISO-8601"), SchemaKey("value", .text, "its value")],
        required: ["id", "timestamp"])

    static let expectation = SchemaObject(
        [
            SchemaKey("stream", .text, "the stream id"),
            SchemaKey("output", .text, "the output id whose rows are compared (default what the stages pass on)"),
            SchemaKey("rows", .list(.map(.scalar)), "the rows, only the columns named compared"),
            SchemaKey("events", .list(.object(expectedEvent)), "the events"),
        ], required: ["stream"])

    static let expectedEvent = SchemaObject([
        SchemaKey("id", .text, "the event id"), SchemaKey("timestamp", .scalar, "its timestamp"), SchemaKey("value", .text, "its value"),
        SchemaKey("valueContains", .text, "text its value contains"),
    ])

    static let stateExpectation = SchemaObject(
        [
            SchemaKey("stream", .text, "the stream id"), SchemaKey("stage", .text, "the stage id"), SchemaKey("key", .text, "the key"),
            SchemaKey("value", .scalar, "its value; absent: the key is missing"),
        ], required: ["stream", "stage", "key"])
}
