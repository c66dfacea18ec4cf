import Foundation
import LatencyStats
import ResultsStore
import XCTest

@testable import ReportCore

final class ReportCoreTests: XCTestCase {
    static let start = Date(timeIntervalSince1970: 1_700_000_000)

    /// A run with `intervals` one-second intervals; interval i has latencies around `base × (i+1)`.
    static func digest(
        tool: String = "vtp-receiver", tags: [String: String] = [:], tester: String = "t1", intervals: Int = 5,
        baseNanos: Int64 = 1_000_000, emptyIntervals: Set<Int> = [], summary: [String: Any] = [:], config: [String: Any] = [:]
    ) -> RunDigest {
        let id = UUID().uuidString.lowercased()
        let run = StoredRun(
            id: id, tool: tool, toolVersion: "0.3.0", host: "h", tester: tester, startedAt: start,
            endedAt: start.addingTimeInterval(Double(intervals)), config: JSONText.text(config), tags: tags,
            summary: JSONText.text(summary))
        let stored = (0..<intervals).map { i -> StoredInterval in
            var recorder = LatencyRecorder()
            if !emptyIntervals.contains(i) {
                for k in 0..<100 { recorder.record(nanos: baseNanos * Int64(i + 1) + Int64(k) * 1_000) }
            }
            let begin = Int64(1_700_000_000 + i) * 1_000_000_000
            return StoredInterval(
                ReportInterval(
                    startNanos: begin, endNanos: begin + 1_000_000_000, events: recorder.count, latency: recorder,
                    naks: i == 2 ? 10 : 0, backlog: tool == "vtp-sender" ? 5 - i : nil), runID: id, seq: i)
        }
        return RunDigest(run: run, intervals: stored)
    }

    func testDigestPercentilesComeFromTheMergedHistograms() {
        let digest = Self.digest(intervals: 4)
        // 400 samples: 100 each near 1, 2, 3, 4 ms. The median of all is near 2 ms; the mean of
        // the intervals' medians would be 2.5 ms.
        XCTAssertEqual(digest.samples, 400)
        XCTAssertEqual(digest.p50 ?? 0, 0.002_05, accuracy: 0.000_1)
        XCTAssertEqual(digest.p99 ?? 0, 0.004_1, accuracy: 0.000_1)
        XCTAssertEqual(digest.events, 400)
    }

    func testCompareByTagMergesRunsPerValueAndOrdersNumerically() {
        let runs = [
            Self.digest(tags: ["max_connect": "30"], baseNanos: 3_000_000),
            Self.digest(tags: ["max_connect": "1"], baseNanos: 1_000_000),
            Self.digest(tags: ["max_connect": "30"], baseNanos: 3_000_000),
            Self.digest(tags: ["other": "x"]),
        ]
        let lines = ReportText.compare(by: "max_connect", runs)
        XCTAssertEqual(lines.count, 3, lines.joined(separator: "\n"))
        XCTAssertTrue(lines[0].hasPrefix("max_connect  tool"), lines[0])
        XCTAssertTrue(lines[1].hasPrefix("1 "), lines[1])
        XCTAssertTrue(lines[2].hasPrefix("30"), lines[2])
        let groups = SweepGroup.make(by: "max_connect", runs)
        XCTAssertEqual(groups.map(\.runs.count), [1, 2])
        XCTAssertEqual(groups[1].samples, 1000)
        XCTAssertEqual(SweepGroup.sortValues(["250ms", "50ms", "1s"]), ["50ms", "250ms", "1s"])
        XCTAssertEqual(ReportText.compare(by: "nothing", runs), ["no runs tagged nothing (vtp-report list shows the tags)"])
    }

    func testCompareShowsChangesFromTheFirstRun() {
        let lines = ReportText.compare([Self.digest(baseNanos: 1_000_000), Self.digest(baseNanos: 2_000_000)])
        let p50 = lines.first { $0.hasPrefix("p50") } ?? ""
        XCTAssertTrue(p50.contains("+9") || p50.contains("+1"), p50)  // about double: +95…100%
        XCTAssertTrue(lines.contains { $0.hasPrefix("loss") }, lines.joined(separator: "\n"))
    }

    func testListJSONHasTheIssueKeys() throws {
        let digest = Self.digest(tags: ["site": "a"])
        let data = Data(ReportText.listJSON([digest.run]).utf8)
        let array = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(Set(array[0].keys), ["id", "tool", "tester", "started_at", "ended_at", "tags"])
        XCTAssertEqual(array[0]["tags"] as? [String: String], ["site": "a"])
    }

    func testHTMLHasOnePointPerMeasuredIntervalAndFetchesNothing() throws {
        let receiver = Self.digest(tags: ["max_connect": "1"], intervals: 6, emptyIntervals: [3])
        let sender = Self.digest(
            tool: "vtp-sender", tags: ["max_connect": "30"], tester: "eu", intervals: 4,
            config: ["host": "10.0.0.2", "port": 8098])
        let html = HTMLReport(digests: [receiver, sender], storeName: "x.sqlite", generatedAt: Self.start).render()
        // Smoke: a median point per interval with samples, named by its sequence number.
        let smoke = try XCTUnwrap(section(of: html, containing: "smoke\"", run: receiver.run.id))
        XCTAssertEqual(smoke.components(separatedBy: "<circle class=\"pt\"").count - 1, 5)
        XCTAssertFalse(smoke.contains("data-seq=\"3\""), "the empty interval has no median")
        // Throughput: a point per interval.
        XCTAssertEqual(html.components(separatedBy: "<circle class=\"tp\"").count - 1, 6 + 4)
        // Axis labels carry units; the spectrum's axis is in percentiles.
        for label in ["one-way latency (ms)", "time since the first interval (s)", "events/s", "backlog (events)", "99.9%", "max_connect"] {
            XCTAssertTrue(html.contains(label), label)
        }
        // Sweep (auto: max_connect varies) and matrix (the sender's target).
        XCTAssertTrue(html.contains("Latency against max_connect"))
        XCTAssertTrue(html.contains("10.0.0.2:8098"))
        // Nothing loaded from anywhere: no src, no http(s) links other than the SVG namespace.
        XCTAssertFalse(html.contains("src="))
        let links = html.components(separatedBy: "http").count - 1
        let namespaces = html.components(separatedBy: "xmlns=\"http://www.w3.org/2000/svg\"").count - 1
        XCTAssertEqual(links, namespaces)
        // Every chart has a table of its numbers.
        XCTAssertGreaterThanOrEqual(html.components(separatedBy: "<table").count - 1, html.components(separatedBy: "<svg").count - 1)
    }

    func testHTMLEscapesWhatUsersTyped() {
        let digest = Self.digest(tags: ["site": "<script>alert(1)</script>"])
        let html = HTMLReport(digests: [digest]).render()
        XCTAssertFalse(html.contains("<script>alert"))
        XCTAssertTrue(html.contains("&lt;script&gt;alert"))
    }

    func testScalesAndTicks() {
        let linear = PlotScale(values: [0.3, 7.2], range: PixelSpan(from: 300, to: 20))
        XCTAssertEqual(linear.domain, 0...8)
        XCTAssertEqual(linear.ticks, [0, 2, 4, 6, 8])
        XCTAssertEqual(linear(0), 300)
        XCTAssertEqual(linear(8), 20)
        let log = PlotScale(kind: .log10, values: [1, 2_000], range: PixelSpan(from: 0, to: 400))
        XCTAssertEqual(log.domain, 1...10_000)
        XCTAssertEqual(log(100), 200, accuracy: 1e-9)
        XCTAssertEqual(tickText(20), "20")
        XCTAssertEqual(tickText(2.5), "2.5")
        let flat = PlotScale(values: [], range: PixelSpan(from: 0, to: 1))
        XCTAssertTrue(flat.domain.upperBound > flat.domain.lowerBound)
    }

    func testExportsHgrmAndCSV() {
        let digest = Self.digest(intervals: 3)
        let hgrm = ReportExport.hgrm(digest)
        XCTAssertTrue(hgrm.contains("Value") && hgrm.contains("#[Max"), hgrm)
        let csv = ReportExport.csv(digest).split(separator: "\n")
        XCTAssertEqual(csv.count, 4)
        XCTAssertTrue(csv[0].hasPrefix("seq,started_at,duration_s,events,count"))
    }

    /// The `<section>` holding `marker` and the run's id.
    private func section(of html: String, containing marker: String, run: String) -> String? {
        html.components(separatedBy: "<section>").first { $0.contains(marker) && $0.contains(run) }
    }
}
