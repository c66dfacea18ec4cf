import BenchConfig
@testable import VTPEngine
import XCTest

/// `--failover all` bookkeeping without sockets: events delivered by any target, and one
/// summary from each target's.
final class AllTargetsTests: XCTestCase {
    func testDeliveredEventsCountEachEventOnceWhicheverTargetAckedIt() {
        var d = DeliveredEvents()
        for sequence: UInt64 in [0, 2, 1, 1, 5, 0] { d.delivered(sequence) }
        XCTAssertEqual(d.count, 4)
        XCTAssertEqual(d.prefix, 3, "0…2 collapse into the prefix")
        XCTAssertTrue(d.contains(5))
        XCTAssertFalse(d.contains(4))
        d.nakked(4)
        d.nakked(2)  // nak'd by one target, acked by another: delivered
        XCTAssertEqual(d.nakkedOnly, 1)
        d.delivered(4)
        XCTAssertEqual(d.nakkedOnly, 0, "acked later by another target")
        XCTAssertEqual(d.count, 5)
    }

    private func lane(_ target: String, sent: Int, acked: Int, failed: Int, resent: Int) -> SenderSummary {
        var s = SenderSummary(
            events: 10, sent: sent, acked: acked, nakked: 0, failed: failed, notSent: 0, maxBacklog: 3, backlogEnd: 0,
            connectionsOpened: 4, durationSeconds: 2, ackRoundTripStatistics: nil, retries: resent, errors: 1,
            errorsByCause: ["refused": 1], mode: "per-event", maxConnect: 4, maxConnectScope: "connection", window: 1,
            bursts: nil, clockOffset: nil, eventBytes: .init(min: 700, max: 710))
        s.targets = [
            TargetSummary(target: target, sent: sent + resent, acked: acked, nakked: 0, failed: sent - acked, failures: 1)
        ]
        s.duplicatesSent = resent
        s.seenBefore = 0
        return s
    }

    func testTheSummaryCountsAnEventDeliveredWhenAnyTargetAckedIt() {
        var tally = DeliveredEvents()
        for sequence: UInt64 in 0..<10 { tally.delivered(sequence) }
        let combined = AllTargetsSummary.combine(
            [lane("a:1", sent: 6, acked: 4, failed: 6, resent: 2), lane("b:2", sent: 10, acked: 10, failed: 0, resent: 0)],
            tally: tally, roundTrips: .init())
        XCTAssertEqual(combined.acked, 10)
        XCTAssertEqual(combined.lost, 0)
        XCTAssertEqual(combined.failed, 0)
        XCTAssertEqual(combined.sent, 10)
        XCTAssertEqual(combined.duplicatesSent, 2)
        XCTAssertEqual(combined.errors, 2)
        XCTAssertEqual(combined.errorsByCause, ["refused": 2])
        XCTAssertEqual(combined.connectionsOpened, 8)
        XCTAssertEqual(combined.failovers, [])
        XCTAssertEqual(combined.failoverMode, "all")
        XCTAssertEqual(combined.targets?.map(\.target), ["a:1", "b:2"])
        XCTAssertEqual(combined.targets?.map(\.failed), [6, 0], "a target failed every event it did not ack")
    }

    func testAnEventNoTargetAckedIsLost() {
        var tally = DeliveredEvents()
        for sequence: UInt64 in 0..<7 { tally.delivered(sequence) }
        tally.nakked(7)
        let combined = AllTargetsSummary.combine(
            [lane("a:1", sent: 10, acked: 7, failed: 3, resent: 0), lane("b:2", sent: 9, acked: 5, failed: 5, resent: 0)],
            tally: tally, roundTrips: .init())
        XCTAssertEqual(combined.acked, 7)
        XCTAssertEqual(combined.nakked, 1)
        XCTAssertEqual(combined.failed, 2)
        XCTAssertEqual(combined.lost, 3, "nak'd or never acked")
    }
}

/// The summary's failover lines: only with several targets.
final class FailoverSummaryTextTests: XCTestCase {
    func testFailoverLinesNameEachMoveAndEachTarget() {
        var s = SenderSummary(
            events: 10, sent: 10, acked: 10, nakked: 0, failed: 0, notSent: 0, maxBacklog: 0, backlogEnd: 0,
            connectionsOpened: 3, durationSeconds: 1, ackRoundTripStatistics: nil, retries: 2, errors: 1,
            errorsByCause: nil, mode: "per-event", maxConnect: 2, maxConnectScope: "connection", window: 1, bursts: nil,
            clockOffset: nil, eventBytes: nil)
        XCTAssertEqual(SenderSummaryText.failoverLines(s), [], "no targets listed: nothing to say")
        s.targets = [
            TargetSummary(target: "a:1", sent: 6, acked: 4, nakked: 0, failed: 2, failures: 1),
            TargetSummary(target: "b:2", sent: 6, acked: 6, nakked: 0, failed: 0, failures: 0),
        ]
        s.failovers = [
            FailoverRecord(
                from: "a:1", to: "b:2", detectedAtSeconds: 0.5, cause: .reset, unackedAtFailure: 2, resent: 2,
                rtoSeconds: 0.25)
        ]
        s.lost = 0
        s.duplicatesSent = 2
        s.failoverMode = "ordered"
        XCTAssertEqual(
            SenderSummaryText.failoverLines(s),
            [
                "failover (ordered): 1 failovers; lost 0, 2 duplicates sent",
                "  a:1 -> b:2 at 500 ms (reset): 2 unacked, 2 resent, RTO 250 ms",
                "  a:1: sent 6, acked 4, nak'd 0, failed 2 (1 times marked failed)",
                "  b:2: sent 6, acked 6, nak'd 0, failed 0",
            ])
        XCTAssertEqual(Array(SenderSummaryText.lines(s).suffix(4)), SenderSummaryText.failoverLines(s))
    }
}
