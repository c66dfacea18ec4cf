import BenchConfig
import DelayLink
import Foundation
import LabCore
import XCTest

/// `vtp-lab` with windows and bursts over a real 50 ms delay link (~25 s).
final class LabWindowRunTests: XCTestCase {
    private var binDirectory: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    }

    private func runner(_ settings: LabSettings) throws -> LabRunner {
        try XCTSkipUnless(getuid() == 0, "needs root (network namespaces, TUN)")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("vtplab-window-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let paths = try LabRunner.Paths.locate(binDirectory: binDirectory, workDirectory: work)
        return try LabRunner(settings: settings, paths: paths, log: { _ in })
    }

    /// One connection at 50 ms one way: W 1 carries at most 10 events/s (one per round trip), so
    /// 40/s falls behind; W 8 carries 80/s and keeps up at about one delay.
    func testAWindowLetsOneConnectionCarryMoreThanOneEventPerRoundTrip() throws {
        let lab = try runner(LabSettings(rate: 40, duration: 3))
        let rows = try lab.run([
            LabCase(delayMs: 50, maxConnect: 1, mode: .persistent, scope: .connection, window: 1),
            LabCase(delayMs: 50, maxConnect: 1, mode: .persistent, scope: .connection, window: 8),
        ])
        XCTAssertEqual(rows[0].kept_up, false, "\(rows[0])")
        XCTAssertEqual(rows[1].kept_up, true, "\(rows[1])")
        XCTAssertEqual(rows[1].received, 120)
        XCTAssertEqual(rows[1].window, 8)
        let latency = try XCTUnwrap(rows[1].latency_s)
        XCTAssertGreaterThanOrEqual(latency.min, 0.050, "never faster than the link")
        // Median within 15 ms of one delay (stated slack for a loaded 2-core machine).
        XCTAssertLessThan(try XCTUnwrap(latency.p50), 0.050 + 0.015)
    }

    func testBurstsAreDrainedAndEachGetsItsRow() throws {
        let lab = try runner(LabSettings(rate: 1, duration: 2, bursts: LabBursts(size: 200, everySeconds: 1)))
        let row = try lab.run(LabCase(delayMs: 50, maxConnect: 2, mode: .persistent, scope: .connection, window: 16))
        XCTAssertEqual(row.events, 400)
        XCTAssertEqual(row.received, 400)
        let bursts = try XCTUnwrap(row.bursts)
        XCTAssertEqual(bursts.map(\.received), [200, 200])
        for burst in bursts {
            // 200 events over 2 × 16 in flight: at least 7 round trips of 100 ms, after the first delay.
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(burst.drain_s), 0.6, "\(burst)")
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(burst.latency_s).min, 0.050, "\(burst)")
        }
    }
}
