import BenchConfig
@testable import LabCore
import XCTest

/// `vtp-lab run --window` and `--burst`: the plan, the schedule, and the per-burst rows.
final class LabWindowBurstTests: XCTestCase {
    func testWindowsMultiplyPersistentCasesOnly() throws {
        let cases = try LabPlan.cases(
            delays: [250], maxConnects: [1], modes: [.perEvent, .persistent], scopes: [.connection], windows: [1, 32])
        XCTAssertEqual(cases.map(\.window), [1, 1, 32], "per-event once, persistent per window")
        XCTAssertEqual(cases.map(\.modeLabel), ["per-event", "persistent", "persistent W32"])
        XCTAssertEqual(LabCase(delayMs: 1, maxConnect: 1, mode: .perEvent, scope: .setup, window: 8).window, 1)
        XCTAssertThrowsError(
            try LabPlan.cases(delays: [50], maxConnects: [1], modes: [.persistent], scopes: [.setup], windows: [0])
        ) { XCTAssertTrue("\($0)".contains("--window"), "\($0)") }
    }

    func testBurstSettingsScheduleWholeBurstsAndWaitLongerForThem() throws {
        let settings = LabSettings(rate: 46.3, duration: 80, bursts: LabBursts(size: 10_000, everySeconds: 40))
        XCTAssertEqual(settings.burstCount, 2)
        XCTAssertEqual(settings.events, 20_000, "the rate is replaced")
        XCTAssertEqual(settings.intervalNanos, 40_000_000_000)
        XCTAssertEqual(settings.grace(for: LabCase(delayMs: 50, maxConnect: 8, mode: .persistent, scope: .connection)), 300)
        XCTAssertNoThrow(try settings.validate())
        XCTAssertThrowsError(try LabSettings(rate: 1, duration: 10, bursts: LabBursts(size: 0, everySeconds: 1)).validate()) {
            XCTAssertTrue("\($0)".hasPrefix("--burst must"), "\($0)")
        }
        XCTAssertThrowsError(try LabSettings(rate: 1, duration: 10, bursts: LabBursts(size: 5, everySeconds: 0)).validate())
    }

    func testTheTimelineDatesEachEventByItsBurst() {
        // 2 bursts of 3, 1 s apart; the sender ran 1.5 s; events 4 and 5 never arrived.
        let arrivals: [Int: Int64] = [0: 10, 1: 20, 2: 30, 3: 40]
        let timeline = EventTimeline.build(
            events: 6, intervalNanos: 1_000_000_000, senderElapsedNanos: 1_500_000_000, arrivals: arrivals, burstSize: 3)
        XCTAssertEqual(timeline.count, 6, "both bursts were due by 1.5 s")
        XCTAssertEqual(timeline[4], .queued(atLeastNanos: 500_000_000), "due at 1 s with its burst")
        XCTAssertEqual(
            EventTimeline.generated(events: 6, intervalNanos: 1_000_000_000, senderElapsedNanos: 999_999_999, burstSize: 3), 3)
    }

    func testEachBurstGetsItsDrainTimeAndTheLatencyOfItsEvents() throws {
        let timeline: [EventLatency] = [
            .arrived(nanos: 50_000_000), .arrived(nanos: 70_000_000), .arrived(nanos: 90_000_000),
            .arrived(nanos: 60_000_000), .queued(atLeastNanos: 1_000_000_000),
        ]
        let rows = LabRow.bursts(
            timeline: timeline, events: 5, size: 3, drains: [.init(burst: 0, drain_s: 0.14), .init(burst: 1, drain_s: nil)])
        XCTAssertEqual(rows.map(\.events), [3, 2])
        XCTAssertEqual(rows.map(\.received), [3, 1])
        XCTAssertEqual(rows[0].drain_s, 0.14)
        XCTAssertNil(rows[1].drain_s)
        XCTAssertEqual(try XCTUnwrap(rows[0].latency_s).max, 0.09, accuracy: 1e-9)
        XCTAssertEqual(try XCTUnwrap(rows[1].latency_s).max, 0.06, accuracy: 1e-9, "the queued event is not a latency")

        let labCase = LabCase(delayMs: 50, maxConnect: 8, mode: .persistent, scope: .connection, window: 64)
        let row = LabRow(
            labCase: labCase, rate: 1, duration: 2, grace: 300, intervalNanos: 1_000_000_000,
            sender: SenderSummaryFile(
                events: 5, sent: 5, acked: 4, nakked: 0, failed: 1, not_sent: 0, max_backlog: 3, backlog_end: 0,
                duration_s: 2, ack_rtt_s: nil,
                bursts: .init(per_burst: [.init(burst: 0, drain_s: 0.14), .init(burst: 1, drain_s: nil)])),
            receiver: ReceiverSummaryFile(received: 4, latency_s: nil), timeline: timeline, linkError: nil, complete: true,
            burstSize: 3)
        XCTAssertEqual(row.window, 64)
        XCTAssertEqual(row.burst_size, 3)
        XCTAssertNil(row.kept_up, "a burst is judged by its drain time")
        let table = try XCTUnwrap(LabReport.burstTable([row]))
        XCTAssertTrue(table.contains("persistent W64"), table)
        XCTAssertTrue(table.contains("140 ms"), table)
        XCTAssertTrue(LabReport.table([row]).contains("persistent W64"))
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: LabReport.json([row])) as? [[String: Any]])
        XCTAssertEqual(json[0]["window"] as? Int, 64)
        XCTAssertEqual((json[0]["bursts"] as? [[String: Any]])?.count, 2)
        XCTAssertTrue((json[0]["bursts"] as? [[String: Any]])?[1]["drain_s"] is NSNull, "not drained: null")
    }
}
