/// Decides, for one direction, when each arriving packet leaves the link (or that it is lost).
/// A pure value type: time and randomness come in as arguments, so it is tested without devices.
public struct ReleaseScheduler: Sendable {
    public enum Decision: Equatable, Sendable {
        case release(atNanos: Int64)
        case drop(DropReason)
    }

    public enum DropReason: String, Equatable, Sendable, Codable {
        case loss
        case queueFull = "queue_full"
    }

    public let profile: DirectionProfile
    /// When the emulated wire finishes serialising the previous packet (rate limit only).
    public private(set) var wireFreeAtNanos: Int64 = .min
    /// The latest release time handed out, for the no-reorder clamp.
    public private(set) var lastReleaseNanos: Int64 = .min

    public init(profile: DirectionProfile) { self.profile = profile }

    /// - Parameters:
    ///   - arrivalNanos: when the packet was read (monotonic clock).
    ///   - wireBytes: the packet's IP length (a GSO super-packet counts all its bytes).
    ///   - queuedPackets: packets of this direction currently held.
    public mutating func admit<R: RandomNumberGenerator>(
        arrivalNanos: Int64, wireBytes: Int, queuedPackets: Int, using random: inout R
    ) -> Decision {
        if queuedPackets >= profile.queueLimitPackets { return .drop(.queueFull) }
        if profile.lossProbability > 0, Double.random(in: 0..<1, using: &random) < profile.lossProbability {
            return .drop(.loss)
        }
        var departure = arrivalNanos
        if let rate = profile.rateBytesPerSecond {
            let start = max(arrivalNanos, wireFreeAtNanos)
            let serialisation = Int64((Double(wireBytes) / rate * 1e9).rounded(.up))
            wireFreeAtNanos = start + serialisation
            departure = wireFreeAtNanos
        }
        var delay = profile.delayNanos
        if profile.jitterNanos > 0 {
            delay += Int64.random(in: -profile.jitterNanos...profile.jitterNanos, using: &random)
            delay = max(delay, 0)
        }
        var release = departure + delay
        if !profile.allowReorder { release = max(release, lastReleaseNanos) }
        lastReleaseNanos = max(lastReleaseNanos, release)
        return .release(atNanos: release)
    }
}

/// A small, fast, seedable generator so runs with jitter/loss can be repeated (`--seed`).
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
