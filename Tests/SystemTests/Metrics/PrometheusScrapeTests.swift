import Foundation
import TestSupport
import XCTest

/// `vtp-receiver --metrics` scraped by a real Prometheus server (Debian's `prometheus`, installed
/// by the script through scripts/setup-deps metrics) on loopback.
final class PrometheusScrapeTests: XCTestCase {
    func testPrometheusReportsTheCountTheReceiverSummaryReports() throws {
        _ = try Tools.url("vtp-receiver")
        _ = try Tools.url("vtp-sender")
        let installed = FileManager.default.isExecutableFile(atPath: "/usr/bin/prometheus")
        if !installed && getuid() != 0 { throw XCTSkip("needs root to install prometheus (scripts/setup-deps metrics)") }
        let script = Tools.packageRoot.appendingPathComponent("scripts/metrics-prometheus")
        let (status, out, err) = try RunningProcess.run(
            script, ["--bin", Tools.binDirectory.path, "--events", "1500"], timeout: 300)
        XCTAssertEqual(status, 0, "stdout:\n\(out)\nstderr:\n\(err)")
        XCTAssertTrue(out.contains("vtpbench_events_received_total (Prometheus API): 1500\n"), out)
        XCTAssertTrue(out.contains("vtpbench_event_latency_seconds_count (Prometheus API): 1500\n"), out)
        XCTAssertTrue(out.contains("receiver summary received: 1500\n"), out)
    }
}
