/// Decides, for one direction of an emulated link, when each packet or chunk leaves (or that a
/// packet is lost), following `LinkProfile`'s one meaning of delay, jitter, rate and order.
/// A pure value type: time (monotonic nanoseconds) and randomness come in as arguments, so
/// it is tested without devices or sockets. Used by vtp-netem (packets, `admit`) and
/// vtp-proxy (byte streams, `schedule` and `scheduleEnd`).
public struct ReleaseScheduler: Sendable {
    public enum Decision: Equatable, Sendable {
        case release(atNanos: Int64)
        case drop(DropReason)
    }

    public enum DropReason: String, Equatable, Sendable, Codable {
        case loss
        case queueFull = "queue_full"
    }

    /// A piece of a chunk and when it may leave.
    public struct Slice: Equatable, Sendable {
        public var releaseNanos: Int64
        public var length: Int
        public init(releaseNanos: Int64, length: Int) {
            self.releaseNanos = releaseNanos
            self.length = length
        }
    }

    /// May change while packets flow (vtp-proxy's toxics); the order and wire state carry over.
    public var profile: LinkProfile
    /// When the emulated wire finishes serialising the previous packet (rate limit only).
    public private(set) var wireFreeAtNanos: Int64 = .min
    /// The latest release time handed out: without reordering nothing leaves before it.
    public private(set) var lastReleaseNanos: Int64 = .min
    /// Anything arriving earlier counts as arriving then (vtp-proxy: the client could not have
    /// sent before the emulated connection set-up completed).
    public var holdUntilNanos: Int64 = .min

    public init(profile: LinkProfile) { self.profile = profile }

    /// The one draw of a delay: uniform in [delay − jitter, delay + jitter], clamped at 0.
    public static func sampleDelay(
        delayNanos: Int64, jitterNanos: Int64, using random: inout some RandomNumberGenerator
    ) -> Int64 {
        guard jitterNanos > 0 else { return max(0, delayNanos) }
        let low = Saturating.subtract(delayNanos, jitterNanos)
        let high = Saturating.add(delayNanos, jitterNanos)
        return max(0, Int64.random(in: low...high, using: &random))
    }

    /// One packet.
    /// - Parameters:
    ///   - arrivalNanos: when the packet was read (monotonic clock).
    ///   - wireBytes: its IP length (a GSO super-packet counts all its bytes).
    ///   - queuedPackets: packets of this direction currently held.
    public mutating func admit(
        arrivalNanos: Int64, wireBytes: Int, queuedPackets: Int, using random: inout some RandomNumberGenerator
    ) -> Decision {
        if queuedPackets >= profile.queueLimitPackets { return .drop(.queueFull) }
        if profile.lossProbability > 0, Double.random(in: 0..<1, using: &random) < profile.lossProbability {
            return .drop(.loss)
        }
        let (sendAt, delay) = start(arrivalNanos, using: &random)
        return .release(atNanos: release(bytes: wireBytes, leavingAt: sendAt, delay: delay).release)
    }

    /// `length` bytes read from a stream at `arrivalNanos`, as pieces with release times: cut
    /// by the slicer (or into ~10 ms pieces at the rate, so the limit is smooth), each
    /// serialised, all with the chunk's one delay draw.
    public mutating func schedule(
        length: Int, arrivalNanos: Int64, using random: inout some RandomNumberGenerator
    ) -> [Slice] {
        let (sendAt, delay) = start(arrivalNanos, using: &random)
        let pieces = pieceLengths(length, using: &random)
        var out: [Slice] = []
        out.reserveCapacity(pieces.count)
        var leavesAt = sendAt
        for (index, size) in pieces.enumerated() {
            if index > 0, let gap = profile.slicing?.gapNanos { leavesAt = Saturating.add(leavesAt, gap) }
            let (release, wireDone) = self.release(bytes: size, leavingAt: leavesAt, delay: delay)
            leavesAt = wireDone
            out.append(Slice(releaseNanos: release, length: size))
        }
        return out
    }

    /// When an end of stream arriving at `arrivalNanos` may be passed on: after everything
    /// before it, one (unjittered) delay after it arrived, plus the slow-close hold.
    public mutating func scheduleEnd(arrivalNanos: Int64) -> Int64 {
        let arrived = Saturating.add(max(arrivalNanos, holdUntilNanos), profile.delayNanos)
        let release = Saturating.add(max(arrived, lastReleaseNanos), profile.slowCloseNanos)
        lastReleaseNanos = release
        return release
    }

    // MARK: the pipeline every packet and chunk goes through

    /// When it starts onto the wire (late after a stall) and its delay (drawn once).
    private mutating func start(
        _ arrivalNanos: Int64, using random: inout some RandomNumberGenerator
    ) -> (sendAt: Int64, delay: Int64) {
        var sendAt = max(arrivalNanos, holdUntilNanos)
        let delay = Self.sampleDelay(delayNanos: profile.delayNanos, jitterNanos: profile.jitterNanos, using: &random)
        if profile.stallProbability > 0, Double.random(in: 0..<1, using: &random) < profile.stallProbability {
            sendAt = Saturating.add(sendAt, profile.stallNanos)
        }
        return (sendAt, delay)
    }

    /// Serialise at the rate, add the delay, keep the order.
    private mutating func release(bytes: Int, leavingAt: Int64, delay: Int64) -> (release: Int64, wireDone: Int64) {
        var wireDone = leavingAt
        if let rate = profile.rateBytesPerSecond, rate > 0 {
            let start = max(leavingAt, wireFreeAtNanos)
            wireDone = Saturating.add(start, Saturating.roundedUp(Double(bytes) / rate * 1e9))
            wireFreeAtNanos = wireDone
        }
        var release = Saturating.add(wireDone, delay)
        if !profile.allowReorder { release = max(release, lastReleaseNanos) }
        lastReleaseNanos = max(lastReleaseNanos, release)
        return (release, wireDone)
    }

    private func pieceLengths(_ length: Int, using random: inout some RandomNumberGenerator) -> [Int] {
        guard length > 0 else { return [] }
        if let slicing = profile.slicing {
            // Bounded so that average ± variation cannot overflow.
            let average = min(1 << 40, max(1, slicing.averageBytes))
            let variation = min(1 << 40, max(0, slicing.variationBytes))
            var pieces: [Int] = []
            var remaining = length
            while remaining > 0 {
                let offset = variation > 0 ? Int.random(in: -variation...variation, using: &random) : 0
                let size = min(remaining, max(1, average + offset))
                pieces.append(size)
                remaining -= size
            }
            return pieces
        }
        if let rate = profile.rateBytesPerSecond, rate > 0 {
            let piece = max(512, min(1 << 30, Int(Saturating.roundedUp(rate / 100))))
            return stride(from: 0, to: length, by: piece).map { min(piece, length - $0) }
        }
        return [length]
    }
}

/// Release-time arithmetic that caps instead of trapping: stacked delays and stalls from
/// untrusted settings only ever reach the end of time, never wrap.
public enum Saturating {
    public static func add(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }

    public static func subtract(_ a: Int64, _ b: Int64) -> Int64 {
        let (difference, overflow) = a.subtractingReportingOverflow(b)
        return overflow ? (b > 0 ? .min : .max) : difference
    }

    /// A non-negative count (of nanoseconds, bytes) rounded up: 0 for negative or NaN,
    /// `Int64.max` from 2^63 on (every Double below it converts).
    public static func roundedUp(_ value: Double) -> Int64 {
        if value.isNaN || value <= 0 { return 0 }
        if value >= Double(Int64.max) { return .max }
        return Int64(value.rounded(.up))
    }
}

/// A small, fast, seedable generator so runs with jitter and loss can be repeated (`--seed`).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
