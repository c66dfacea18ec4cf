import NIOCore
import Protocol
import VTPEngine
import XCTest

final class ClockOffsetTests: XCTestCase {
    func testFourTimestampsGiveOffsetDelayAndBound() {
        // Receiver clock 5 ms ahead; 10 ms out, 30 ms back (asymmetric); 1 ms processing.
        let t0: Int64 = 1_000_000_000
        let t1 = t0 + 10_000_000 + 5_000_000
        let t2 = t1 + 1_000_000
        let t3 = (t2 - 5_000_000) + 30_000_000
        let sample = ClockSample(sent: t0, received: t1, replied: t2, ackRead: t3)
        XCTAssertEqual(sample.delayNanos, 40_000_000)
        XCTAssertEqual(sample.errorBoundNanos, 20_000_000)
        // Asymmetry biases the estimate (−5 ms here), never beyond the bound.
        XCTAssertEqual(sample.offsetNanos, -5_000_000)
        XCTAssertLessThanOrEqual(abs(sample.offsetNanos - 5_000_000), sample.errorBoundNanos)
    }

    func testEstimatorKeepsTheTightestRecentSample() {
        var estimator = ClockOffsetEstimator(window: 3)
        XCTAssertNil(estimator.estimate)
        let wide = ClockSample(sent: 0, received: 50, replied: 50, ackRead: 120)
        let tight = ClockSample(sent: 0, received: 10, replied: 10, ackRead: 12)
        estimator.add(wide)
        estimator.add(tight)
        estimator.add(wide)
        XCTAssertEqual(estimator.estimate, tight)
        estimator.add(wide)
        estimator.add(wide)  // the tight sample has left the window
        XCTAssertEqual(estimator.estimate, wide)
        estimator.add(ClockSample(sent: 0, received: 100, replied: 200, ackRead: 50))  // negative delay: ignored
        XCTAssertEqual(estimator.samples, 5)
    }

    func testEventsCarryTheEstimateAndKeepTheirSize() throws {
        let builder = TestEventBuilder(localIVO: "ivo://x.test/s", runID: "r", eventSize: 1500)
        var buffer = ByteBufferAllocator().buffer(capacity: 2000)
        builder.writeFramedDocument(sequence: 3, sentNanos: 42, clockOffset: (-1234, 567), into: &buffer)
        XCTAssertEqual(buffer.readableBytes, 1504)
        buffer.moveReaderIndex(forwardBy: 4)
        guard case .voEvent(let event) = try VTPMessage.parse(buffer) else { return XCTFail() }
        XCTAssertEqual(event.clockOffset?.offsetNanos, -1234)
        XCTAssertEqual(event.clockOffset?.errorNanos, 567)
        XCTAssertEqual(event.sequence, 3)
        XCTAssertEqual(try event.sendTimestampNanos(), 42)
    }

    func testEventsRecordedOutOfTimestampOrderAreNotWarmup() {
        // Two event loops: the second record carries an earlier receive time.
        var tally = ReceiverTally()
        let warmup = WarmupWindow(seconds: 0)
        for received in [2_000_000, 1_000_000] as [Int64] {
            _ = tally.record(
                ReceivedEvent(
                    sequence: nil, runID: nil, ivorn: "ivo://x#\(received)", sentNanos: 0, receivedNanos: received,
                    remoteAddress: nil, remotePort: nil, inWarmup: false),
                warmup: warmup)
        }
        var stats = ReceiverStatistics()
        stats.absorb(tally)
        let summary = stats.summary()
        XCTAssertEqual(summary.warmupExcluded, 0)
        XCTAssertEqual(summary.latency.count, 2)
    }

    func testLatencyWithinTheErrorBoundIsFlagged() {
        var tally = ReceiverTally()
        let warmup = WarmupWindow(seconds: 0)
        func event(latency: Int64, error: Int64) -> ReceivedEvent {
            ReceivedEvent(
                sequence: nil, runID: nil, ivorn: "ivo://x#1", sentNanos: 1_000, receivedNanos: 1_000 + latency,
                remoteAddress: nil, remotePort: nil, inWarmup: false, senderClockOffset: (0, error))
        }
        XCTAssertTrue(tally.record(event(latency: 40_000, error: 50_000), warmup: warmup).withinClockError)
        XCTAssertTrue(tally.record(event(latency: -40_000, error: 50_000), warmup: warmup).withinClockError)
        XCTAssertFalse(tally.record(event(latency: 60_000, error: 50_000), warmup: warmup).withinClockError)
        var stats = ReceiverStatistics()
        stats.absorb(tally)
        let summary = stats.summary()
        XCTAssertEqual(summary.withinClockError, 2)
        XCTAssertEqual(summary.clockOffset?.errorBound ?? 0, 50e-6, accuracy: 1e-12)
    }
}
