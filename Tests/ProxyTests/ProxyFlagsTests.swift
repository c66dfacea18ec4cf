import Foundation
import TestSupport
import XCTest

@testable import ProxyCore

/// vtp-proxy run as a process: flags out of range are usage errors (exit 64), never a trap.
final class ProxyFlagsTests: XCTestCase {
    func testOutOfRangeDurationAndRateFlagsAreUsageErrors() throws {
        guard let proxy = Tools.path("vtp-proxy") else { throw XCTSkip("vtp-proxy not built (swift build first)") }
        let base = ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"]
        // Each exited 132 (SIGILL: Double → Int64 conversion trap) before any check.
        let cases: [(flags: [String], names: String)] = [
            (["--latency", "1e308ms"], "--latency"),
            (["--jitter", "1e20s"], "--jitter"),
            (["--latency", "5000s"], "--latency"),  // parses, but beyond the 1 hour a toxic allows
            (["--connect-delay", "1e300s"], "--connect-delay"),
            (["--stall-probability", "0.1", "--stall-duration", "1e300ms"], "--stall-duration"),
            (["--bandwidth", "1e308gbit"], "--bandwidth"),
            (["--startup-timeout", "0s"], "--startup-timeout"),
            (["--max-pending-startups", "0"], "--max-pending-startups"),
            (["--toxic", #"{"type":"latency","attributes":{"latency":1e18}}"#], "--toxic"),
        ]
        for (flags, name) in cases {
            let run = try RunningProcess(proxy, base + flags)
            let exited = run.waitForExit(seconds: 20)  // a proxy that started anyway is stopped here
            XCTAssertTrue(exited, "\(flags): still running: \(run.text)")
            XCTAssertEqual(run.process.terminationReason, .exit, "\(flags): \(run.text)")
            XCTAssertEqual(run.process.terminationStatus, 64, "\(flags): \(run.text)")
            // The pipe may be drained a moment after the exit.
            XCTAssertNotNil(run.waitFor("Error: \(name)", seconds: 5), "\(flags): the error names the flag: \(run.text)")
        }
    }
}

/// vtp-proxy's vocabulary as a process: unknown flags named, one error line, --version.
final class ProxyVocabularyTests: XCTestCase {
    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        guard let proxy = Tools.path("vtp-proxy") else { throw XCTSkip("vtp-proxy not built (swift build first)") }
        return try runMerged(proxy, arguments)
    }

    func testAMisspelledFlagIsNamedWithASuggestion() throws {
        // Was answered with "give --listen and --upstream": the cross-flag check ran first.
        let (status, output) = try run(["--lisen", "127.0.0.1:1"])
        XCTAssertEqual(status, 64, output)
        XCTAssertTrue(output.contains("Unknown option '--lisen'"), output)
        XCTAssertTrue(output.contains("--listen"), "suggests the flag meant: \(output)")
        XCTAssertFalse(output.contains("give --listen and --upstream"), output)
    }

    func testBadInputIsOneErrorLineNamingTheFlag() throws {
        let base = ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"]
        let cases: [(flags: [String], expected: String)] = [
            ([], "Error: give --listen and --upstream (or --config FILE)"),
            (["--listen", "127.0.0.1:0"], "Error: --listen and --upstream go together (--upstream is missing)"),
            (base + ["--threads", "-1"], "Error: --threads: must be at least 1 (got -1)"),
            (base + ["--toxicity", "-0.5"], "Error: --toxicity: must be a probability in 0…1 (got -0.5)"),
            (base + ["--latency", "fast"], "Error: --latency: invalid duration \"fast\""),
            (base + ["--log", "/nonexistent-dir/proxy.jsonl"], "Error: --log: /nonexistent-dir/proxy.jsonl: directory"),
            (base + ["--toxic", #"{"type":"latncy"}"#], "did you mean latency?"),
        ]
        for (flags, expected) in cases {
            let (status, output) = try run(flags)
            XCTAssertEqual(status, 64, "\(flags): \(output)")
            XCTAssertTrue(output.contains(expected), "\(flags): \(output)")
            XCTAssertEqual(output.split(separator: "\n").filter { $0.hasPrefix("Error:") }.count, 1, "\(flags): \(output)")
            XCTAssertFalse(output.contains("ToxicType") || output.contains("DecodingError"), "\(flags): \(output)")
        }
    }

    func testVersion() throws {
        let (status, output) = try run(["--version"])
        XCTAssertEqual(status, 0, output)
        XCTAssertFalse(output.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
    }

    func testSignalEndsTheProxyWithItsStatisticsLines() throws {
        guard let proxy = Tools.path("vtp-proxy") else { throw XCTSkip("vtp-proxy not built (swift build first)") }
        let run = try RunningProcess(proxy, ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:1"])
        XCTAssertNotNil(run.waitFor("listening on", seconds: 20), run.text)
        run.process.interrupt()
        XCTAssertTrue(run.waitForExit(seconds: 20), run.text)
        XCTAssertEqual(run.process.terminationStatus, 0, run.text)
        XCTAssertNotNil(run.waitFor("[proxy] 0 connections accepted", seconds: 5), run.text)
    }
}

/// The flags → listener and toxics mapping, without a process.
final class ProxyCommandLineTests: XCTestCase {
    private func line(_ edit: (inout ProxyCommandLine) -> Void) -> ProxyCommandLine {
        var line = ProxyCommandLine(threads: 2)
        line.listen = "127.0.0.1:0"
        line.upstream = "127.0.0.1:5432"
        edit(&line)
        return line
    }

    func testFlagsBecomeToxicsPerDirection() throws {
        let spec = try line {
            $0.latency = "50ms"
            $0.jitter = "5"
            $0.bandwidth = "1mbit"
            $0.connectDelay = "rtt"
            $0.stallProbability = 0.1
            $0.toxicity = 0.5
        }.listenerSpec()
        let toxics = try XCTUnwrap(spec).toxics
        XCTAssertEqual(
            toxics.map(\.name),
            [
                "latency_upstream", "bandwidth_upstream", "stall_upstream", "latency_downstream", "bandwidth_downstream",
                "stall_downstream", "connect_delay",
            ])
        XCTAssertEqual(toxics[0].attributes, ["latency": 50, "jitter": 5])
        XCTAssertEqual(toxics[0].toxicity, 0.5)
        XCTAssertEqual(toxics[1].attributes, ["rate": 125])
        XCTAssertEqual(toxics[2].attributes, ["probability": 0.1, "duration": 200])
        XCTAssertEqual(toxics[6].attributes, [:], "rtt: one round trip of the latencies")
        let upstreamOnly = try line {
            $0.latency = "10ms"
            $0.direction = .upstream
        }.listenerSpec()
        XCTAssertEqual(upstreamOnly?.toxics.map(\.name), ["latency_upstream"])
    }

    func testDurationFlagsTakeUnitsAndBareMilliseconds() throws {
        for (text, milliseconds) in [("50ms", 50.0), ("1.5s", 1500), ("250us", 0.25), ("20", 20), ("100000ns", 0.1)] {
            let spec = try line { $0.latency = text }.listenerSpec()
            XCTAssertEqual(spec?.toxics.first?.attributes["latency"] ?? -1, milliseconds, accuracy: 1e-9, text)
        }
        XCTAssertEqual(try line { $0.startupTimeout = "250" }.listenerSpec()?.startupTimeoutNanos, 250_000_000)
    }

    func testErrorsNameTheFlag() {
        let cases: [(ProxyCommandLine, String)] = [
            (line { $0.latency = "-5ms" }, "--latency: invalid duration \"-5ms\" (a duration cannot be negative"),
            (line { $0.latency = "5000s" }, "--latency/--jitter: toxic \"latency_upstream\": attribute \"latency\" must be"),
            (line { $0.bandwidth = "fast" }, "--bandwidth: invalid bandwidth \"fast\""),
            (line { $0.startupTimeout = "0" }, "--startup-timeout: must be more than 0"),
            (line { $0.maxPendingStartups = 0 }, "--max-pending-startups: must be at least 1 (got 0)"),
            (line { $0.maxStartupLength = 3 }, "--max-startup-length: must be at least 8 bytes (got 3)"),
            (line { $0.stallProbability = 2 }, "--stall-probability: must be a probability in 0…1 (got 2.0)"),
            (line { $0.upstream = "nowhere" }, "--upstream: invalid address \"nowhere\""),
            (line { $0.control = "x" }, "--control: invalid address \"x\""),
            (line { $0.toxics = ["[]"] }, "--toxic []: not a toxic: "),
        ]
        for (line, expected) in cases {
            XCTAssertThrowsError(try line.plan()) { XCTAssertTrue("\($0)".hasPrefix(expected), "\($0)") }
        }
    }

    func testConfigFileAndFlagsMakeOnePlan() throws {
        let path = temporaryPath("plan.json")
        try #"{"control": "127.0.0.1:0", "proxies": [{"name": "a", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}]}"#
            .write(toFile: path, atomically: true, encoding: .utf8)
        let plan = try line {
            $0.config = path
            $0.control = "127.0.0.1:9"
        }.plan()
        XCTAssertEqual(plan.specs.map(\.name), ["a", "proxy"])
        XCTAssertEqual(plan.control, HostPort(host: "127.0.0.1", port: 9), "--control overrides the file's")
        XCTAssertEqual(plan.threads, 2)
    }
}
