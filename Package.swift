// swift-tools-version: 6.2
import PackageDescription

/// Settings every otamesh target shares: Swift 6 mode (strict concurrency) and
/// explicit existentials, so `any` marks every dynamic dispatch.
let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "otamesh",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "otamesh", targets: ["otamesh"]),
        .executable(name: "otamesh-devicesim", targets: ["otamesh-devicesim"]),
        .executable(name: "otamesh-bench", targets: ["OTAMeshBench"]),
        .executable(name: "otamesh-mdns-probe", targets: ["otamesh-mdns-probe"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.1"),
    ],
    targets: [
        // System libraries.
        .systemLibrary(
            name: "CLZMA",
            pkgConfig: "liblzma",
            providers: [.apt(["liblzma-dev"])]
        ),
        .systemLibrary(
            name: "CDNSSD",
            pkgConfig: "avahi-compat-libdns_sd",
            providers: [.apt(["libavahi-compat-libdnssd-dev"])]
        ),

        // Pure cores. OTAMeshCommon: the small helpers every module may use (hex, terminal-safe
        // text, the seeded generator, the retry policy), so no module depends on another for them.
        .target(
            name: "OTAMeshCommon",
            swiftSettings: strict
        ),
        .target(
            name: "OTAMeshFirmware",
            dependencies: [
                "OTAMeshCommon",
                "CLZMA",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        .target(
            name: "OTAMeshTrust",
            dependencies: [
                "OTAMeshCommon",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        .target(
            name: "OTAMeshGossip",
            dependencies: ["OTAMeshCommon", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),

        .target(
            name: "OTAMeshRollout",
            dependencies: [
                "OTAMeshTrust",
                "OTAMeshCommon",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        .target(
            name: "OTAMeshSimulation",
            dependencies: [
                "OTAMeshCommon",
                "OTAMeshGossip",
                "OTAMeshRollout",
                "OTAMeshTrust",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        // Apps with their configuration (pure): the signed catalog, settings, configuration images.
        .target(
            name: "OTAMeshApps",
            dependencies: ["OTAMeshCommon", "OTAMeshFirmware", "OTAMeshTrust", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),

        // Shells.
        .target(
            name: "OTAMeshDiscovery",
            dependencies: [
                "CDNSSD",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "OTAMeshStore",
            dependencies: [
                "OTAMeshCommon",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "OTAMeshTransfer",
            dependencies: [
                "OTAMeshCommon",
                "OTAMeshTrust",
                "OTAMeshStore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "OTAMeshDevices",
            dependencies: [
                "OTAMeshCommon",
                "OTAMeshFirmware",
                "OTAMeshRollout",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "OTAMeshGateway",
            dependencies: [
                "OTAMeshApps",
                "OTAMeshCommon",
                "OTAMeshDevices",
                "OTAMeshFirmware",
                "OTAMeshGossip",
                "OTAMeshRollout",
                "OTAMeshDiscovery",
                "OTAMeshStore",
                "OTAMeshTrust",
                "OTAMeshTransfer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),

        // The lab: topologies, their plans (pure) and the namespace executor (shell).
        .target(
            name: "OTAMeshLab",
            dependencies: [
                "OTAMeshCommon",
                "OTAMeshRollout",
                "OTAMeshSimulation",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),

        // Executables: argument parsing and output only.
        .executableTarget(
            name: "otamesh",
            dependencies: [
                "OTAMeshApps",
                "OTAMeshDevices",
                "OTAMeshFirmware",
                "OTAMeshGossip",
                "OTAMeshRollout",
                "OTAMeshStore",
                "OTAMeshTrust",
                "OTAMeshTransfer",
                "OTAMeshGateway",
                "OTAMeshLab",
                "OTAMeshSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "otamesh-devicesim",
            dependencies: [
                "OTAMeshFirmware",
                "OTAMeshDiscovery",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "otamesh-mdns-probe",
            dependencies: [
                "OTAMeshDiscovery",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Fuzz targets (pure: the real parsers on arbitrary bytes); replayed by the tests, run
        // under libFuzzer by `make fuzz` through the otamesh-fuzz driver below.
        .target(
            name: "OTAMeshFuzz",
            dependencies: [
                "OTAMeshApps",
                "OTAMeshCommon",
                "OTAMeshDevices",
                "OTAMeshDiscovery",
                "OTAMeshFirmware",
                "OTAMeshGateway",
                "OTAMeshGossip",
                "OTAMeshLab",
                "OTAMeshRollout",
                "OTAMeshTrust",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "OTAMeshBench",
            dependencies: [
                "OTAMeshFirmware",
                "OTAMeshStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Benchmarks/OTAMeshBench",
            swiftSettings: strict
        ),

        // Tests mirror Sources/; OTAMeshTestSupport holds what several test targets share.
        .target(
            name: "OTAMeshTestSupport",
            dependencies: ["OTAMeshCommon", "OTAMeshTrust", .product(name: "Crypto", package: "swift-crypto")],
            path: "Tests/OTAMeshTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshCommonTests",
            dependencies: ["OTAMeshCommon"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshFirmwareTests",
            dependencies: ["OTAMeshCommon", "OTAMeshFirmware", "OTAMeshTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshAppsTests",
            dependencies: ["OTAMeshApps", "OTAMeshFirmware", "OTAMeshTrust", "OTAMeshTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshTrustTests",
            dependencies: ["OTAMeshCommon", "OTAMeshTrust", "OTAMeshTestSupport", .product(name: "_CryptoExtras", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshTransferTests",
            dependencies: ["OTAMeshCommon", "OTAMeshTransfer", "OTAMeshStore", "OTAMeshTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshGossipTests",
            dependencies: ["OTAMeshCommon", "OTAMeshGossip", "OTAMeshTestSupport", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshDiscoveryTests",
            dependencies: ["OTAMeshCommon", "OTAMeshDiscovery", "OTAMeshTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshSimulationTests",
            dependencies: ["OTAMeshCommon", "OTAMeshSimulation", "OTAMeshGossip", "OTAMeshRollout", "OTAMeshTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshStoreTests",
            dependencies: ["OTAMeshStore", "OTAMeshTestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshGatewayTests",
            dependencies: [
                "OTAMeshCommon", "OTAMeshGateway", "OTAMeshDevices", "OTAMeshRollout", "OTAMeshTrust", "OTAMeshGossip", "OTAMeshStore", "OTAMeshTransfer",
                "OTAMeshTestSupport", "CDNSSD", "CLZMA",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshRolloutTests",
            dependencies: [
                "OTAMeshCommon", "OTAMeshRollout",
                "OTAMeshTrust", "OTAMeshTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshDevicesTests",
            dependencies: ["OTAMeshCommon", "OTAMeshDevices", "OTAMeshRollout", .product(name: "PropertyBased", package: "swift-property-based")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshLabTests",
            dependencies: ["OTAMeshCommon", "OTAMeshLab", "OTAMeshRollout", "OTAMeshTestSupport"],
            swiftSettings: strict
        ),
        // The CLI's pure parts (option parsing, rendering), tested through @testable import of the executable.
        .testTarget(
            name: "OTAMeshCLITests",
            dependencies: ["OTAMeshCommon", "otamesh", "OTAMeshGateway", "OTAMeshRollout", "OTAMeshTrust"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "OTAMeshFuzzTests",
            dependencies: ["OTAMeshFuzz"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["OTAMeshCommon", "OTAMeshStore", "OTAMeshTrust", "OTAMeshTestSupport"],
            swiftSettings: strict
        ),
    ]
)

// The libFuzzer driver: linked with -sanitize=fuzzer (libFuzzer brings the process's main), so
// it exists only when OTAMESH_FUZZ=1 — `make fuzz` sets it and builds into .build-fuzz; a plain
// `swift build` never tries to link it.
if Context.environment["OTAMESH_FUZZ"] == "1" {
    package.targets += [
        .target(name: "CLibFuzzer", path: "Fuzz/CLibFuzzer"),
        .executableTarget(name: "otamesh-fuzz", dependencies: ["OTAMeshFuzz", "CLibFuzzer"], path: "Fuzz/otamesh-fuzz", swiftSettings: strict),
    ]
    package.products += [.executable(name: "otamesh-fuzz", targets: ["otamesh-fuzz"])]
}
