import DelayLink
import XCTest

/// The scheduling itself is NetworkEmulation's (Tests/NetworkEmulationTests); here what the
/// delay link adds: its error type and its release queue.
final class DelayLinkSchedulerTests: XCTestCase {
    func testValidationNamesTheDirectionAndSetting() {
        XCTAssertThrowsError(try DirectionProfile(delayNanos: -1).validate(direction: "A→B")) {
            XCTAssertTrue("\($0)".contains("A→B: delay"))
        }
        XCTAssertThrowsError(try DirectionProfile(delayNanos: 0, lossProbability: 2).validate(direction: "B→A")) {
            XCTAssertTrue("\($0)".contains("loss"))
        }
        XCTAssertNoThrow(try DirectionProfile(delayNanos: 5, jitterNanos: 1).validate(direction: "A→B"))
    }
}

final class ReleaseQueueTests: XCTestCase {
    func testReleasesInTimeOrderAndTiesInArrivalOrder() {
        var queue = ReleaseQueue<Int>()
        queue.push(1, releaseNanos: 30)
        queue.push(2, releaseNanos: 10)
        queue.push(3, releaseNanos: 10)
        queue.push(4, releaseNanos: 20)
        queue.push(5, releaseNanos: 10)
        XCTAssertEqual(queue.nextReleaseNanos, 10)
        var out: [Int] = []
        while let entry = queue.popDue(nowNanos: 100) { out.append(entry.payload) }
        XCTAssertEqual(out, [2, 3, 5, 4, 1])
        XCTAssertTrue(queue.isEmpty)
    }

    func testPopDueHoldsPacketsThatAreNotDueYet() {
        var queue = ReleaseQueue<String>()
        queue.push("late", releaseNanos: 500)
        queue.push("early", releaseNanos: 100)
        XCTAssertNil(queue.popDue(nowNanos: 99))
        XCTAssertEqual(queue.popDue(nowNanos: 100)?.payload, "early")
        XCTAssertNil(queue.popDue(nowNanos: 499))
        XCTAssertEqual(queue.count, 1)
        XCTAssertEqual(queue.popDue(nowNanos: 1000)?.payload, "late")
    }

    func testLargeRandomLoadComesOutSorted() {
        var queue = ReleaseQueue<Int>()
        var generator = SplitMix64(seed: 3)
        for index in 0..<5000 { queue.push(index, releaseNanos: Int64.random(in: 0..<1000, using: &generator)) }
        var last = Int64.min
        var lastSequenceAtTime: [Int64: Int] = [:]
        while let entry = queue.popDue(nowNanos: .max) {
            XCTAssertGreaterThanOrEqual(entry.releaseNanos, last)
            if let previous = lastSequenceAtTime[entry.releaseNanos] { XCTAssertGreaterThan(entry.payload, previous) }
            lastSequenceAtTime[entry.releaseNanos] = entry.payload
            last = entry.releaseNanos
        }
    }
}
