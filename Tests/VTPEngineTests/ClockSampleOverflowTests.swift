import VTPEngine
import XCTest

/// An ack's received_ns/replied_ns come off the network: the clock-offset arithmetic on them
/// must never trap (an ack with received_ns = Int64.min killed vtp-sender; found by fuzzing).
final class ClockSampleOverflowTests: XCTestCase {
    func testTimesThatWouldOverflowMakeAnUnusableSampleNotACrash() {
        let t0: Int64 = 1_795_486_949_000_000_000
        for (t1, t2) in [(Int64.min, Int64.max), (Int64.max, Int64.min), (Int64.min, Int64.min), (Int64.max, Int64.max)] {
            let sample = ClockSample(sent: t0, received: t1, replied: t2, ackRead: t0 + 500_000)
            XCTAssertLessThan(sample.delayNanos, 0, "marked unusable: \(t1), \(t2)")
            XCTAssertEqual(sample.errorBoundNanos, 0)
            var estimator = ClockOffsetEstimator(window: 4)
            estimator.add(sample)
            XCTAssertNil(estimator.estimate, "the estimator drops it")
        }
        // Ordinary times are unchanged: offset 100 µs, delay 400 µs.
        let ordinary = ClockSample(sent: t0, received: t0 + 300_000, replied: t0 + 400_000, ackRead: t0 + 500_000)
        XCTAssertEqual(ordinary.offsetNanos, 100_000)
        XCTAssertEqual(ordinary.delayNanos, 400_000)
    }
}
