import BenchConfig
import DelayLink
import Foundation
import LabCore
import XCTest

/// `vtp-lab failover` for real: namespaces, the delay link, two vtp-receivers and vtp-sender; the
/// first receiver killed or silenced mid-run, reconciled by ivorn (~30 s).
final class FailoverLabTests: XCTestCase {
    private func run(_ configure: (inout FailoverLabSettings) -> Void) throws -> FailoverLabResult {
        try XCTSkipUnless(getuid() == 0, "needs root (network namespaces, TUN)")
        let bin = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("vtplab-failover-test-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: work) }
        var settings = FailoverLabSettings()
        settings.delayMs = 25
        settings.rate = 50
        settings.duration = 6
        settings.faultAt = 2.5
        configure(&settings)
        let paths = try LabRunner.Paths.locate(binDirectory: bin, workDirectory: work)
        let result = try FailoverLabRunner(settings: settings, paths: paths, link: .userspace, log: { _ in }).run()
        XCTAssertTrue(
            NetworkNamespaces.list().filter { $0.hasPrefix("vtplab-\(getpid())-") }.isEmpty, "namespaces removed")
        return result
    }

    func testAKilledFirstReceiverLosesNothingAcrossTheDelayLink() throws {
        let r = try run { $0.fault = .kill }
        XCTAssertEqual(r.missing, 0, FailoverReconciliation.table(r))
        XCTAssertEqual(r.delivered, r.events)
        XCTAssertEqual(r.lost, 0)
        XCTAssertEqual(r.sender_exit, 0)
        let failover = try XCTUnwrap(r.failovers.first, FailoverReconciliation.table(r))
        XCTAssertEqual(failover.from, "10.201.0.2:8098")
        // Detected once the reset crosses the link (one way) after the kill; the RTO spans at
        // least a connection set-up and an event's round trip to the second receiver (3 × delay).
        XCTAssertGreaterThanOrEqual(failover.detected_at_s, r.fault_at_s)
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(failover.rto_s), 3 * 0.025)
        XCTAssertGreaterThan(r.targets[1].csv_events, 0)
    }

    func testASilencedFirstReceiverIsDetectedByTheAckTimeout() throws {
        let ackTimeout = 1.5
        let r = try run {
            $0.fault = .silence
            $0.ackTimeout = ackTimeout
            $0.mode = .persistent
            $0.maxConnect = 2
            $0.window = 8
        }
        XCTAssertEqual(r.missing, 0, FailoverReconciliation.table(r))
        XCTAssertEqual(r.lost, 0)
        let failover = try XCTUnwrap(r.failovers.first, FailoverReconciliation.table(r))
        XCTAssertEqual(failover.cause, "ack_timeout")
        // An event written a round trip before the stop started its timeout that much earlier.
        XCTAssertGreaterThanOrEqual(failover.detected_at_s - r.fault_at_s, ackTimeout - 2 * 0.025 - 0.05, "\(failover)")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(failover.rto_s), ackTimeout - 0.1, "\(failover)")
        XCTAssertGreaterThan(failover.unacked_at_failure, 0)
        XCTAssertEqual(failover.resent, failover.unacked_at_failure)
    }
}
