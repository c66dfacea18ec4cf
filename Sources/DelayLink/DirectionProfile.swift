import Foundation

/// How one direction of the emulated link treats packets.
public struct DirectionProfile: Sendable, Equatable, Codable {
    /// Fixed one-way delay added to every packet.
    public var delayNanos: Int64
    /// Uniform jitter: each packet's delay is `delay ± jitter` (never below zero).
    public var jitterNanos: Int64
    /// Whether jitter may reorder packets. Without it release times are clamped to be
    /// non-decreasing, as on a real FIFO link (netem's default reorders; TCP dislikes it).
    public var allowReorder: Bool
    /// Probability in [0, 1] that a packet is dropped on arrival.
    public var lossProbability: Double
    /// Serialisation rate in bytes per second; nil for unlimited.
    public var rateBytesPerSecond: Double?
    /// Packets held at once before new arrivals are dropped (bounds memory).
    public var queueLimitPackets: Int

    public init(
        delayNanos: Int64, jitterNanos: Int64 = 0, allowReorder: Bool = false, lossProbability: Double = 0,
        rateBytesPerSecond: Double? = nil, queueLimitPackets: Int = 200_000
    ) {
        self.delayNanos = delayNanos
        self.jitterNanos = jitterNanos
        self.allowReorder = allowReorder
        self.lossProbability = lossProbability
        self.rateBytesPerSecond = rateBytesPerSecond
        self.queueLimitPackets = queueLimitPackets
    }

    /// Checks the values a user gave; the message names the offending setting.
    public func validate(direction: String) throws(DelayLinkError) {
        if delayNanos < 0 { throw .invalidSetting("\(direction): delay must be ≥ 0") }
        if jitterNanos < 0 { throw .invalidSetting("\(direction): jitter must be ≥ 0") }
        if !(0...1).contains(lossProbability) {
            throw .invalidSetting("\(direction): loss must be between 0 and 100 percent")
        }
        if let rate = rateBytesPerSecond, !(rate > 0) || !rate.isFinite {
            throw .invalidSetting("\(direction): rate must be a positive number")
        }
        if queueLimitPackets < 1 { throw .invalidSetting("\(direction): queue limit must be ≥ 1 packet") }
    }
}

/// Errors a user can act on.
public enum DelayLinkError: Error, CustomStringConvertible, Equatable {
    case invalidSetting(String)
    case system(call: String, errno: Int32, hint: String)
    case command(String, status: Int32, output: String)
    case namespaceExists(String)

    public var description: String {
        switch self {
        case .invalidSetting(let message): return message
        case .system(let call, let code, let hint):
            return "\(call) failed: \(String(cString: strerrorText(code)))" + (hint.isEmpty ? "" : " (\(hint))")
        case .command(let command, let status, let output):
            let detail = output.trimmingCharacters(in: .whitespacesAndNewlines)
            return "`\(command)` exited with status \(status)" + (detail.isEmpty ? "" : ": \(detail)")
        case .namespaceExists(let name):
            return "network namespace \(name) already exists; pick another name or remove it (ip netns del \(name))"
        }
    }
}

func strerrorText(_ code: Int32) -> UnsafeMutablePointer<CChar> { strerror(code) }
