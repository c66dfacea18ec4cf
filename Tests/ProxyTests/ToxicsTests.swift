import NetworkEmulation
import TestSupport
import XCTest

@testable import ProxyCore

/// Deterministic random source for schedule tests.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class ToxicsTests: XCTestCase {
    func testDurationsAndBandwidths() throws {
        XCTAssertEqual(try Units.parseDuration("50ms"), 50_000_000)
        XCTAssertEqual(try Units.parseDuration("5 ms"), 5_000_000)
        XCTAssertEqual(try Units.parseDuration("1.5s"), 1_500_000_000)
        XCTAssertEqual(try Units.parseDuration("250us"), 250_000)
        XCTAssertEqual(try Units.parseDuration("20"), 20_000_000)
        XCTAssertThrowsError(try Units.parseDuration("fast"))
        XCTAssertThrowsError(try Units.parseDuration("-5ms"))
        XCTAssertEqual(try Units.parseBandwidth("1mbit"), 125_000)
        XCTAssertEqual(try Units.parseBandwidth("500kbit"), 62_500)
        XCTAssertEqual(try Units.parseBandwidth("64kbps"), 64_000)
        XCTAssertThrowsError(try Units.parseBandwidth("1 lightyear"))
        XCTAssertEqual(try HostPort(parsing: "127.0.0.1:6432"), HostPort(host: "127.0.0.1", port: 6432))
        XCTAssertEqual(try HostPort(parsing: "[::1]:0"), HostPort(host: "::1", port: 0))
        XCTAssertThrowsError(try HostPort(parsing: "localhost"))
        XCTAssertThrowsError(try HostPort(parsing: "h:70000"))
    }

    func testToxicValidationNamesTheProblem() {
        XCTAssertThrowsError(try Toxic(type: .latency, stream: .upstream).validated()) {
            XCTAssertTrue("\($0)".contains("needs attribute \"latency\""), "\($0)")
        }
        XCTAssertThrowsError(
            try Toxic(type: .latency, stream: .upstream, attributes: ["latency": 5, "latnecy": 1]).validated()
        ) { XCTAssertTrue("\($0)".contains("unknown attribute \"latnecy\""), "\($0)") }
        XCTAssertThrowsError(
            try Toxic(type: .latency, stream: .upstream, toxicity: 1.5, attributes: ["latency": 5]).validated())
        XCTAssertThrowsError(try Toxic(type: .bandwidth, stream: .upstream, attributes: ["rate": 0]).validated())
        XCTAssertNoThrow(try Toxic(type: .timeout, stream: .downstream).validated())
    }

    func testEveryAttributeHasARange() {
        // Each of these passed validation and then trapped converting to Int64 in the plan.
        let cases: [(ToxicType, [String: Double], String)] = [
            (.latency, ["latency": 1e18], "latency"),
            (.latency, ["latency": 1, "jitter": 1e18], "jitter"),
            (.slowClose, ["delay": 1e308], "delay"),
            (.timeout, ["timeout": 1e308], "timeout"),
            (.resetPeer, ["timeout": 1e308], "timeout"),
            (.stall, ["probability": 0.5, "duration": 1e308], "duration"),
            (.stall, ["probability": 1.01], "probability"),
            (.connectDelay, ["delay": 1e308], "delay"),
            (.slicer, ["average_size": 8, "delay": 1e300], "delay"),
            (.slicer, ["average_size": 1e300], "average_size"),
            (.slicer, ["average_size": 8, "size_variation": 1e300], "size_variation"),
            (.limitData, ["bytes": 1e308], "bytes"),
            (.bandwidth, ["rate": 1e308], "rate"),
            (.bandwidth, ["rate": 1e-300], "rate"),
            (.latency, ["latency": .nan], "latency"),
        ]
        for (type, attributes, key) in cases {
            XCTAssertThrowsError(try Toxic(type: type, stream: .upstream, attributes: attributes).validated()) {
                XCTAssertTrue("\($0)".contains("attribute \"\(key)\" must be a finite number in "), "\($0)")
            }
        }
        XCTAssertThrowsError(try Toxic(type: .latency, stream: .upstream, attributes: ["latency": 3_600_001]).validated()) {
            XCTAssertTrue("\($0)".hasSuffix("must be a finite number in 0…3600000 ms (got 3600001.0)"), "\($0)")
        }
        XCTAssertThrowsError(try Toxic(type: .bandwidth, stream: .upstream, attributes: ["rate": 0]).validated()) {
            XCTAssertTrue("\($0)".contains("0.001…1000000000 KB/s"), "\($0)")
        }
        // The limits themselves are accepted.
        XCTAssertNoThrow(try Toxic(type: .latency, stream: .upstream, attributes: ["latency": 3_600_000, "jitter": 0]).validated())
        XCTAssertNoThrow(try Toxic(type: .slicer, stream: .upstream, attributes: ["average_size": 1, "delay": 3.6e9]).validated())
        XCTAssertNoThrow(try Toxic(type: .limitData, stream: .upstream, attributes: ["bytes": 1e15]).validated())
        XCTAssertNoThrow(try Toxic(type: .bandwidth, stream: .upstream, attributes: ["rate": 0.001]).validated())
    }

    func testPlanFromUnvalidatedToxicsNeverTraps() {
        // The plan is public: fed values no validation saw, it clamps instead of trapping.
        var random = SeededGenerator(state: 11)
        let huge: [Toxic] = [
            Toxic(type: .latency, stream: .upstream, attributes: ["latency": 1e308, "jitter": 1e300]),
            Toxic(name: "more", type: .latency, stream: .upstream, attributes: ["latency": .infinity]),
            Toxic(type: .bandwidth, stream: .upstream, attributes: ["rate": 1e-300]),
            Toxic(type: .slowClose, stream: .upstream, attributes: ["delay": 1e308]),
            Toxic(type: .resetPeer, stream: .downstream, attributes: ["timeout": .nan]),
            Toxic(type: .slicer, stream: .downstream, attributes: ["average_size": 1e300, "size_variation": 1e300, "delay": 1e300]),
            Toxic(type: .limitData, stream: .downstream, attributes: ["bytes": 1e308]),
            Toxic(type: .connectDelay, stream: .upstream, attributes: ["delay": 1e308]),
            Toxic(type: .stall, stream: .upstream, attributes: ["probability": 1, "duration": 1e308]),
        ]
        let plan = ConnectionPlan.make(from: huge, using: &random)
        XCTAssertEqual(plan.upstream.latencyNanos, .max)
        XCTAssertEqual(plan.connectDelayNanos, .max)
        XCTAssertEqual(plan.downstream.resetNanos, 0)
        var up = ReleaseScheduler(profile: plan.upstream.linkProfile)
        let slices = up.schedule(length: 10_000, arrivalNanos: 1_000, using: &random)
        XCTAssertEqual(slices.reduce(0) { $0 + $1.length }, 10_000)
        XCTAssertEqual(up.scheduleEnd(arrivalNanos: 2_000), .max)
        var down = ReleaseScheduler(profile: plan.downstream.linkProfile)
        XCTAssertEqual(down.schedule(length: 100, arrivalNanos: 0, using: &random).reduce(0) { $0 + $1.length }, 100)
    }

    func testDurationsTooLargeForNanosecondsAreErrors() {
        XCTAssertThrowsError(try Units.parseDuration("1e308ms")) { XCTAssertTrue("\($0)".contains("at most"), "\($0)") }
        XCTAssertThrowsError(try Units.parseDuration("1e20s"))
        XCTAssertThrowsError(try Units.parseDuration("1e300"))
        XCTAssertEqual(try Units.parseDuration("1000m"), 60_000_000_000_000)
        XCTAssertThrowsError(try Units.parseBandwidth("1e308gbit"))
    }

    func testToxicJSONIsToxiproxyShaped() throws {
        let json = #"{"name":"lag","type":"latency","stream":"upstream","toxicity":0.5,"attributes":{"latency":100,"jitter":10}}"#
        let toxic = try JSONDecoder().decode(Toxic.self, from: Data(json.utf8))
        XCTAssertEqual(toxic, Toxic(name: "lag", type: .latency, stream: .upstream, toxicity: 0.5, attributes: ["latency": 100, "jitter": 10]))
        let slicer = try JSONDecoder().decode(Toxic.self, from: Data(#"{"type":"slicer","attributes":{"average_size":8}}"#.utf8))
        XCTAssertEqual(slicer.name, "slicer_downstream")
        XCTAssertEqual(slicer.stream, .downstream)
    }

    func testPlanFoldsToxicsAndRollsToxicity() {
        var random = SeededGenerator(state: 1)
        let toxics = [
            Toxic(type: .latency, stream: .upstream, attributes: ["latency": 50, "jitter": 5]),
            Toxic(type: .latency, stream: .downstream, attributes: ["latency": 30]),
            Toxic(type: .bandwidth, stream: .downstream, attributes: ["rate": 125]),
            Toxic(type: .connectDelay, stream: .upstream),
            Toxic(name: "never", type: .limitData, stream: .upstream, toxicity: 0, attributes: ["bytes": 10]),
        ]
        let plan = ConnectionPlan.make(from: toxics, using: &random)
        XCTAssertEqual(plan.upstream.latencyNanos, 50_000_000)
        XCTAssertEqual(plan.upstream.jitterNanos, 5_000_000)
        XCTAssertEqual(plan.downstream.bytesPerSecond, 125_000)
        XCTAssertNil(plan.upstream.limitBytes, "toxicity 0 never applies")
        XCTAssertEqual(plan.connectDelayNanos, 80_000_000, "default connect delay is one round trip")

        // toxicity 0.5 applies to about half the connections.
        let half = [Toxic(type: .latency, stream: .upstream, toxicity: 0.5, attributes: ["latency": 1])]
        let applied = (0..<1000).filter { _ in ConnectionPlan.make(from: half, using: &random).upstream.latencyNanos > 0 }.count
        XCTAssertTrue((400...600).contains(applied), "\(applied)")
    }

    // The release schedules (order, jitter bounds, no serialisation, bandwidth, slicer,
    // stall) are NetworkEmulation's: Tests/NetworkEmulationTests.
    func testPlanMapsToxicsOntoTheLinkProfile() {
        var random = SeededGenerator(state: 2)
        let toxics = [
            Toxic(type: .latency, stream: .upstream, attributes: ["latency": 50, "jitter": 5]),
            Toxic(type: .bandwidth, stream: .upstream, attributes: ["rate": 125]),
            Toxic(type: .slicer, stream: .upstream, attributes: ["average_size": 10, "size_variation": 3, "delay": 7]),
            Toxic(type: .stall, stream: .upstream, attributes: ["probability": 0.25]),
            Toxic(type: .slowClose, stream: .upstream, attributes: ["delay": 9]),
        ]
        let profile = ConnectionPlan.make(from: toxics, using: &random).upstream.linkProfile
        XCTAssertEqual(
            profile,
            LinkProfile(
                delayNanos: 50_000_000, jitterNanos: 5_000_000, rateBytesPerSecond: 125_000, stallProbability: 0.25,
                stallNanos: 200_000_000, slicing: .init(averageBytes: 10, variationBytes: 3, gapNanos: 7_000),
                slowCloseNanos: 9_000_000))
        XCTAssertFalse(profile.isTransparent)
        XCTAssertTrue(DirectionPlan().isTransparent)
    }
}

final class ConfigFileTests: XCTestCase {
    func testConfigFileWithManyListeners() throws {
        let path = temporaryPath("proxies.json")
        try """
        {"control": "127.0.0.1:0",
         "proxies": [
           {"name": "vtp", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:8098", "protocol": "vtp",
            "toxics": [{"type": "latency", "stream": "upstream", "attributes": {"latency": 50}}]},
           {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:5432", "protocol": "pg", "max_startup_length": 2048}
         ]}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try ProxyFileConfig.load(path: path)
        XCTAssertEqual(config.control, HostPort(host: "127.0.0.1", port: 0))
        XCTAssertEqual(config.proxies.count, 2)
        XCTAssertEqual(config.proxies[0].toxics.first?.attributes["latency"], 50)
        XCTAssertEqual(config.proxies[1].name, "proxy-0")
        XCTAssertEqual(config.proxies[1].protocol, .pg)
        XCTAssertEqual(config.proxies[1].maxStartupLength, 2048)
    }

    func testConfigFileErrorsNameTheProblem() throws {
        let path = temporaryPath("bad.json")
        try #"{"proxies": [], "contrl": "x"}"#.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProxyFileConfig.load(path: path)) {
            XCTAssertTrue("\($0)".contains("unknown key \"contrl\""), "\($0)")
        }
        try #"{"proxies": [{"listen": "nowhere", "upstream": "127.0.0.1:1"}]}"#.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProxyFileConfig.load(path: path)) {
            XCTAssertTrue("\($0)".contains("nowhere"), "\($0)")
        }
        XCTAssertThrowsError(try ProxyFileConfig.load(path: "/nonexistent/proxies.json"))
        try #"{"proxies": [{"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "toxics": [{"type": "latency", "attributes": {"latency": 1e18}}]}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProxyFileConfig.load(path: path)) {
            XCTAssertTrue("\($0)".contains("attribute \"latency\" must be a finite number in 0…3600000 ms"), "\($0)")
        }
    }

    func testStartupLimitsInTheConfigFile() throws {
        let path = temporaryPath("startup.json")
        try """
        {"proxies": [
           {"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "protocol": "pg",
            "startup_timeout": "1.5s", "max_pending_startups": 8},
           {"name": "b", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "protocol": "pg", "startup_timeout": 250},
           {"name": "c", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "protocol": "pg"}
         ]}
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try ProxyFileConfig.load(path: path)
        XCTAssertEqual(config.proxies.map(\.startupTimeoutNanos), [1_500_000_000, 250_000_000, 10_000_000_000])
        XCTAssertEqual(config.proxies.map(\.maxPendingStartups), [8, 256, 256])
        try #"{"proxies": [{"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1", "max_pending_startups": 0}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ProxyFileConfig.load(path: path)) {
            XCTAssertTrue("\($0)".contains("max pending startups must be at least 1"), "\($0)")
        }
    }
}
