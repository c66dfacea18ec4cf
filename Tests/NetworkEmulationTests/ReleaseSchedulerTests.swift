import NetworkEmulation
import XCTest

/// Packets (vtp-netem's delay link): `admit`.
final class ReleaseSchedulerTests: XCTestCase {
    private var random = SplitMix64(seed: 42)

    private func releaseTime(_ decision: ReleaseScheduler.Decision) -> Int64? {
        if case .release(let at) = decision { return at }
        return nil
    }

    func testFixedDelayAddsExactlyTheDelay() {
        var scheduler = ReleaseScheduler(profile: LinkProfile(delayNanos: 250_000_000))
        for arrival: Int64 in [0, 1, 5_000, 1_000_000_000] {
            let decision = scheduler.admit(arrivalNanos: arrival, wireBytes: 1500, queuedPackets: 0, using: &random)
            XCTAssertEqual(decision, .release(atNanos: arrival + 250_000_000))
        }
    }

    func testRateLimitSerialisesBackToBackPackets() {
        // 1,000,000 bytes/s: a 1000-byte packet takes 1 ms on the wire.
        var scheduler = ReleaseScheduler(profile: LinkProfile(delayNanos: 10_000_000, rateBytesPerSecond: 1_000_000))
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
        var scheduler = ReleaseScheduler(profile: LinkProfile(delayNanos: delay, jitterNanos: jitter))
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
            profile: LinkProfile(delayNanos: 50_000_000, jitterNanos: 20_000_000, allowReorder: true))
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
            profile: LinkProfile(delayNanos: 1_000_000, jitterNanos: 5_000_000, allowReorder: true))
        for index in 0..<1000 {
            let arrival = Int64(index) * 1_000
            let at = releaseTime(scheduler.admit(arrivalNanos: arrival, wireBytes: 100, queuedPackets: 0, using: &random))
            XCTAssertGreaterThanOrEqual(at ?? .min, arrival)
        }
    }

    func testLossDropsAboutTheGivenFractionAndIsRepeatableWithASeed() {
        func run(seed: UInt64) -> [Bool] {
            var generator = SplitMix64(seed: seed)
            var scheduler = ReleaseScheduler(profile: LinkProfile(delayNanos: 0, lossProbability: 0.1))
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
        var scheduler = ReleaseScheduler(profile: LinkProfile(delayNanos: 1, queueLimitPackets: 3))
        XCTAssertEqual(
            scheduler.admit(arrivalNanos: 0, wireBytes: 1, queuedPackets: 2, using: &random), .release(atNanos: 1))
        XCTAssertEqual(scheduler.admit(arrivalNanos: 0, wireBytes: 1, queuedPackets: 3, using: &random), .drop(.queueFull))
    }

    func testProblemsNameTheSetting() {
        XCTAssertEqual(LinkProfile(delayNanos: -1).problem, "delay must be ≥ 0")
        XCTAssertEqual(LinkProfile(jitterNanos: -1).problem, "jitter must be ≥ 0")
        XCTAssertTrue(LinkProfile(lossProbability: 2).problem?.contains("loss") ?? false)
        XCTAssertTrue(LinkProfile(rateBytesPerSecond: .nan).problem?.contains("rate") ?? false)
        XCTAssertNil(LinkProfile(delayNanos: 5, jitterNanos: 1).problem)
    }
}

/// Byte streams (vtp-proxy's toxics): `schedule` and `scheduleEnd`.
final class StreamSchedulerTests: XCTestCase {
    func testLatencyWithJitterKeepsByteOrderAndBounds() {
        var scheduler = ReleaseScheduler(profile: LinkProfile(delayNanos: 50_000_000, jitterNanos: 20_000_000))
        var random = SplitMix64(seed: 7)
        var previous: Int64 = 0
        for index in 0..<1000 {
            let arrival = Int64(index) * 1_000_000
            let slices = scheduler.schedule(length: 100, arrivalNanos: arrival, using: &random)
            XCTAssertEqual(slices.count, 1)
            let release = slices[0].releaseNanos
            XCTAssertGreaterThanOrEqual(release, previous, "a later chunk never overtakes an earlier one")
            XCTAssertGreaterThanOrEqual(release, arrival + 30_000_000)
            XCTAssertLessThanOrEqual(release, arrival + 70_000_000)
            previous = release
        }
    }

    func testLatencyIsNotSerialised() {
        // Chunks 1 ms apart with 50 ms latency leave 1 ms apart, not 50 ms apart.
        var scheduler = ReleaseScheduler(profile: LinkProfile(delayNanos: 50_000_000))
        var random = SplitMix64(seed: 3)
        let releases = (0..<10).map {
            scheduler.schedule(length: 10, arrivalNanos: Int64($0) * 1_000_000, using: &random)[0].releaseNanos
        }
        XCTAssertEqual(releases, (0..<10).map { Int64($0) * 1_000_000 + 50_000_000 })
    }

    func testBandwidthSpreadsBytesAtTheRate() {
        var scheduler = ReleaseScheduler(profile: LinkProfile(rateBytesPerSecond: 100_000))  // 100 KB/s
        var random = SplitMix64(seed: 3)
        let slices = scheduler.schedule(length: 50_000, arrivalNanos: 0, using: &random)
        XCTAssertEqual(slices.reduce(0) { $0 + $1.length }, 50_000)
        XCTAssertGreaterThan(slices.count, 10, "smooth, not one burst")
        XCTAssertEqual(Double(slices.last!.releaseNanos), 0.5e9, accuracy: 1e6, "50 KB at 100 KB/s takes 0.5 s")
    }

    func testSlicerSplitsWithDelays() {
        var scheduler = ReleaseScheduler(
            profile: LinkProfile(slicing: .init(averageBytes: 10, variationBytes: 3, gapNanos: 1_000)))
        var random = SplitMix64(seed: 5)
        let slices = scheduler.schedule(length: 1000, arrivalNanos: 0, using: &random)
        XCTAssertEqual(slices.reduce(0) { $0 + $1.length }, 1000)
        XCTAssertTrue(slices.dropLast().allSatisfy { (7...13).contains($0.length) })
        for (a, b) in zip(slices, slices.dropFirst()) { XCTAssertEqual(b.releaseNanos - a.releaseNanos, 1_000) }
    }

    func testStallHoldsTheStreamBehindIt() {
        var scheduler = ReleaseScheduler(profile: LinkProfile(stallProbability: 1, stallNanos: 200_000_000))
        var random = SplitMix64(seed: 5)
        XCTAssertEqual(scheduler.schedule(length: 1, arrivalNanos: 0, using: &random)[0].releaseNanos, 200_000_000)
        scheduler.profile.stallProbability = 0
        XCTAssertEqual(
            scheduler.schedule(length: 1, arrivalNanos: 1_000, using: &random)[0].releaseNanos, 200_000_000,
            "the next chunk waits behind the stalled one")
        XCTAssertEqual(scheduler.scheduleEnd(arrivalNanos: 2_000), 200_000_000)
    }

    func testEndOfStreamFollowsTheDataAndTheSlowClose() {
        var scheduler = ReleaseScheduler(profile: LinkProfile(delayNanos: 10_000_000, slowCloseNanos: 5_000_000))
        var random = SplitMix64(seed: 1)
        XCTAssertEqual(scheduler.schedule(length: 1, arrivalNanos: 0, using: &random)[0].releaseNanos, 10_000_000)
        XCTAssertEqual(scheduler.scheduleEnd(arrivalNanos: 1_000), 15_001_000)
        scheduler.holdUntilNanos = 100_000_000
        XCTAssertEqual(
            scheduler.schedule(length: 1, arrivalNanos: 50_000_000, using: &random)[0].releaseNanos, 110_000_000,
            "bytes that arrive before the hold count as arriving at its end")
    }

    func testHugeSettingsCapInsteadOfTrapping() {
        var scheduler = ReleaseScheduler(
            profile: LinkProfile(
                delayNanos: .max, jitterNanos: .max, rateBytesPerSecond: 1e-300, stallProbability: 1, stallNanos: .max,
                slowCloseNanos: .max))
        var random = SplitMix64(seed: 9)
        let slices = scheduler.schedule(length: 10_000, arrivalNanos: 1_000, using: &random)
        XCTAssertEqual(slices.reduce(0) { $0 + $1.length }, 10_000)
        XCTAssertEqual(scheduler.scheduleEnd(arrivalNanos: 2_000), .max)
    }
}

/// The one meaning of jitter, the same in both tools.
final class JitterMeaningTests: XCTestCase {
    func testDelayIsUniformBetweenDelayMinusAndPlusJitter() {
        var random = SplitMix64(seed: 11)
        let draws = (0..<20_000).map { _ in
            ReleaseScheduler.sampleDelay(delayNanos: 50_000_000, jitterNanos: 5_000_000, using: &random)
        }
        XCTAssertGreaterThanOrEqual(draws.min()!, 45_000_000)
        XCTAssertLessThanOrEqual(draws.max()!, 55_000_000)
        // Uniform: both ends are reached (within 1% of the span) and each half holds about half.
        XCTAssertLessThan(draws.min()!, 45_100_000)
        XCTAssertGreaterThan(draws.max()!, 54_900_000)
        let below = draws.filter { $0 < 50_000_000 }.count
        XCTAssertEqual(Double(below) / Double(draws.count), 0.5, accuracy: 0.02)
        let mean = draws.reduce(0.0) { $0 + Double($1) } / Double(draws.count)
        XCTAssertEqual(mean, 50_000_000, accuracy: 100_000)
    }

    func testDelayIsClampedAtZero() {
        var random = SplitMix64(seed: 12)
        let draws = (0..<10_000).map { _ in
            ReleaseScheduler.sampleDelay(delayNanos: 1_000_000, jitterNanos: 5_000_000, using: &random)
        }
        XCTAssertEqual(draws.min(), 0)
        XCTAssertLessThanOrEqual(draws.max()!, 6_000_000)
        XCTAssertEqual(ReleaseScheduler.sampleDelay(delayNanos: 7, jitterNanos: 0, using: &random), 7)
    }

    func testPacketsAndChunksGetTheSameReleaseTimes() {
        // vtp-netem (one packet) and vtp-proxy (one chunk) with the same profile and seed:
        // "+50 ms ± 5 ms at 1 MB/s" means the same thing in both.
        let profile = LinkProfile(delayNanos: 50_000_000, jitterNanos: 5_000_000, rateBytesPerSecond: 1_000_000)
        var packets = ReleaseScheduler(profile: profile)
        var stream = ReleaseScheduler(profile: profile)
        var packetRandom = SplitMix64(seed: 5)
        var streamRandom = SplitMix64(seed: 5)
        for index in 0..<500 {
            let arrival = Int64(index) * 700_000
            let packet = packets.admit(arrivalNanos: arrival, wireBytes: 400, queuedPackets: 0, using: &packetRandom)
            let chunk = stream.schedule(length: 400, arrivalNanos: arrival, using: &streamRandom)
            XCTAssertEqual(chunk.count, 1)
            XCTAssertEqual(packet, .release(atNanos: chunk[0].releaseNanos), "packet \(index)")
        }
    }
}
