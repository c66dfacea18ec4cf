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

    func testLatencyWithJitterKeepsByteOrderAndBounds() {
        var plan = DirectionPlan()
        plan.latencyNanos = 50_000_000
        plan.jitterNanos = 20_000_000
        var scheduler = ReleaseScheduler(plan: plan)
        var random = SeededGenerator(state: 7)
        var previous: Int64 = 0
        for index in 0..<1000 {
            let arrival = Int64(index) * 1_000_000
            let slices = scheduler.schedule(length: 100, arrival: arrival, using: &random)
            XCTAssertEqual(slices.count, 1)
            let release = slices[0].release
            XCTAssertGreaterThanOrEqual(release, previous, "a later chunk never overtakes an earlier one")
            XCTAssertGreaterThanOrEqual(release, arrival + 30_000_000)
            XCTAssertLessThanOrEqual(release, arrival + 70_000_000)
            previous = release
        }
    }

    func testLatencyIsNotSerialised() {
        // Chunks 1 ms apart with 50 ms latency leave 1 ms apart, not 50 ms apart.
        var plan = DirectionPlan()
        plan.latencyNanos = 50_000_000
        var scheduler = ReleaseScheduler(plan: plan)
        var random = SeededGenerator(state: 3)
        let releases = (0..<10).map { scheduler.schedule(length: 10, arrival: Int64($0) * 1_000_000, using: &random)[0].release }
        XCTAssertEqual(releases, (0..<10).map { Int64($0) * 1_000_000 + 50_000_000 })
    }

    func testBandwidthSpreadsBytesAtTheRate() {
        var plan = DirectionPlan()
        plan.bytesPerSecond = 100_000  // 100 KB/s
        var scheduler = ReleaseScheduler(plan: plan)
        var random = SeededGenerator(state: 3)
        let slices = scheduler.schedule(length: 50_000, arrival: 0, using: &random)
        XCTAssertEqual(slices.reduce(0) { $0 + $1.length }, 50_000)
        XCTAssertGreaterThan(slices.count, 10, "smooth, not one burst")
        XCTAssertEqual(Double(slices.last!.release), 0.5e9, accuracy: 1e6, "50 KB at 100 KB/s takes 0.5 s")
    }

    func testSlicerSplitsWithDelays() {
        var plan = DirectionPlan()
        plan.sliceAverage = 10
        plan.sliceVariation = 3
        plan.sliceDelayNanos = 1_000
        var scheduler = ReleaseScheduler(plan: plan)
        var random = SeededGenerator(state: 5)
        let slices = scheduler.schedule(length: 1000, arrival: 0, using: &random)
        XCTAssertEqual(slices.reduce(0) { $0 + $1.length }, 1000)
        XCTAssertTrue(slices.dropLast().allSatisfy { (7...13).contains($0.length) })
        for (a, b) in zip(slices, slices.dropFirst()) { XCTAssertEqual(b.release - a.release, 1_000) }
    }

    func testStallHoldsTheStreamBehindIt() {
        var plan = DirectionPlan()
        plan.stallProbability = 1
        plan.stallNanos = 200_000_000
        var scheduler = ReleaseScheduler(plan: plan)
        var random = SeededGenerator(state: 5)
        XCTAssertEqual(scheduler.schedule(length: 1, arrival: 0, using: &random)[0].release, 200_000_000)
        scheduler.plan.stallProbability = 0
        XCTAssertEqual(
            scheduler.schedule(length: 1, arrival: 1_000, using: &random)[0].release, 200_000_000,
            "the next chunk waits behind the stalled one")
        XCTAssertEqual(scheduler.scheduleEnd(arrival: 2_000), 200_000_000)
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
    }
}
