import BenchConfig
import CommandLineKit
import LatencyStats
import LabCore
import XCTest

/// The pure parts of a row: accounting, per-event latency with queued events, kept_up, the
/// link-accuracy warning, the events CSV.
final class CaseAnalysisTests: XCTestCase {
    private let labCase = LabCase(delayMs: 250, maxConnect: 1, mode: .perEvent, scope: .setup)

    func testAccountingTermsAddUpToTheEvents() {
        // (events, acked, nakked, backlog_end, not_sent): idle, backlog only, retries in the
        // backlog, nak'd events, a run stopped early.
        let states = [
            (1389, 1389, 0, 0, 0), (1389, 61, 0, 1327, 0), (100, 40, 5, 30, 0), (100, 90, 10, 0, 0),
            (1389, 20, 0, 40, 1300), (1, 0, 0, 0, 0),
        ]
        for (events, acked, nakked, backlog, notSent) in states {
            let accounting = CaseAccounting(
                events: events, acked: acked, nakked: nakked, backlogEnd: backlog, notSent: notSent)
            XCTAssertEqual(
                accounting.acked + accounting.nakked + accounting.inFlight + accounting.backlogEnd + accounting.notSent,
                events, "\(accounting)")
            XCTAssertEqual(accounting.failed, accounting.inFlight + accounting.backlogEnd, "\(accounting)")
            XCTAssertGreaterThanOrEqual(accounting.inFlight, 0)
        }
        XCTAssertEqual(CaseAccounting(events: 1389, acked: 61, nakked: 0, backlogEnd: 1327, notSent: 0).inFlight, 1)
    }

    /// A sender stopped by Ctrl-C that does not report `not_sent`: the events scheduled after it
    /// stopped are estimated, never more than the identity allows.
    func testNotSentIsEstimatedForAStoppedSender() {
        // 600 events 100 ms apart, stopped after 2.05 s: events 0…20 were generated.
        XCTAssertEqual(
            EventTimeline.generated(events: 600, intervalNanos: 100_000_000, senderElapsedNanos: 2_050_000_000), 21)
        XCTAssertEqual(
            CaseAccounting.estimatedNotSent(
                events: 600, acked: 18, nakked: 0, backlogEnd: 1, intervalNanos: 100_000_000,
                senderElapsedNanos: 2_050_000_000), 579)
        XCTAssertEqual(
            CaseAccounting.estimatedNotSent(
                events: 10, acked: 10, nakked: 0, backlogEnd: 0, intervalNanos: 100_000_000, senderElapsedNanos: 0), 0)
        XCTAssertEqual(EventTimeline.generated(events: 5, intervalNanos: 0, senderElapsedNanos: 0), 5)
    }

    func testRowsKeepTheIdentity() {
        let row = LabRow(
            labCase: labCase, events: 1389, sent: 62, received: 61, acked: 60, backlogEnd: 1327, maxBacklog: 1327,
            latency: LatencySummary(count: 61, min: 0.755, max: 29.7, mean: 15.3, stddev: 1, p50: 15, p90: 27, p99: 29, p999: 29.7),
            ackRoundTripP50: 1, linkErrorP50: 0.00002, linkErrorP99: 0.0005, duration: 30, grace: 1.25, nakked: 1)
        XCTAssertEqual(row.acked + row.nakked + row.in_flight + row.backlog_end + row.not_sent, row.events)
        XCTAssertEqual(row.in_flight, 1)
        XCTAssertEqual(row.failed, 1328)
    }

    private func flat(_ count: Int, seconds: Double) -> [EventLatency] {
        Array(repeating: .arrived(nanos: Int64(seconds * 1e9)), count: count)
    }

    func testKeptUpWhenTheBacklogIsBoundedAndLatencyIsFlat() throws {
        let timeline = flat(300, seconds: 0.750)
        let verdict = try XCTUnwrap(KeptUp.judge(backlogEnd: 0, events: 300, timeline: timeline, delaySeconds: 0.25))
        XCTAssertTrue(verdict.keptUp, verdict.detail)
        XCTAssertTrue(verdict.detail.contains("backlog_end 0 ≤ 3"), verdict.detail)
        // Growth within max(10% of 250 ms, 5 ms) = 25 ms still counts as flat.
        let slower = flat(200, seconds: 0.750) + flat(100, seconds: 0.774)
        XCTAssertEqual(KeptUp.judge(backlogEnd: 3, events: 300, timeline: slower, delaySeconds: 0.25)?.keptUp, true)
    }

    func testLatencyThatGrowsOverTheWindowDidNotKeepUp() throws {
        let growing = (0..<300).map { EventLatency.arrived(nanos: Int64(750_000_000 + $0 * 1_000_000)) }
        let verdict = try XCTUnwrap(KeptUp.judge(backlogEnd: 0, events: 300, timeline: growing, delaySeconds: 0.25))
        XCTAssertFalse(verdict.keptUp, verdict.detail)
        XCTAssertTrue(verdict.detail.contains(">"), verdict.detail)
        // The floor: at 10 ms of delay, 5 ms of growth is allowed, 6 ms is not.
        let small = flat(200, seconds: 0.030) + flat(100, seconds: 0.035)
        XCTAssertEqual(KeptUp.judge(backlogEnd: 0, events: 300, timeline: small, delaySeconds: 0.010)?.keptUp, true)
        let more = flat(200, seconds: 0.030) + flat(100, seconds: 0.036)
        XCTAssertEqual(KeptUp.judge(backlogEnd: 0, events: 300, timeline: more, delaySeconds: 0.010)?.keptUp, false)
    }

    func testABacklogAboveOnePercentDidNotKeepUp() throws {
        let timeline = flat(1389, seconds: 0.750)
        XCTAssertEqual(KeptUp.backlogBound(events: 1389), 13)
        XCTAssertEqual(KeptUp.judge(backlogEnd: 13, events: 1389, timeline: timeline, delaySeconds: 0.25)?.keptUp, true)
        XCTAssertEqual(KeptUp.judge(backlogEnd: 14, events: 1389, timeline: timeline, delaySeconds: 0.25)?.keptUp, false)
        XCTAssertEqual(KeptUp.backlogBound(events: 10), 1)
        XCTAssertNil(KeptUp.judge(backlogEnd: 0, events: 10, timeline: [], delaySeconds: 0.25))
    }

    /// Events not received count with their age when the sender stopped, so a backlog shows in
    /// the statistics instead of vanishing from them.
    func testQueuedEventsCountWithTheirAgeWhenTheSenderStopped() throws {
        // 6 events 1 s apart; 0…2 arrived after 0.5 s; the sender ran 10 s.
        let arrivals = [0: Int64(500_000_000), 1: 500_000_000, 2: 500_000_000]
        let timeline = EventTimeline.build(
            events: 6, intervalNanos: 1_000_000_000, senderElapsedNanos: 10_000_000_000, arrivals: arrivals)
        XCTAssertEqual(
            timeline,
            [
                .arrived(nanos: 500_000_000), .arrived(nanos: 500_000_000), .arrived(nanos: 500_000_000),
                .queued(atLeastNanos: 7_000_000_000), .queued(atLeastNanos: 6_000_000_000),
                .queued(atLeastNanos: 5_000_000_000),
            ])
        let summary = try XCTUnwrap(EventTimeline.summary(timeline))
        XCTAssertEqual(summary.count, 6)
        XCTAssertEqual(summary.queued, 3)
        XCTAssertEqual(summary.max, 7, accuracy: 1e-9)
        XCTAssertEqual(summary.min, 0.5, accuracy: 1e-9)
        XCTAssertEqual(KeptUp.judge(backlogEnd: 3, events: 6, timeline: timeline, delaySeconds: 0.1)?.keptUp, false)
    }

    func testEventsNeverGeneratedAreLeftOut() {
        // Stopped after 2.5 s of a 1-event-per-second run: events 3… were never scheduled.
        let timeline = EventTimeline.build(
            events: 10, intervalNanos: 1_000_000_000, senderElapsedNanos: 2_500_000_000, arrivals: [0: 100])
        XCTAssertEqual(
            timeline,
            [.arrived(nanos: 100), .queued(atLeastNanos: 1_500_000_000), .queued(atLeastNanos: 500_000_000)])
    }

    func testReceiverEventsCSVFirstArrivalByColumnName() {
        let csv = """
            seq,ivorn,sent_ns,received_ns,latency_s,warmup
            0,ivo://a#0,1000,2000,0.000001000,0
            1,"ivo://a,""quoted""#1",1000,5000,0.000004000,0
            1,ivo://a#1,1000,9000,0.000008000,0
            ,ivo://other,1000,3000,0.000002000,0
            2,ivo://a#2,garbage,3000,0,0

            """
        XCTAssertEqual(ReceiverEventsCSV.arrivals(csv), [0: 1000, 1: 4000])
        XCTAssertEqual(ReceiverEventsCSV.arrivals("received_ns,seq,sent_ns\n10,4,3\n"), [4: 7])
        XCTAssertEqual(ReceiverEventsCSV.arrivals(""), [:])
    }

    func testLinkErrorAboveFivePercentOfTheDelayWarns() throws {
        let warning = try XCTUnwrap(LinkAccuracy.warning(releaseErrorP99: 0.013, delaySeconds: 0.25))
        XCTAssertTrue(warning.contains("13.0 ms"), warning)
        XCTAssertTrue(warning.contains("exceeds 5% of the 250 ms delay"), warning)
        XCTAssertNil(LinkAccuracy.warning(releaseErrorP99: 0.012, delaySeconds: 0.25))
        XCTAssertNil(LinkAccuracy.warning(releaseErrorP99: 0.001, delaySeconds: 0))
        XCTAssertNil(LinkAccuracy.warning(releaseErrorP99: nil, delaySeconds: 0.25))
    }

    func testDelayListsTakeUnitsAndBareNumbersAreMilliseconds() throws {
        XCTAssertEqual(try LabPlan.delays("50,100ms,0.25s", flag: "--delay-ms"), [50, 100, 250])
        XCTAssertThrowsError(try LabPlan.delays("50,-5", flag: "--delay-ms")) { error in
            XCTAssertTrue("\(error)".hasPrefix("--delay-ms: "), "\(error)")
            XCTAssertTrue("\(error)".contains("negative"), "\(error)")
        }
    }
}

final class LabRowOutputTests: XCTestCase {
    private let labCase = LabCase(delayMs: 250, maxConnect: 30, mode: .perEvent, scope: .setup)

    /// What was not measured is `null`; every row carries the run's metadata and settings (the
    /// top level stays an array, as scripts and tests read it).
    func testJSONRowsCarryNullsNewKeysAndTheRunMetadata() throws {
        let nothingArrived = LabRow(
            labCase: labCase, events: 10, sent: 0, received: 0, acked: 0, backlogEnd: 10, maxBacklog: 10,
            latency: .empty, ackRoundTripP50: 0, linkErrorP50: 0, linkErrorP99: 0, duration: 1, grace: 0.5)
        let data = try LabReport.json([nothingArrived], metadata: RunMetadata(), settings: ["rate_events_s": 10])
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        let row = try XCTUnwrap(rows.first)
        for key in ["latency_s", "latency_incl_queued_s", "kept_up", "ack_rtt_p50_s"] {
            XCTAssertTrue(row[key] is NSNull, "\(key): \(String(describing: row[key]))")
        }
        XCTAssertEqual(row["failed"] as? Int, 10)
        XCTAssertEqual(row["in_flight"] as? Int, 0)
        XCTAssertEqual(row["complete"] as? Bool, true)
        XCTAssertNotNil(row["run_id"] as? String)
        XCTAssertNotNil(row["started_at"] as? String)
        XCTAssertEqual((row["settings"] as? [String: Any])?["rate_events_s"] as? Int, 10)
    }

    func testTableAndLineUseTheOneNumberFormat() {
        let timeline = Array(repeating: EventLatency.arrived(nanos: 737_000_000), count: 1389)
        let row = LabRow(
            labCase: labCase, events: 1389, sent: 1389, received: 1389, acked: 1389, backlogEnd: 0, maxBacklog: 3,
            latency: LatencySummary(
                count: 1389, min: 0.7351, max: 0.7432, mean: 0.737, stddev: 0, p50: 0.737, p90: 0.738, p99: 0.741,
                p999: 0.743),
            ackRoundTripP50: 0.5, linkErrorP50: 0.00005, linkErrorP99: 0.0002, duration: 30, grace: 1.25,
            timeline: timeline)
        let table = LabReport.table([row]).split(separator: "\n")
        XCTAssertTrue(table[1].contains("min/avg/max 735/737/743 ms"), String(table[1]))
        XCTAssertTrue(table[1].contains("yes"), String(table[1]))
        let line = LabReport.line(row)
        XCTAssertTrue(line.contains("kept up: yes"), line)
        XCTAssertTrue(line.contains("46.3 events/s offered"), line)
        XCTAssertTrue(line.contains("link release error p50/p99 0.0500/0.200 ms"), line)
        XCTAssertFalse(line.contains("0.7351"), "one format, no raw decimals: \(line)")
    }
}
