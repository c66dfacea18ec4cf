// swift-tools-version: 6.0
import PackageDescription

let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioPosix = Target.Dependency.product(name: "NIOPosix", package: "swift-nio")
let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")

let package = Package(
    name: "vtpbench",
    products: [
        .executable(name: "vtp-sender", targets: ["Sender"]),
        .executable(name: "vtp-receiver", targets: ["Receiver"]),
        // MARK: capture
        .library(name: "PacketCapture", targets: ["PacketCapture"]),
        .executable(name: "vtp-capture", targets: ["Capture"]),
        // MARK: lab
        .executable(name: "vtp-netem", targets: ["Netem"]),
        .executable(name: "vtp-lab", targets: ["Lab"]),
        // MARK: proxy
        .library(name: "PGWire", targets: ["PGWire"]),
        .executable(name: "vtp-proxy", targets: ["Proxy"]),
        // MARK: pgprobe
        .executable(name: "pgprobe", targets: ["PGProbe"]),
        // MARK: results
        .executable(name: "vtp-report", targets: ["Report"]),
        // MARK: hostile input
        .executable(name: "vtpbench-fuzz", targets: ["Fuzz"]),
        .executable(name: "vtp-abuse", targets: ["Abuse"]),
        // MARK: benchmarks (not installed: scripts/bench-core runs it from the build folder)
        .executable(name: "Microbench", targets: ["Microbench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        // MARK: metrics
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // MARK: pgprobe
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // MARK: results
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // What every executable shares: durations with units, the one number format, exit
        // statuses, output-path checks, summary JSON with run metadata, CSV, signals.
        .target(name: "CommandLineKit", dependencies: [argumentParser]),
        .testTarget(name: "CommandLineKitTests", dependencies: ["CommandLineKit"]),
        .systemLibrary(
            name: "CLibXML2", pkgConfig: "libxml-2.0",
            providers: [.apt(["libxml2-dev"])]),
        // Framing, VOEvent documents and VTP transport messages.
        .target(name: "Protocol", dependencies: [nioCore, "CLibXML2"]),
        // Latency statistics (exact moments + HdrHistogram percentiles).
        .target(
            name: "LatencyStats",
            dependencies: [.product(name: "Histogram", package: "hdrhistogram-swift"), "CommandLineKit"]),
        // config.json loading and validation.
        .target(name: "BenchConfig", dependencies: ["CommandLineKit", argumentParser]),
        // What every listener installs on its server socket: accept back-off on EMFILE, one report per episode.
        .target(name: "AcceptGuard", dependencies: [nioCore]),
        .testTarget(
            name: "AcceptGuardTests", dependencies: ["AcceptGuard", nioCore, .product(name: "NIOEmbedded", package: "swift-nio")]),
        // Sender engine and receiver server over NIO.
        .target(
            name: "VTPEngine",
            dependencies: [
                "Protocol", "LatencyStats", "BenchConfig", "CommandLineKit", "LiveMetrics", "AcceptGuard", nioCore, nioPosix,
                logging,
                .product(name: "DequeModule", package: "swift-collections"),
            ]),
        .executableTarget(
            name: "Sender",
            dependencies: [
                "VTPEngine", "Protocol", "BenchConfig", "CommandLineKit", "LiveMetrics", "ResultsStore",
                argumentParser,
            ]),
        .executableTarget(
            name: "Receiver",
            dependencies: [
                "VTPEngine", "BenchConfig", "CommandLineKit", "LiveMetrics", "ResultsStore", argumentParser,
                "WireCheck" /* capture */,
            ]),
        // MARK: metrics
        // --metrics HOST:PORT: Prometheus text format at /metrics (swift-prometheus registry, a
        // small NIOHTTP1 server), fed from snapshots the tools take where their numbers live.
        .target(
            name: "LiveMetrics",
            dependencies: [
                "LatencyStats", "AcceptGuard", "CommandLineKit", nioCore, nioPosix, argumentParser, .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]),
        .testTarget(name: "LiveMetricsTests", dependencies: ["LiveMetrics", "LatencyStats", nioCore, nioPosix]),
        // Per-message CPU costs (scripts/bench-core prints them).
        .executableTarget(name: "Microbench", dependencies: ["Protocol", "CLibXML2", nioCore, nioPosix]),
        .testTarget(
            name: "ProtocolTests",
            dependencies: [
                "Protocol", nioCore, .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]),
        .testTarget(
            name: "LatencyStatsTests", dependencies: ["LatencyStats", .product(name: "Histogram", package: "hdrhistogram-swift")]),
        .testTarget(name: "BenchConfigTests", dependencies: ["BenchConfig", "CommandLineKit", argumentParser]),
        .testTarget(
            name: "VTPEngineTests",
            dependencies: [
                "VTPEngine", "Protocol", "BenchConfig", "LatencyStats", "LiveMetrics", nioCore, nioPosix,
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        // Drives the built executables as processes (flags, exit codes, signals, Comet interop).
        .testTarget(name: "CLITests", dependencies: ["Sender", "Receiver", "TestSupport"]),
        // Test helpers shared by test targets: running the built tools as a user would.
        .target(
            name: "TestSupport",
            dependencies: ["PacketCapture", "Protocol", nioCore, nioPosix, .product(name: "NIOConcurrencyHelpers", package: "swift-nio")],
            path: "Tests/TestSupport"),
        // Reads the manifest and scripts/: every script installs what the products it builds link.
        .testTarget(name: "PackagingTests"),
        // MARK: capture
        .systemLibrary(
            name: "CPcap", pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),
        // Protocol-agnostic: pcap files, live capture, TCP segments and per-flow reassembly.
        .target(name: "PacketCapture", dependencies: ["CPcap"]),
        // VTP on top of PacketCapture: frames with wire times, per-event wire latency analysis.
        .target(
            name: "VTPWire", dependencies: ["PacketCapture", "Protocol", "LatencyStats", "CommandLineKit", nioCore]),
        .executableTarget(
            name: "Capture", dependencies: ["PacketCapture", "VTPWire", "CommandLineKit", argumentParser]),
        // vtp-receiver --capture-interface: pairs the receiver's events with the wire's.
        .target(
            name: "WireCheck",
            dependencies: [
                "PacketCapture", "VTPWire", "VTPEngine", "LatencyStats", "CommandLineKit", nioPosix,
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .testTarget(
            name: "PacketCaptureTests",
            dependencies: [
                "TestSupport", "PacketCapture", "VTPWire", "WireCheck", "VTPEngine", "Protocol", "BenchConfig", "LatencyStats",
                nioCore, nioPosix,
            ]),
        // MARK: lab
        // TUN, epoll, timerfd and signal plumbing for the userspace delay link.
        .target(name: "CDelayLink"),
        // Userspace delay link: release scheduling (pure), TUN forwarder, namespace set-up.
        .target(name: "DelayLink", dependencies: ["CDelayLink", "LatencyStats", "NetworkEmulation"]),
        .executableTarget(name: "Netem", dependencies: ["DelayLink", "CommandLineKit", argumentParser]),
        .testTarget(name: "DelayLinkTests", dependencies: ["DelayLink", "CDelayLink"]),
        // Delay, jitter, rate and order of an emulated link (pure), shared by vtp-netem and vtp-proxy.
        .target(name: "NetworkEmulation"),
        .testTarget(name: "NetworkEmulationTests", dependencies: ["NetworkEmulation"]),
        // Namespaced sender/receiver runs over the delay link, sweeps, tables. It runs the tools as
        // processes and reads their summary files: no engine (NIO) in here.
        .target(
            name: "LabCore", dependencies: ["DelayLink", "BenchConfig", "LatencyStats", "CommandLineKit"]),
        .executableTarget(
            name: "Lab", dependencies: ["LabCore", "BenchConfig", "CommandLineKit", "ResultsStore", argumentParser]),
        .testTarget(name: "LabTests", dependencies: ["LabCore", "BenchConfig", "LatencyStats", "CommandLineKit"]),
        // MARK: proxy
        // PostgreSQL wire protocol: incremental framing and decoding, both directions.
        .target(name: "PGWire", dependencies: [nioCore]),
        // The proxy: listeners, forwarding with toxics, protocol logging, control endpoint.
        .target(
            name: "ProxyCore",
            dependencies: [
                "PGWire", "Protocol", "NetworkEmulation", "CommandLineKit", "LiveMetrics", "AcceptGuard", nioCore, nioPosix,
                .product(name: "NIOHTTP1", package: "swift-nio"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .executableTarget(name: "Proxy", dependencies: ["ProxyCore", "CommandLineKit", "LiveMetrics", argumentParser]),
        .testTarget(
            name: "PGWireTests",
            dependencies: [
                "PGWire", nioCore, .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ]),
        .testTarget(
            name: "ProxyTests",
            dependencies: [
                "TestSupport", "ProxyCore", "PGWire", "Protocol", "NetworkEmulation", "LiveMetrics", nioCore, nioPosix,
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        // MARK: pgprobe
        // Packet-only PostgreSQL latency inference (pure value types) and its capture driver.
        .target(
            name: "PGSniff", dependencies: ["PGWire", "PacketCapture", "LatencyStats", "CommandLineKit", nioCore]),
        // The query probe (postgres-nio) and the probe/sniffer cross-check. Only this
        // target pulls postgres-nio, so the core build stays fast.
        .target(
            name: "PGProbeCore",
            dependencies: [
                "PGSniff", "LatencyStats", "CommandLineKit", "LiveMetrics", nioCore, nioPosix, logging,
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ]),
        .executableTarget(
            name: "PGProbe",
            dependencies: [
                "PGProbeCore", "PGSniff", "PacketCapture", "LatencyStats", "CommandLineKit", "LiveMetrics", nioCore,
                nioPosix, "ResultsStore", argumentParser,
            ]),
        .testTarget(name: "PGSniffTests", dependencies: ["PGSniff", "PacketCapture", "LatencyStats", nioCore]),
        // MARK: hostile input
        // libFuzzer targets over every parser that reads untrusted bytes (scripts/fuzz builds them
        // with AddressSanitizer and libFuzzer into .build-fuzz); the tests replay their corpora.
        .target(
            name: "FuzzTargets",
            dependencies: [
                "Protocol", "VTPEngine", "BenchConfig", "CommandLineKit", "PGWire", "PacketCapture", "VTPWire", "PGSniff",
                "ProxyCore", nioCore, .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        // vtpbench-fuzz: libFuzzer's driver when built with -DFUZZING (CLibFuzzer declares it),
        // else a replayer (`vtpbench-fuzz TARGET FILE...`) and the seed-corpus writer.
        .target(name: "CLibFuzzer"),
        .executableTarget(name: "Fuzz", dependencies: ["FuzzTargets", "CLibFuzzer"]),
        // vtp-abuse: hostile clients against a listener (scripts/abuse runs it beside a real sender).
        .target(name: "AbuseCore", dependencies: ["Protocol", nioCore, nioPosix]),
        .executableTarget(
            name: "Abuse", dependencies: ["AbuseCore", "VTPEngine", "CommandLineKit", nioPosix, argumentParser]),
        .testTarget(name: "FuzzTargetsTests", dependencies: ["FuzzTargets"]),
        .testTarget(
            name: "PGProbeTests",
            dependencies: ["PGProbeCore", "PGSniff", "PacketCapture", "LatencyStats", "CommandLineKit", "LiveMetrics", nioPosix]),
        // Tests that need root, network namespaces, PostgreSQL, Comet or run the scripts. Every
        // other test target is a unit test target: `swift test --skip SystemTests` runs in seconds
        // without root.
        .testTarget(
            name: "SystemTests",
            dependencies: [
                "TestSupport", "PacketCapture", "VTPWire", "WireCheck", "VTPEngine", "Protocol", "BenchConfig",
                "LatencyStats", "CDelayLink", "DelayLink", "LabCore", "PGWire", "PGSniff", "PGProbeCore", "ProxyCore",
                nioCore, nioPosix, .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // MARK: results
        // Stored runs: the run/interval model, histogram encoding, versioned migrations, the
        // embedded SQLite store (sqlite-nio bundles SQLite) and the background recorder the tools
        // use. No postgres-nio here: the sender/receiver build stays light.
        .target(
            name: "ResultsStore",
            dependencies: [
                "LatencyStats", "CommandLineKit", argumentParser, nioCore, nioPosix, logging,
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
            ]),
        // The shared PostgreSQL collector (postgres-nio): the same schema, per-tester roles.
        .target(
            name: "ResultsCollector",
            dependencies: [
                "ResultsStore", nioCore, nioPosix, logging, .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]),
        // vtp-report's logic: tables, comparisons, exports, the HTML/SVG report (pure).
        .target(name: "ReportCore", dependencies: ["ResultsStore", "LatencyStats", "CommandLineKit"]),
        .executableTarget(
            name: "Report",
            dependencies: ["ReportCore", "ResultsStore", "ResultsCollector", "LatencyStats", "CommandLineKit", argumentParser]),
        .testTarget(name: "ResultsStoreTests", dependencies: ["ResultsStore", "LatencyStats", "CommandLineKit"]),
        .testTarget(name: "ReportCoreTests", dependencies: ["ReportCore", "ResultsStore", "LatencyStats"]),
    ]
)
