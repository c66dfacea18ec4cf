import BenchConfig
import LatencyStats
import LabCore
import XCTest

final class LabPlanTests: XCTestCase {
    func testCasesAreTheCrossProductAndPersistentIgnoresTheScope() throws {
        let cases = try LabPlan.cases(
            delays: [50, 250], maxConnects: [1, 30], modes: [.perEvent, .persistent], scopes: [.setup, .connection])
        // Per delay and max_connect: per-event × 2 scopes + persistent once.
        XCTAssertEqual(cases.count, 2 * 2 * 3)
        XCTAssertEqual(cases.first, LabCase(delayMs: 50, maxConnect: 1, mode: .perEvent, scope: .setup))
        XCTAssertEqual(cases.filter { $0.mode == .persistent }.count, 4)
        XCTAssertEqual(Set(cases).count, cases.count)
    }

    func testListsNameTheFlagOnBadInput() {
        XCTAssertEqual(try LabPlan.list("1, 30", flag: "--max-connect") { Int($0) }, [1, 30])
        XCTAssertThrowsError(try LabPlan.list("1,x", flag: "--max-connect") { Int($0) }) {
            XCTAssertTrue("\($0)".contains("--max-connect"))
            XCTAssertTrue("\($0)".contains("\"x\""))
        }
        XCTAssertThrowsError(try LabPlan.cases(delays: [50], maxConnects: [0], modes: [.perEvent], scopes: [.setup]))
        XCTAssertThrowsError(try LabPlan.cases(delays: [-1], maxConnects: [1], modes: [.perEvent], scopes: [.setup]))
    }

    func testSettingsEventsAndGrace() throws {
        let settings = LabSettings(rate: 46.3, duration: 30)
        XCTAssertEqual(settings.events, 1389)
        XCTAssertEqual(
            settings.grace(for: LabCase(delayMs: 250, maxConnect: 1, mode: .perEvent, scope: .setup)), 1.25,
            accuracy: 1e-9)
        XCTAssertThrowsError(try LabSettings(rate: 0, duration: 30).validate())
        XCTAssertThrowsError(try LabSettings(rate: 1, duration: -1).validate())
    }
}

final class LabReportTests: XCTestCase {
    private func row(maxConnect: Int, scope: MaxConnectScope, mean: Double) -> LabRow {
        LabRow(
            labCase: LabCase(delayMs: 250, maxConnect: maxConnect, mode: .perEvent, scope: scope), events: 1389,
            sent: 1389, received: 1389, acked: 1389, backlogEnd: 0, maxBacklog: 3,
            latency: LatencySummary(count: 1389, min: 0.7351, max: 0.7432, mean: mean, stddev: 0, p50: 0.737, p90: 0.738, p99: 0.741, p999: 0.743),
            ackRoundTripP50: 0.5, linkErrorP50: 0.00005, linkErrorP99: 0.0002, duration: 30, grace: 1.25)
    }

    func testJSONHasTheInterfaceKeys() throws {
        let data = try LabReport.json([row(maxConnect: 30, scope: .setup, mean: 0.737)])
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        let first = try XCTUnwrap(object.first)
        for key in ["delay_ms", "max_connect", "mode", "sent", "received", "backlog_end", "latency_s"] {
            XCTAssertNotNil(first[key], key)
        }
        let latency = try XCTUnwrap(first["latency_s"] as? [String: Double])
        // The interface keys; p50 was added later (57ef94a) and is an extra.
        XCTAssertEqual(Set(latency.keys).subtracting(["p50"]), ["min", "mean", "max", "p99"])
        XCTAssertEqual(latency["mean"], 0.737)
        XCTAssertEqual(first["mode"] as? String, "per-event")
    }

    func testCSVHasOneLinePerRowAndTheTableShowsTheOriginalBesideMatchingRows() {
        let rows = [row(maxConnect: 30, scope: .setup, mean: 0.737), row(maxConnect: 30, scope: .connection, mean: 9.1)]
        let csv = LabReport.csv(rows).split(separator: "\n")
        XCTAssertEqual(csv.count, 3)
        XCTAssertTrue(csv[1].hasPrefix("250.0,30,per-event,setup,1389,1389,1389,1389,0,3,0.735100,0.737000,"))
        let table = LabReport.table(rows, withOriginal: true).split(separator: "\n")
        XCTAssertEqual(table.count, 3)
        XCTAssertTrue(table[1].contains("0.735/0.737/0.743"), String(table[1]))
        XCTAssertFalse(table[2].contains("0.735/0.737/0.743"), "the connection scope is not what 2012 measured")
    }
}
