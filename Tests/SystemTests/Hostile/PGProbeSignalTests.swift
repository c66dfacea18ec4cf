import Foundation
import TestSupport
import XCTest

/// pgprobe query stopped by SIGTERM mid-run: its final line and summary JSON cover every query.
final class PGProbeSignalTests: ClusterTestCase {
    func testQueryOnSIGTERMWritesItsSummary() throws {
        let cluster = try self.cluster()
        let summary = FileManager.default.temporaryDirectory.appendingPathComponent("pgprobe-term-\(UUID()).json")
        defer { try? FileManager.default.removeItem(at: summary) }
        let probe = try RunningProcess(
            try Tools.url("pgprobe"),
            ["query", "--dsn", cluster.dsn, "--no-store", "--rate", "100", "--duration", "10m", "--summary-json", summary.path])
        // A few queries in, then the signal.
        XCTAssertNotNil(probe.waitFor("pgprobe query:", seconds: 30), probe.text)
        Thread.sleep(forTimeInterval: 1)
        kill(probe.process.processIdentifier, SIGTERM)
        XCTAssertEqual(probe.wait(timeout: 30), 0, probe.text)
        let final = try XCTUnwrap(probe.stdout.split(separator: "\n").last { $0.hasPrefix("pgprobe query: ") && $0.contains(" queries, ") })
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: summary)) as? [String: Any])
        let count = try XCTUnwrap(json["count"] as? Int)
        XCTAssertGreaterThan(count, 0)
        XCTAssertTrue(final.hasPrefix("pgprobe query: \(count) queries"), "the line and the file agree: \(final)")
    }
}
