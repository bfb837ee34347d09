// swift-tools-version: 6.1
import Foundation
import PackageDescription

// Benchmarks live in their own package so that the main build, its tests and CI never compile
// them or their dependencies. The main package is a path dependency; its identity is the name of
// its folder, which differs between clones, so it is computed here.
let quixd = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "quixd-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../"),
        // package-benchmark: throughput, percentiles and allocation counts, with thresholds.
        .package(url: "https://github.com/ordo-one/package-benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
    ],
    targets: [
        // End-to-end Kafka throughput against kcat: run by kafka-vs-kcat.sh.
        .executableTarget(
            name: "KafkaThroughput",
            dependencies: [.product(name: "QuixKafka", package: quixd)],
            path: "Sources/KafkaThroughput"),
        // The per-message codec work of W1, for callgrind: run by callgrind.sh.
        .executableTarget(
            name: "CodecWorkload",
            dependencies: [.product(name: "QuixProtocol", package: quixd)],
            path: "Sources/CodecWorkload"),
        // The per-message state work of W2, for callgrind: run by callgrind.sh.
        .executableTarget(
            name: "StateWorkload",
            dependencies: [.product(name: "QuixStreams", package: quixd)],
            path: "Sources/StateWorkload"),
        // Codec suites: `swift package --package-path Benchmarks benchmark --target ProtocolBenchmarks`.
        .executableTarget(
            name: "ProtocolBenchmarks",
            dependencies: [
                .product(name: "QuixProtocol", package: quixd),
                .product(name: "Benchmark", package: "package-benchmark"),
                .product(name: "OrderedCollections", package: "swift-collections"),
            ],
            path: "Benchmarks/ProtocolBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]),
        // State get+put per message: `swift package --package-path Benchmarks benchmark --target StateBenchmarks`.
        .executableTarget(
            name: "StateBenchmarks",
            dependencies: [
                .product(name: "QuixStreams", package: quixd),
                .product(name: "Benchmark", package: "package-benchmark"),
            ],
            path: "Benchmarks/StateBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "package-benchmark")]),
    ],
    swiftLanguageModes: [.v6]
)
