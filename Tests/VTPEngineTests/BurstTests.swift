import BenchConfig
import Foundation
import NIOCore
import NIOPosix
@testable import VTPEngine
import XCTest

/// `--burst N --burst-every S`: the schedule (pure), the drain times, and a loopback run.
final class BurstTests: XCTestCase {
    func testABurstIsDueAtOneInstantAndStampedWithIt() {
        var s = SenderDispatchState(
            mode: .persistent, scope: .connection, maxConnect: 1, totalEvents: 7, intervalNanos: 100,
            startWallNanos: 5000, window: 8, burstSize: 3)
        XCTAssertEqual((0..<7).map { s.scheduledOffsetNanos(of: $0) }, [0, 0, 0, 100, 100, 100, 200])
        XCTAssertEqual(s.dueCount(elapsedNanos: 0), 3)
        XCTAssertEqual(s.dueCount(elapsedNanos: 99), 3)
        XCTAssertEqual(s.dueCount(elapsedNanos: 100), 6)
        XCTAssertEqual(s.dueCount(elapsedNanos: 250), 7, "capped at the total")
        XCTAssertEqual(s.dueCount(elapsedNanos: .max), 7)
        let id = s.eventsDue(3, now: 0).compactMap { if case .connect(let id) = $0 { return id } else { return nil } }[0]
        let stamps = s.connected(id, now: 0).compactMap { if case .send(_, let e) = $0 { return e.scheduledNanos } else { return nil } }
        XCTAssertEqual(stamps, [5000, 5000, 5000], "every event of a burst carries the burst's instant")
    }

    func testAHugeScheduleSaturatesInsteadOfTrapping() {
        let s = SenderDispatchState(
            mode: .perEvent, scope: .connection, maxConnect: 1, totalEvents: Int.max, intervalNanos: 604_800_000_000_000,
            startWallNanos: 0, burstSize: 1)
        XCTAssertEqual(s.scheduledOffsetNanos(of: UInt64(Int.max) - 1), .max)
        XCTAssertEqual(s.dueCount(elapsedNanos: .max), 15_251, "every instant up to Int64.max ns, each one event")
    }

    func testDrainTimeRunsFromTheBurstsInstantToItsLastReply() {
        var t = BurstTracker(burstSize: 2, intervalNanos: 1_000, totalEvents: 5)
        XCTAssertEqual(t.burstCount, 3)
        t.replied(sequence: 1, accepted: true, offsetNanos: 300)
        t.replied(sequence: 0, accepted: true, offsetNanos: 400)  // burst 0 drained at 400
        t.replied(sequence: 2, accepted: false, offsetNanos: 1_900)
        t.replied(sequence: 4, accepted: true, offsetNanos: 2_050)  // burst 2 (one event) at 2000 + 50
        let s = t.summary
        XCTAssertEqual(s.bursts, 3)
        XCTAssertEqual(s.drained, 2)
        XCTAssertEqual(s.perBurst.map(\.burst), [0, 1, 2])
        XCTAssertEqual(s.perBurst[0].drainSeconds, 400e-9)
        XCTAssertNil(s.perBurst[1].drainSeconds, "event 3 never answered")
        XCTAssertEqual(s.perBurst[1].nakked, 1)
        XCTAssertEqual(s.perBurst[2].drainSeconds, 50e-9)
        XCTAssertEqual(s.drainStatistics?.count, 2)
        let json = String(decoding: try! JSONEncoder().encode(s), as: UTF8.self)
        XCTAssertTrue(json.contains("\"drain_s\":null"), json)
    }

    func testBurstsOverLoopbackAreDeliveredWithTheirInstantAsTimestamp() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { try? group.syncShutdownGracefully() }
        let csv = FileManager.default.temporaryDirectory.appendingPathComponent("bursts-\(UUID()).csv").path
        defer { try? FileManager.default.removeItem(atPath: csv) }
        var config = BenchConfiguration()
        config.port = 0
        config.reportInterval = 10
        var receiverOptions = ReceiverOptions(configuration: config)
        receiverOptions.eventsCSVPath = csv
        let receiver = try VTPReceiver(options: receiverOptions, group: group, output: { _ in }, errorOutput: { _ in })
        config.port = try XCTUnwrap(receiver.start().wait().port)
        config.events = 150
        config.burst = 50
        config.burstEvery = 0.3
        config.mode = .persistent
        config.maxConnect = 2
        config.window = 8
        config.drainTimeout = 300
        let summary = try VTPSender(options: SenderOptions(configuration: config), group: group, output: { _ in }).start().wait()
        receiver.stop()
        _ = try receiver.done.wait()
        XCTAssertEqual(summary.acked, 150)
        let bursts = try XCTUnwrap(summary.bursts)
        XCTAssertEqual(bursts.bursts, 3)
        XCTAssertEqual(bursts.drained, 3)
        XCTAssertEqual(bursts.perBurst.map(\.acked), [50, 50, 50])
        XCTAssertGreaterThanOrEqual(summary.durationSeconds, 0.6, "the last burst is due 0.6 s in")
        let stamps = try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").dropFirst()
            .map { Int64($0.split(separator: ",")[2])! }
        let instants = Set(stamps).sorted()
        XCTAssertEqual(instants.count, 3, "one timestamp per burst")
        XCTAssertEqual(Double(instants[2] - instants[0]) / 1e9, 0.6, accuracy: 1e-6, "the instants 0.3 s apart")
        XCTAssertTrue(SenderSummaryText.lines(summary).contains { $0.hasPrefix("bursts: 3 of 3 drained (50 events every 300") })
    }
}
