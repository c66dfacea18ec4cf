@testable import LabCore
import XCTest

/// `vtp-lab failover` without namespaces: its settings' checks and the reconciliation by ivorn.
final class FailoverLabPlanTests: XCTestCase {
    func testBadSettingsAreNamedInOneLine() {
        let cases: [(inout FailoverLabSettings) -> Void] = [
            { $0.rate = 0 }, { $0.duration = -1 }, { $0.faultAt = 30 }, { $0.maxConnect = 0 }, { $0.window = 0 },
            { $0.ackTimeout = 0 }, { $0.delayMs = -5 }, { $0.rate = .infinity }, { $0.graceSeconds = -1 },
        ]
        for (index, change) in cases.enumerated() {
            var settings = FailoverLabSettings()
            change(&settings)
            XCTAssertThrowsError(try settings.validate(), "case \(index)") { error in
                XCTAssertTrue((error as? LabError)?.isUsage ?? false, "\(error)")
                XCTAssertFalse("\(error)".contains("\n"))
            }
        }
        XCTAssertNoThrow(try FailoverLabSettings().validate())
        XCTAssertEqual(FailoverLabSettings().events, 2000)
    }

    func testTheUnionOfBothReceiversCSVsIsReconciledBySequence() throws {
        let header = "seq,ivorn,sent_ns,received_ns,latency_s,warmup\n"
        let row = { (seq: Int) in "\(seq),ivo://t/s#run-\(seq),1,2,0.000000001,0\n" }
        let first = header + (0..<6).map(row).joined()
        let second = header + ([4, 5] + Array(7..<10)).map(row).joined()  // 4, 5 resent; 6 missing
        var settings = FailoverLabSettings()
        settings.rate = 1
        settings.duration = 10
        let sender = FailoverSenderSummaryFile(
            events: 10, acked: 9, lost: 1, duplicates_sent: 2,
            failovers: [
                .init(from: "a:1", to: "b:2", detected_at_s: 3.2, cause: "reset", unacked_at_failure: 2, resent: 2, rto_s: 0.4)
            ],
            targets: [
                .init(target: "a:1", sent: 6, acked: 4, nakked: 0, failed: 2),
                .init(target: "b:2", sent: 6, acked: 5, nakked: 0, failed: 1),
            ])
        let r = FailoverReconciliation.result(
            settings: settings, targets: ["a:1", "b:2"], csvs: [first, second], sender: sender, faultAt: 3, senderExit: 1)
        XCTAssertEqual(r.delivered, 9)
        XCTAssertEqual(r.missing, 1)
        XCTAssertEqual(r.missing_first, [6])
        XCTAssertEqual(r.received_twice, 2)
        XCTAssertEqual(r.targets.map(\.csv_rows), [6, 5])
        XCTAssertEqual(r.targets.map(\.acked), [4, 5])
        XCTAssertEqual(r.targets[0].fault, "kill at 3.00 s")
        XCTAssertNil(r.targets[1].fault)
        let table = FailoverReconciliation.table(r)
        XCTAssertTrue(table.contains("at 3.20 s (reset), 2 unacked, 2 resent"), table)
        XCTAssertTrue(table.contains("400 ms"), "the RTO: \(table)")
        XCTAssertTrue(table.contains("missing 1, duplicates sent 2, received twice 2"), table)
        XCTAssertEqual(table.split(separator: "\n").count, 4, "header, two targets, the reconciled row")
    }
}
