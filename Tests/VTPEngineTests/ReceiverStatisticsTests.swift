import BenchConfig
import Foundation
import LatencyStats
import VTPEngine
import XCTest

/// The receiver's statistics as plain values: per-loop tallies, their merge, the report lines
/// and the summary, without sockets.
final class ReceiverStatisticsTests: XCTestCase {
    private let second: Int64 = 1_000_000_000
    private let start: Int64 = 1_800_000_000 * 1_000_000_000  // 2027-01-15

    private func event(
        _ sequence: UInt64?, run: String? = "r", latencyNanos: Int64 = 2_000_000, at receivedNanos: Int64
    ) -> ReceivedEvent {
        ReceivedEvent(
            sequence: sequence, runID: run, ivorn: "ivo://t/a#\(sequence ?? 0)",
            sentNanos: receivedNanos - latencyNanos, receivedNanos: receivedNanos,
            remoteAddress: nil, remotePort: nil, inWarmup: false)
    }

    func testLoopTalliesMergeIntoWhatOneTallyWouldHaveCounted() {
        let warmup = WarmupWindow(seconds: 0)
        var one = ReceiverTally()
        var loops = [ReceiverTally(), ReceiverTally(), ReceiverTally()]
        for i in 0..<300 {
            let e = event(UInt64(i), latencyNanos: Int64(1_000_000 + i * 1_000), at: start + Int64(i) * 10_000_000)
            _ = one.record(e, warmup: warmup)
            _ = loops[i % 3].record(e, warmup: warmup)
        }
        var merged = ReceiverTally()
        for loop in loops { merged.merge(loop) }
        XCTAssertEqual(merged.received, one.received)
        XCTAssertEqual(merged.latency.summary.count, one.latency.summary.count)
        XCTAssertEqual(merged.latency.summary.min, one.latency.summary.min)
        XCTAssertEqual(merged.latency.summary.max, one.latency.summary.max)
        XCTAssertEqual(merged.latency.summary.p99, one.latency.summary.p99)
        XCTAssertEqual(merged.latency.summary.mean, one.latency.summary.mean, accuracy: 1e-12)
        XCTAssertEqual(merged.firstEventNanos, start)
        XCTAssertEqual(merged.lastEventNanos, start + 299 * 10_000_000)
        XCTAssertEqual(merged.eventsPerSecond ?? 0, 100, accuracy: 1e-6, "299 gaps of 10 ms")
    }

    func testWarmupIsMeasuredFromTheFirstEventOfAnyLoop() {
        let warmup = WarmupWindow(seconds: 0.5)
        var loopA = ReceiverTally()
        var loopB = ReceiverTally()
        // Loop A records first, but loop B received earlier: B's time anchors the warm-up.
        XCTAssertTrue(loopA.record(event(0, at: start + 300_000_000), warmup: warmup).inWarmup)
        XCTAssertTrue(loopB.record(event(1, at: start), warmup: warmup).inWarmup)
        XCTAssertFalse(loopA.record(event(2, at: start + 600_000_000), warmup: warmup).inWarmup)
        XCTAssertTrue(loopB.record(event(3, at: start + 499_000_000), warmup: warmup).inWarmup)
        loopA.merge(loopB)
        XCTAssertEqual(loopA.warmupExcluded, 3)
        XCTAssertEqual(loopA.latency.count, 1)
    }

    func testImplausibleTimestampsAreAckedCountedAndLeftOutOfTheStatistics() throws {
        let warmup = WarmupWindow(seconds: 0)
        var tally = ReceiverTally()
        let day = 86_400 * second
        for latency in [day + 1, -day - 1] {
            XCTAssertTrue(tally.record(event(nil, latencyNanos: latency, at: start), warmup: warmup).implausibleTimestamp)
        }
        for sent in [Int64.max, Int64.min] {  // latency saturates
            var hostile = event(nil, at: start)
            hostile.sentNanos = sent
            XCTAssertTrue(tally.record(hostile, warmup: warmup).implausibleTimestamp, "\(sent)")
        }
        for latency in [day, -day, 3_000_000] {
            XCTAssertFalse(tally.record(event(nil, latencyNanos: latency, at: start), warmup: warmup).implausibleTimestamp)
        }
        XCTAssertEqual(tally.received, 7)
        XCTAssertEqual(tally.implausibleTimestamps, 4)
        XCTAssertEqual(tally.latency.count, 3)
        var statistics = ReceiverStatistics(startNanos: start)
        statistics.absorb(tally)
        let summary = statistics.summary(nowNanos: start + second)
        XCTAssertEqual(summary.implausibleTimestamps, 4)
        XCTAssertEqual(summary.latency.count, 3)
        XCTAssertEqual(summary.latency.max, 86_400, "±1 day itself is still plausible")
        let text = ReceiverSummaryText.lines(summary).joined(separator: "\n")
        XCTAssertTrue(text.contains("4 events with an implausible timestamp (latency beyond ±1 day)"), text)
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(summary)) as? [String: Any]
        XCTAssertEqual(json?["implausible_timestamp"] as? Int, 4)
    }

    func testAnIdleReceiverSaysSoOnceAndReportsAgainWhenEventsArrive() {
        let warmup = WarmupWindow(seconds: 0)
        var statistics = ReceiverStatistics(startNanos: start)
        var now = start + 5 * second
        // Nothing yet: one line, then nothing.
        let first = statistics.report(adding: ReceiverTally(), nowNanos: now)
        XCTAssertEqual(first.count, 1)
        XCTAssertTrue(first[0].hasPrefix("Idle since "), first[0])
        XCTAssertTrue(first[0].contains("no events yet"), first[0])
        now += 5 * second
        XCTAssertEqual(statistics.report(adding: ReceiverTally(), nowNanos: now), [])

        var interval = ReceiverTally()
        for i in 0..<10 { _ = interval.record(event(UInt64(i), at: now + Int64(i) * 1_000_000), warmup: warmup) }
        statistics.record(sequences: (0..<10).map { SequenceSample(run: "r", sequence: UInt64($0)) })
        now += 5 * second
        let block = statistics.report(adding: interval, nowNanos: now)
        XCTAssertEqual(block.count, 3, block.joined(separator: "\n"))
        XCTAssertEqual(block[0], "Received 10 events; Latency 0.002000/0.002000/0.002000s (min/max/avg)")
        XCTAssertEqual(
            block[1], "  latency min/avg/max 2.00/2.00/2.00 ms, p50/p90/p99/p99.9 2.00/2.00/2.00/2.00 ms; 1,000 events/s overall")
        XCTAssertTrue(block[2].hasPrefix("  last 5.00 s: 10 events, 2.00 events/s; naks 0, duplicates 0, missing 0"), block[2])

        // Idle again: one line naming the last event's time, then nothing, for many intervals.
        now += 5 * second
        let idle = statistics.report(adding: ReceiverTally(), nowNanos: now)
        XCTAssertEqual(idle.count, 1)
        XCTAssertTrue(idle[0].contains("(the last event)"), idle[0])
        for _ in 0..<20 {
            now += 5 * second
            XCTAssertEqual(statistics.report(adding: ReceiverTally(), nowNanos: now), [])
        }
        // A nak is activity too: the block comes back.
        var nak = ReceiverTally()
        nak.naks = 1
        XCTAssertEqual(statistics.report(adding: nak, nowNanos: now + second).first, "Received 10 events; Latency 0.002000/0.002000/0.002000s (min/max/avg)")
    }

    func testEmptyStatisticsAreNullInJSONAndNotAvailableInText() throws {
        let summary = ReceiverStatistics(startNanos: start).summary(nowNanos: start + second)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: JSONEncoder().encode(summary)) as? [String: Any])
        XCTAssertTrue(json["latency_s"] is NSNull, "\(json)")
        XCTAssertTrue(json["events_per_s"] is NSNull, "\(json)")
        XCTAssertTrue(json["clock_offset_s"] is NSNull, "\(json)")
        XCTAssertEqual(json["received"] as? Int, 0)
        // Read back (vtp-lab decodes these files), also files written before the new keys.
        XCTAssertEqual(try JSONDecoder().decode(ReceiverSummary.self, from: JSONEncoder().encode(summary)), summary)
        let old = #"{"received":1,"unique":1,"duplicates":0,"missing":0,"out_of_order":0,"naks":0,"#
            + #""latency_s":{"count":1,"min":0.1,"max":0.1,"mean":0.1,"stddev":0,"p50":0.1,"p90":0.1,"p99":0.1,"p999":0.1},"#
            + #""warmup_excluded":0,"connections_accepted":1,"framing_errors":0,"negative_latencies":0,"duration_s":1,"#
            + #""within_clock_error":0}"#
        let decoded = try JSONDecoder().decode(ReceiverSummary.self, from: Data(old.utf8))
        XCTAssertEqual(decoded.latency.count, 1)
        XCTAssertNil(decoded.implausibleTimestamps)
        let text = ReceiverSummaryText.lines(summary)
        XCTAssertEqual(text[1], "Received 0 events; Latency n/a (min/max/avg)")
        XCTAssertTrue(text[2].contains("min/avg/max n/a"), text[2])
    }

    func testSecondsBecomeNanosecondsWithoutTrapping() {
        XCTAssertEqual(DurationRule.nanoseconds(1.5), 1_500_000_000)
        for absurd in [Double.infinity, 1e300, Double(Int64.max)] {
            XCTAssertEqual(DurationRule.nanoseconds(absurd), 1_000_000_000_000_000_000, "\(absurd)")
        }
        for nothing in [-Double.infinity, -1, 0, Double.nan] {
            XCTAssertEqual(DurationRule.nanoseconds(nothing), 0, "\(nothing)")
        }
        // A warm-up of 1e300 s: everything is warm-up, nothing traps.
        var tally = ReceiverTally()
        XCTAssertTrue(tally.record(event(0, at: start), warmup: WarmupWindow(seconds: 1e300)).inWarmup)
        XCTAssertFalse(tally.record(event(1, at: start), warmup: WarmupWindow(seconds: .nan)).inWarmup)
    }
}
