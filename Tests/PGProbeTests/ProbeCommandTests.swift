import Foundation
import LatencyStats
import PGSniff
import XCTest

@testable import PGProbeCore

/// The load options and what the probe measures with them, without a process.
final class LoadScheduleTests: XCTestCase {
    func testARateSchedulesEachQueryOnceAtItsSlot() throws {
        let schedule = QuerySchedule(
            options: QueryProbeOptions(dsn: DSN(host: "127.0.0.1", user: "u"), count: 4, ratePerSecond: 100))
        var slots: [(Int, ContinuousClock.Instant?)] = []
        while let slot = schedule.claim() { slots.append(slot) }
        XCTAssertEqual(slots.map(\.0), [0, 1, 2, 3])
        let offsets = slots.compactMap { $0.1.map { ($0 - schedule.start).nanoseconds } }
        XCTAssertEqual(offsets, [0, 10_000_000, 20_000_000, 30_000_000])
        XCTAssertNil(schedule.claim(), "the count is spent")
    }

    func testADurationEndsTheScheduleAndAHugeOffsetDoesNotOverflow() {
        // 10 queries/s for 0.25 s: slots at 0, 0.1 and 0.2 s; the count does not matter.
        let timed = QuerySchedule(
            options: QueryProbeOptions(
                dsn: DSN(host: "127.0.0.1", user: "u"), count: .max, ratePerSecond: 10, durationNanos: 250_000_000))
        var indices: [Int] = []
        while let slot = timed.claim() { indices.append(slot.index) }
        XCTAssertEqual(indices, [0, 1, 2])
        // One query a year would fall past any run: no slot, no trap.
        let slow = QuerySchedule(
            options: QueryProbeOptions(dsn: DSN(host: "127.0.0.1", user: "u"), count: .max, ratePerSecond: 1e-9))
        XCTAssertEqual(slow.claim()?.index, 0)
        XCTAssertNil(slow.claim())
    }

    func testLoopbackTrafficIsOnLoAndTheAdviceSaysSo() {
        XCTAssertEqual(InterfaceAdvice.interface(toward: "127.0.0.1", port: 5432), "lo")
        XCTAssertEqual(
            InterfaceAdvice.text(captured: "eth0", host: "127.0.0.1", port: 5432),
            "the capture on eth0 saw none of the probe's queries: traffic to 127.0.0.1:5432 goes over lo; run again"
                + " with --interface lo")
        XCTAssertNil(InterfaceAdvice.interface(toward: "nosuch.invalid", port: 5432))
    }

    /// The wire saw nothing: the client times measured are kept, the wire's are null.
    func testUnmatchedQueriesKeepTheirClientTimes() throws {
        var matcher = CrosscheckMatcher(tagger: QueryTagger(runID: "r"))
        matcher.addProbe(QueryOutcome(index: 0, latencyNanos: 400_000, sql: "SELECT 1"))
        matcher.addProbe(QueryOutcome(index: 1, latencyNanos: 600_000, sql: "SELECT 1"))
        matcher.resolve()
        let summary = matcher.summary
        XCTAssertEqual(summary.matched, 0)
        XCTAssertEqual(summary.unmatched, 2)
        XCTAssertEqual(summary.client_s.count, 2)
        XCTAssertEqual(summary.client_s.mean, 0.0005, accuracy: 1e-12)
        XCTAssertTrue(summary.client_s.humanLine.hasPrefix("n=2 min/avg/max 0.400/0.500/0.600 ms "), summary.client_s.humanLine)
        XCTAssertEqual(summary.wire_rtt_s.humanLine, "n/a")
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(summary)) as? [String: Any]
        XCTAssertTrue(json?["wire_rtt_s"] is NSNull)
        XCTAssertTrue(json?["client_minus_wire_s"] is NSNull)
        XCTAssertEqual((json?["client_s"] as? [String: Any])?["count"] as? Int, 2)
    }
}
