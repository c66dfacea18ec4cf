import Foundation
import TestSupport
import XCTest

final class CometRolesTests: XCTestCase {
    /// Comet 3.1.0 between our sender and our subscriber (every event arrives, the latency it adds
    /// is printed beside a direct run), and as the subscriber of our broadcaster (every event acked).
    func testCometRelaysToOurSubscriberAndSubscribesToOurBroadcaster() throws {
        let required = ProcessInfo.processInfo.environment["VTPBENCH_REQUIRE_INTEROP"] == "1"
        if getuid() != 0 && !required { throw XCTSkip("needs root for a private network namespace (unshare --net)") }
        _ = try Tools.url("vtp-sender")
        let script = Tools.packageRoot.appendingPathComponent("scripts/comet-interop")
        let (status, out, err) = try RunningProcess.run(
            script, ["--bin", Tools.binDirectory.path, "--part", "roles", "--events", "100", "--rate", "40"], timeout: 300)
        XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
        XCTAssertTrue(out.contains("vtp-sender -> Comet 3.1.0 -> vtp-receiver --subscribe: 100/100 events arrived"), out)
        XCTAssertTrue(out.contains("comet-interop: one-way latency, 100 per-event events at 40/s: direct p50 "), out)
        XCTAssertTrue(out.contains("; the broker adds p50 "), out)
        XCTAssertTrue(out.contains("vtp-sender --broadcast -> Comet 3.1.0 subscriber: 25/25 acked"), out)
    }
}
