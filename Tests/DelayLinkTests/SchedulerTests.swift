import DelayLink
import XCTest

final class ReleaseSchedulerTests: XCTestCase {
    private var random = SplitMix64(seed: 42)

    private func releaseTime(_ decision: ReleaseScheduler.Decision) -> Int64? {
        if case .release(let at) = decision { return at }
        return nil
    }

    func testFixedDelayAddsExactlyTheDelay() {
        var scheduler = ReleaseScheduler(profile: DirectionProfile(delayNanos: 250_000_000))
        for arrival: Int64 in [0, 1, 5_000, 1_000_000_000] {
            let decision = scheduler.admit(arrivalNanos: arrival, wireBytes: 1500, queuedPackets: 0, using: &random)
            XCTAssertEqual(decision, .release(atNanos: arrival + 250_000_000))
        }
    }

    func testRateLimitSerialisesBackToBackPackets() {
        // 1,000,000 bytes/s: a 1000-byte packet takes 1 ms on the wire.
        var scheduler = ReleaseScheduler(
            profile: DirectionProfile(delayNanos: 10_000_000, rateBytesPerSecond: 1_000_000))
        let first = releaseTime(scheduler.admit(arrivalNanos: 0, wireBytes: 1000, queuedPackets: 0, using: &random))
        let second = releaseTime(scheduler.admit(arrivalNanos: 0, wireBytes: 1000, queuedPackets: 1, using: &random))
        XCTAssertEqual(first, 11_000_000)
        XCTAssertEqual(second, 12_000_000)
        // After the wire has been idle, a packet only pays its own serialisation.
        let later = releaseTime(
            scheduler.admit(arrivalNanos: 100_000_000, wireBytes: 500, queuedPackets: 0, using: &random))
        XCTAssertEqual(later, 110_500_000)
    }

    func testJitterWithoutReorderKeepsArrivalOrderAndStaysWithinBounds() {
        let delay: Int64 = 50_000_000
        let jitter: Int64 = 20_000_000
        var scheduler = ReleaseScheduler(profile: DirectionProfile(delayNanos: delay, jitterNanos: jitter))
        var previous = Int64.min
        var spread = Set<Int64>()
        for index in 0..<2000 {
            // Every 5 ms: some releases get clamped, most keep their own jitter.
            let arrival = Int64(index) * 5_000_000
            guard let at = releaseTime(scheduler.admit(arrivalNanos: arrival, wireBytes: 100, queuedPackets: 0, using: &random))
            else { return XCTFail("unexpected drop") }
            XCTAssertGreaterThanOrEqual(at, previous, "release times must not go backwards")
            XCTAssertGreaterThanOrEqual(at, arrival + delay - jitter)
            // The clamp can push a packet past delay+jitter only up to the previous release.
            XCTAssertLessThanOrEqual(at, max(arrival + delay + jitter, previous))
            previous = at
            spread.insert((at - arrival) / 1_000_000)
        }
        XCTAssertGreaterThan(spread.count, 10, "jitter should vary the delay")
    }

    func testJitterWithReorderAllowedReordersSomePackets() {
        var scheduler = ReleaseScheduler(
            profile: DirectionProfile(delayNanos: 50_000_000, jitterNanos: 20_000_000, allowReorder: true))
        var releases: [Int64] = []
        for index in 0..<1000 {
            let arrival = Int64(index) * 100_000
            guard let at = releaseTime(scheduler.admit(arrivalNanos: arrival, wireBytes: 100, queuedPackets: 0, using: &random))
            else { return XCTFail("unexpected drop") }
            XCTAssertGreaterThanOrEqual(at - arrival, 30_000_000)
            XCTAssertLessThanOrEqual(at - arrival, 70_000_000)
            releases.append(at)
        }
        let inversions = zip(releases, releases.dropFirst()).filter { $0 > $1 }.count
        XCTAssertGreaterThan(inversions, 100)
    }

    func testJitterNeverMakesTheDelayNegative() {
        var scheduler = ReleaseScheduler(
            profile: DirectionProfile(delayNanos: 1_000_000, jitterNanos: 5_000_000, allowReorder: true))
        for index in 0..<1000 {
            let arrival = Int64(index) * 1_000
            let at = releaseTime(scheduler.admit(arrivalNanos: arrival, wireBytes: 100, queuedPackets: 0, using: &random))
            XCTAssertGreaterThanOrEqual(at ?? .min, arrival)
        }
    }

    func testLossDropsAboutTheGivenFractionAndIsRepeatableWithASeed() {
        func run(seed: UInt64) -> [Bool] {
            var generator = SplitMix64(seed: seed)
            var scheduler = ReleaseScheduler(profile: DirectionProfile(delayNanos: 0, lossProbability: 0.1))
            return (0..<10_000).map {
                scheduler.admit(arrivalNanos: Int64($0), wireBytes: 100, queuedPackets: 0, using: &generator)
                    == .drop(.loss)
            }
        }
        let lost = run(seed: 7)
        let count = lost.filter { $0 }.count
        XCTAssertGreaterThan(count, 850)
        XCTAssertLessThan(count, 1150)
        XCTAssertEqual(lost, run(seed: 7))
        XCTAssertNotEqual(lost, run(seed: 8))
    }

    func testFullQueueDropsNewArrivals() {
        var scheduler = ReleaseScheduler(profile: DirectionProfile(delayNanos: 1, queueLimitPackets: 3))
        XCTAssertEqual(
            scheduler.admit(arrivalNanos: 0, wireBytes: 1, queuedPackets: 2, using: &random), .release(atNanos: 1))
        XCTAssertEqual(scheduler.admit(arrivalNanos: 0, wireBytes: 1, queuedPackets: 3, using: &random), .drop(.queueFull))
    }

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
