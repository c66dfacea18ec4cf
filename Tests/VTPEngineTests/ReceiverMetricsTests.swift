import BenchConfig
import LiveMetrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Protocol
@testable import VTPEngine
import XCTest

/// `--metrics` reads the receiver's loops between reports: nothing lost, nothing counted twice.
final class ReceiverMetricsTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!
    private var clientGroup: MultiThreadedEventLoopGroup!
    private let lines = NIOLockedValueBox<[String]>([])

    override func setUp() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    override func tearDown() {
        try? clientGroup.syncShutdownGracefully()
        try? group.syncShutdownGracefully()
    }

    private func startReceiver(reportInterval: Double) throws -> (VTPReceiver, port: Int) {
        var config = BenchConfiguration()
        config.port = 0
        config.reportInterval = reportInterval
        let receiver = try VTPReceiver(
            options: ReceiverOptions(configuration: config), group: group,
            output: { [lines] line in lines.withLockedValue { $0.append(line) } }, errorOutput: { _ in })
        return (receiver, try XCTUnwrap(receiver.start().wait().port))
    }

    func testScrapesBetweenReportsAgreeWithTheReportsAndTheSummary() throws {
        let (receiver, port) = try startReceiver(reportInterval: 0.01)  // reports and scrapes interleave
        let builder = TestEventBuilder(localIVO: "ivo://t/sender", eventSize: 0)
        var previous = 0
        for round in 1...6 {
            let client = try RawClient.connect(group: clientGroup, port: port)
            var buffer = ByteBuffer()
            for sequence in 0..<25 {
                builder.writeFramedDocument(
                    sequence: UInt64((round - 1) * 25 + sequence), sentNanos: WallClock.nowNanos(), into: &buffer)
            }
            try client.send(Array(buffer.readableBytesView))
            for _ in 0..<25 { _ = try client.readFrame() }  // every event acked
            let snapshot = try receiver.metricsSnapshot().wait()
            let received = try XCTUnwrap(snapshot.counters[.init(.eventsReceived)])
            XCTAssertEqual(received, 25 * round, "an acked event is in the next scrape")
            XCTAssertGreaterThanOrEqual(received, previous)
            XCTAssertEqual(snapshot.histograms[.init(.eventLatency)]?.count, 25 * round)
            XCTAssertEqual(snapshot.gauges[.init(.openConnections)], 1)
            previous = received
            client.close()
            Thread.sleep(forTimeInterval: 0.015)  // let a report run between scrapes
        }
        func reportedTotals() -> [Int] {
            lines.withLockedValue { $0 }.compactMap { line -> Int? in
                guard line.hasPrefix("Received ") else { return nil }
                return Int(line.dropFirst(9).prefix { $0.isNumber })
            }
        }
        // The next report includes what the scrapes took (bounded wait: a loaded machine is slow).
        for _ in 0..<500 where reportedTotals().last != 150 { Thread.sleep(forTimeInterval: 0.01) }
        receiver.stop()
        let summary = try receiver.done.wait()
        XCTAssertEqual(summary.received, 150, "scrapes take the loops' shares; the summary still has them all")
        XCTAssertEqual(summary.latency.count, 150)
        let reported = reportedTotals()
        XCTAssertEqual(reported.last, 150, "the reports' running total still adds up: \(reported)")
        XCTAssertEqual(reported, reported.sorted(), "reports never go back")
        let last = try receiver.metricsSnapshot().wait()
        XCTAssertEqual(last.counters[.init(.eventsReceived)], 150)
        XCTAssertEqual(last.counters[.init(.connectionsAccepted)], 6)
        XCTAssertEqual(last.gauges[.init(.openConnections)], 0)
        XCTAssertEqual(last.counters[.init(.duplicates)], 0)
    }

    /// Read, not taken: taking would reset the loops' HdrHistograms at every scrape, and each
    /// fresh one regrows on the hot path (40% of the receiver's CPU at 5 scrapes/s, measured).
    func testAScrapeLeavesTheLoopsTalliesForTheReport() throws {
        let (receiver, port) = try startReceiver(reportInterval: 60)  // no report during the test
        defer {
            receiver.stop()
            _ = try? receiver.done.wait()
        }
        let builder = TestEventBuilder(localIVO: "ivo://t/sender", eventSize: 0)
        let client = try RawClient.connect(group: clientGroup, port: port)
        defer { client.close() }
        var buffer = ByteBuffer()
        for sequence in 0..<25 {
            builder.writeFramedDocument(sequence: UInt64(sequence), sentNanos: WallClock.nowNanos(), into: &buffer)
        }
        try client.send(Array(buffer.readableBytesView))
        for _ in 0..<25 { _ = try client.readFrame() }
        for _ in 0..<3 {
            XCTAssertEqual(try receiver.metricsSnapshot().wait().counters[.init(.eventsReceived)], 25)
        }
        XCTAssertEqual(try receiver.loopShares().wait().reduce(0, +), 25, "the loops still hold their shares")
    }
}
