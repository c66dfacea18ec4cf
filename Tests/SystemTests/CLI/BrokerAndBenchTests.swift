import Foundation
import TestSupport
import XCTest

final class BenchmarkSmokeTests: XCTestCase {
    /// scripts/bench-core end to end with tiny counts: the benchmark's plumbing works.
    func testBenchCoreSmoke() throws {
        _ = try Tools.url("vtp-sender")
        let script = Tools.packageRoot.appendingPathComponent("scripts/bench-core")
        let (status, out, err) = try RunningProcess.run(script, ["--smoke", "--bin", Tools.binDirectory.path], timeout: 120)
        XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
        for row in ["per-event              1", "per-event             64", "persistent             8"] {
            XCTAssertTrue(out.contains(row), "missing row \(row):\n\(out)")
        }
        XCTAssertTrue(out.contains("ack round trip at a light rate"), out)
        XCTAssertTrue(out.contains("targets: per-event >= 10000 events/s"), out)
        // Windows side by side, the receiver's RSS with many connections, the round-trip floor.
        XCTAssertTrue(out.contains("persistent            64      64"), out)
        XCTAssertTrue(out.range(of: #"\n  W 64 +\d+ +\d+ +\d+\n"#, options: .regularExpression) != nil, out)
        // SwiftNIO's own per-event floor beside ours, with the ratio.
        XCTAssertTrue(out.range(of: #"\n  NIO floor +\d+ +\d+ +\d+ "#, options: .regularExpression) != nil, out)
        XCTAssertTrue(out.range(of: #"\n  ours/floor +\d+% +\d+% +\d+%\n"#, options: .regularExpression) != nil, out)
        XCTAssertTrue(out.range(of: #"receiver holding 300 connections \(300 opened"#, options: .regularExpression) != nil, out)
        XCTAssertTrue(out.contains("Comet"), out)
    }
}

final class CometInteropTests: XCTestCase {
    /// Comet 3.1.0 (PyPI) as broker for vtp-sender and as author (comet-sendvo) for vtp-receiver.
    func testCometBrokerAcksOurEventsAndCometSendvoGetsOurAck() throws {
        let required = ProcessInfo.processInfo.environment["VTPBENCH_REQUIRE_INTEROP"] == "1"
        if getuid() != 0 && !required { throw XCTSkip("needs root for a private network namespace (unshare --net)") }
        _ = try Tools.url("vtp-sender")
        let script = Tools.packageRoot.appendingPathComponent("scripts/comet-interop")
        let (status, out, err) = try RunningProcess.run(
            script, ["--bin", Tools.binDirectory.path, "--part", "basic"], timeout: 300)
        XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
        XCTAssertTrue(out.contains("vtp-sender (per-event) -> Comet 3.1.0 broker: 25/25 acked"), out)
        XCTAssertTrue(out.contains("vtp-sender (persistent) -> Comet 3.1.0 broker: 25/25 acked"), out)
        XCTAssertTrue(out.contains("comet-sendvo -> vtp-receiver: 2/2 acked"), out)
    }
}
