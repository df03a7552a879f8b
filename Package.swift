// swift-tools-version:6.0
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "hub",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hubd", targets: ["hubd"]),
        .library(name: "Hub", targets: ["Hub"]),
        .library(name: "Connectors", targets: ["Connectors"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // libcurl: curl_easy_setopt is variadic, which Swift cannot call; a few lines of C wrap it.
        .target(
            name: "CCurl",
            linkerSettings: [.linkedLibrary("curl")]
        ),
        // libxml2 through pkg-config (Debian: libxml2-dev).
        .systemLibrary(
            name: "CLibXML2",
            pkgConfig: "libxml-2.0",
            providers: [.apt(["libxml2-dev"])]
        ),
        // Zstandard (Debian: libzstd-dev): the archive of raw documents, compressed at several
        // hundred MB/s so that keeping a 100 MB feed costs a pull a fraction of a second.
        .systemLibrary(
            name: "CZstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // libxml2's push parser behind a small C API (its headers clash with Foundation's ICU).
        .target(
            name: "CXMLPush",
            dependencies: ["CLibXML2"]
        ),
        // The core: model, mapping, decoding, the pull pipeline, rules, cases, and the store
        // protocols. No SQL, no web, no password hashing (see README, 代码结构).
        .target(
            name: "Hub",
            dependencies: [
                "CXMLPush",
                "CZstd",
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The embedded store: every store protocol over one SQLite file, through GRDB.
        .target(
            name: "HubSQLite",
            dependencies: [
                "Hub",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            swiftSettings: swiftSettings
        ),
        // The scaled store: every store protocol over a PostgreSQL server (12 or later, or an
        // engine speaking its protocol), through postgres-nio; several hubd workers share it.
        .target(
            name: "HubPostgres",
            dependencies: [
                "Hub",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // Conformance suites every store and connector runs (used by the tests of each).
        .target(
            name: "HubTesting",
            dependencies: ["Hub"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "Connectors",
            dependencies: ["Hub", "CCurl", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // A department-feed simulator and a small loopback HTTP server that serves it.
        .target(
            name: "SimCounty",
            dependencies: ["Hub"],
            swiftSettings: swiftSettings
        ),
        // The township inbox, the county's pages and the JSON API, served by Hummingbird.
        .target(
            name: "HubWeb",
            dependencies: [
                "Hub",
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "hubd",
            dependencies: [
                "Hub", "HubSQLite", "HubPostgres", "Connectors", "SimCounty", "HubWeb",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // libFuzzer targets (scripts/fuzz.sh builds this with -sanitize=fuzzer; it has no main of its own).
        .target(name: "CFuzzMain"),
        .executableTarget(
            name: "HubFuzz",
            dependencies: ["Hub", "Connectors", "CFuzzMain"],
            swiftSettings: swiftSettings + [.unsafeFlags(["-parse-as-library"])]
        ),
        .testTarget(
            name: "HubTests",
            dependencies: [
                "Hub", "HubSQLite", "HubPostgres", "HubTesting", "Connectors", "SimCounty", "HubWeb", "hubd",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
