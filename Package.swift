// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "quixd",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "QuixKafka", targets: ["QuixKafka"]),
        .library(name: "QuixProtocol", targets: ["QuixProtocol"]),
        .library(name: "QuixStreams", targets: ["QuixStreams"]),
        .library(name: "QuixState", targets: ["QuixState"]),
        .library(name: "QuixDataFrames", targets: ["QuixDataFrames"]),
        .executable(name: "quixd", targets: ["quixd"]),
    ],
    dependencies: [
        // Command line parsing for quixd's subcommands (--help, version, broker, ...).
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The logging API every library and handler in the Swift server ecosystem shares.
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // OrderedDictionary: the 0.5 format's maps (columns, metadata, tags) keep their order,
        // and re-encoding must reproduce it byte for byte.
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        // YAML for pipeline files and the daemon config: Yams carries libyaml, and its composed
        // nodes keep line and column, which every validation error reports.
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // /metrics: the Prometheus registry and text format, maintained by the Swift Server Workgroup; depends only on swift-atomics and swift-metrics' core.
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // /healthz, /readyz, /metrics: a small async HTTP server on plain sockets (no SwiftNIO), for quixd's operations endpoints.
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
        // The daemon's lifecycle, as the Swift server ecosystem does it: pipelines, the HTTP server
        // and the development broker are Services in one ServiceGroup, which owns SIGTERM/SIGINT
        // and the shutdown grace and stops them in reverse order; UnixSignalsSequence gives the
        // pipeline supervisor SIGHUP. It replaces quixd's own signal helpers and unstructured tasks.
        // Brings swift-async-algorithms along. (Resolved to 2.13.0 here, the version mirrored.)
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        // Streaming data frames hand their rows to `for try await` through an AsyncThrowingChannel:
        // a send waits for the reader, so a slow loop holds its stream back instead of piling up
        // rows. Already in the graph through swift-service-lifecycle; named here as it is used.
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRdKafka", pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]),
        .systemLibrary(
            name: "CLMDB", pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]),
        .target(
            name: "QuixKafka",
            dependencies: [
                "CRdKafka",
                .product(name: "Logging", package: "swift-log"),
                // The consumer's event queue: what the application took is released at once.
                .product(name: "DequeModule", package: "swift-collections"),
            ]),
        .target(
            name: "QuixProtocol",
            dependencies: [.product(name: "OrderedCollections", package: "swift-collections")]),
        // The state store: a safe wrapper over LMDB, the only target that imports CLMDB.
        .target(
            name: "QuixState",
            dependencies: ["CLMDB"]),
        .target(
            name: "QuixStreams",
            dependencies: [
                "QuixKafka", "QuixProtocol", "QuixState",
                .product(name: "OrderedCollections", package: "swift-collections"),
                // The queues of work on each worker thread.
                .product(name: "DequeModule", package: "swift-collections"),
            ]),
        // Pipelines: the file model, YAML reading and validation, the Stage protocol and
        // registry, the built-in stages and their expressions, and the runtime.
        .target(
            name: "QuixPipeline",
            dependencies: [
                "QuixStreams",
                "QuixState",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        // Streaming data frames for the library (the seed's "What's Next"): operators that build
        // the pipelines' own stages, run per stream with the library's checkpointed state.
        .target(
            name: "QuixDataFrames",
            dependencies: [
                "QuixPipeline", "QuixStreams",
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ]),
        // A stage compiled into quixd from its own target: the example users copy for theirs.
        .target(
            name: "SpeedingTicketStage",
            dependencies: ["QuixPipeline", "QuixStreams"],
            path: "Sources/Stages/SpeedingTicket"),
        .executableTarget(
            name: "quixd",
            dependencies: [
                "SpeedingTicketStage",
                "QuixKafka",
                "QuixProtocol",
                "QuixStreams",
                "QuixPipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]),
        // Fixtures shared by the test targets; never a product.
        .target(
            name: "QuixTestSupport",
            dependencies: ["QuixProtocol"]),
        .testTarget(
            name: "QuixKafkaTests",
            dependencies: ["QuixKafka", "quixd"]),
        .testTarget(
            name: "QuixStreamsTests",
            dependencies: [
                "QuixStreams", "QuixProtocol", "QuixKafka", "QuixTestSupport",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]),
        .testTarget(
            name: "QuixdTests",
            dependencies: [
                "QuixKafka", "QuixProtocol", "QuixStreams", "QuixTestSupport", "quixd", "CheckpointProbe", "QuixPipeline",
                .product(name: "OrderedCollections", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ServiceLifecycleTestKit", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),  // DeployTests reads the Kubernetes manifests
            ]),
        // The consumer the crash test kills and restarts.
        .executableTarget(
            name: "CheckpointProbe",
            dependencies: ["QuixStreams", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tests/Programs/CheckpointProbe"),
        .testTarget(
            name: "QuixPipelineTests",
            dependencies: [
                "QuixPipeline", "QuixStreams", "SpeedingTicketStage", "QuixDataFrames", "QuixKafka",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]),
        .testTarget(
            name: "QuixStateTests",
            dependencies: ["QuixState"]),
        .testTarget(
            name: "QuixProtocolTests",
            dependencies: [
                "QuixProtocol", "QuixTestSupport", .product(name: "OrderedCollections", package: "swift-collections"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)

// The examples of the Quix Streams 0.5 README, in Swift (README.md lists their commands).
for example in [
    "ProduceTimeseries", "ConsumeFrames", "BufferConfiguration", "StreamingContexts", "SpeedingCamera", "GForceTotal", "RunningSum",
] {
    package.targets.append(
        .executableTarget(
            name: example,
            dependencies: ["QuixStreams", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/\(example)"))
}

// The seed's streaming data frame example needs the data frames library too.
package.targets.append(
    .executableTarget(
        name: "StreamingDataFrame",
        dependencies: ["QuixStreams", "QuixDataFrames", .product(name: "ArgumentParser", package: "swift-argument-parser")],
        path: "Examples/StreamingDataFrame"))

for target in package.targets where [.regular, .executable, .test].contains(target.type) {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
        .enableUpcomingFeature("NonisolatedNonsendingByDefault"),
    ]
}
