import Foundation
import XCTest

/// vtp-proxy run as a process: flags out of range are usage errors (exit 64), never a trap.
final class ProxyFlagsTests: XCTestCase {
    func testOutOfRangeDurationAndRateFlagsAreUsageErrors() throws {
        guard let proxy = builtExecutable("vtp-proxy") else { throw XCTSkip("vtp-proxy not built (swift build first)") }
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
