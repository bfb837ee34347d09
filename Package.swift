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
            ]),
        // Pipeline files: the model, YAML reading and validation.
        .target(
            name: "QuixPipeline",
            dependencies: [.product(name: "Yams", package: "Yams")]),
        .executableTarget(
            name: "quixd",
            dependencies: [
                "QuixKafka",
                "QuixProtocol",
                "QuixStreams",
                "QuixPipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
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
                "QuixKafka", "QuixProtocol", "QuixStreams", "QuixTestSupport", "quixd", "CheckpointProbe",
                .product(name: "OrderedCollections", package: "swift-collections"),
            ]),
        // The consumer the crash test kills and restarts.
        .executableTarget(
            name: "CheckpointProbe",
            dependencies: ["QuixStreams", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Tests/Programs/CheckpointProbe"),
        .testTarget(
            name: "QuixPipelineTests",
            dependencies: ["QuixPipeline"]),
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

for target in package.targets where [.regular, .executable, .test].contains(target.type) {
    target.swiftSettings = (target.swiftSettings ?? []) + [
        .enableUpcomingFeature("ExistentialAny"),
        .enableUpcomingFeature("MemberImportVisibility"),
    ]
}
