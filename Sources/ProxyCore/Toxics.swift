import CommandLineKit
import Foundation
import NetworkEmulation

/// Toxiproxy's vocabulary: upstream is client → server, downstream is server → client.
public enum StreamDirection: String, Codable, Sendable, CaseIterable {
    case upstream
    case downstream
}

public enum ToxicType: String, Codable, Sendable, CaseIterable {
    /// latency (ms), jitter (ms): every chunk is held a delay drawn uniformly from
    /// [latency − jitter, latency + jitter], clamped at 0, never overtaking the chunk before it.
    case latency
    /// rate (KB/s, 1 KB = 1000 bytes as in Toxiproxy).
    case bandwidth
    /// delay (ms) before a close/end-of-stream is passed on.
    case slowClose = "slow_close"
    /// timeout (ms): black hole — data is dropped; the connection is closed after timeout (0 = never).
    case timeout
    /// timeout (ms): after it, both sides are reset (RST).
    case resetPeer = "reset_peer"
    /// average_size (bytes), size_variation (bytes), delay (µs between slices).
    case slicer
    /// bytes: the connection is closed once that many bytes have passed in this direction.
    case limitData = "limit_data"
    /// delay (ms) before the upstream connection is opened; default: one round trip of the
    /// configured latencies, so per-connection protocols see the handshake cost.
    case connectDelay = "connect_delay"
    /// probability (per chunk, 0…1), duration (ms, default 200 — a TCP retransmission timeout):
    /// the chunk and everything after it is held, as a lost segment would hold the stream.
    case stall

    var attributeNames: (required: [String], optional: [String]) {
        switch self {
        case .latency: return (["latency"], ["jitter"])
        case .bandwidth: return (["rate"], [])
        case .slowClose: return (["delay"], [])
        case .timeout: return ([], ["timeout"])
        case .resetPeer: return ([], ["timeout"])
        case .slicer: return (["average_size"], ["size_variation", "delay"])
        case .limitData: return (["bytes"], [])
        case .connectDelay: return ([], ["delay"])
        case .stall: return (["probability"], ["duration"])
        }
    }
}

/// One fault, as in Toxiproxy's JSON: {"name","type","stream","toxicity","attributes":{…}}.
public struct Toxic: Codable, Equatable, Sendable {
    public var name: String
    public var type: ToxicType
    public var stream: StreamDirection
    /// Probability that a connection gets this toxic (rolled once per connection).
    public var toxicity: Double
    public var attributes: [String: Double]

    public init(
        name: String? = nil, type: ToxicType, stream: StreamDirection, toxicity: Double = 1,
        attributes: [String: Double] = [:]
    ) {
        self.name = name ?? "\(type.rawValue)_\(stream.rawValue)"
        self.type = type
        self.stream = stream
        self.toxicity = toxicity
        self.attributes = attributes
    }

    enum CodingKeys: String, CodingKey { case name, type, stream, toxicity, attributes }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        type = try Self.known(ToxicType.self, try container.decode(String.self, forKey: .type), what: "toxic type")
        stream = try container.decodeIfPresent(String.self, forKey: .stream)
            .map { text throws(ProxyError) in try Self.known(StreamDirection.self, text, what: "stream") } ?? .downstream
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? "\(type.rawValue)_\(stream.rawValue)"
        toxicity = try container.decodeIfPresent(Double.self, forKey: .toxicity) ?? 1
        attributes = try container.decodeIfPresent([String: Double].self, forKey: .attributes) ?? [:]
    }

    public func validated() throws(ProxyError) -> Toxic {
        guard !name.isEmpty else { throw .invalidToxic(name: name, reason: "name is empty") }
        guard (0...1).contains(toxicity) else {
            throw .invalidToxic(name: name, reason: "toxicity \(toxicity) is not a probability in 0…1")
        }
        let (required, optional) = type.attributeNames
        for key in required where attributes[key] == nil {
            throw .invalidToxic(name: name, reason: "\(type.rawValue) needs attribute \"\(key)\"")
        }
        // Sorted: the first problem reported does not depend on dictionary order.
        for (key, value) in attributes.sorted(by: { $0.key < $1.key }) {
            guard required.contains(key) || optional.contains(key) else {
                throw .invalidToxic(
                    name: name,
                    reason: "unknown attribute \"\(key)\" for \(type.rawValue) (known: \((required + optional).joined(separator: ", ")))")
            }
            // Every attribute has a range: the plan converts them to integer nanoseconds and
            // byte counts, and an unbounded value (1e18 ms) would not fit.
            let range = ToxicAttributeRange.of(type, key)
            guard value.isFinite, value >= range.minimum, value <= range.maximum else {
                throw .invalidToxic(
                    name: name,
                    reason: "attribute \"\(key)\" must be a finite number in \(range.text) (got \(value))")
            }
        }
        return self
    }

    func attribute(_ key: String, default value: Double = 0) -> Double { attributes[key] ?? value }

    /// A value of a closed set, or an error that lists the set and suggests the closest.
    private static func known<Value: RawRepresentable & CaseIterable>(
        _ type: Value.Type, _ text: String, what: String
    ) throws(ProxyError) -> Value where Value.RawValue == String {
        if let value = Value(rawValue: text) { return value }
        let names = Value.allCases.map(\.rawValue)
        let suggestion = Suggestions.closest(to: text, among: names).map { "did you mean \($0)? " } ?? ""
        throw .invalidValue(what: what, value: text, expected: suggestion + "one of " + names.joined(separator: ", "))
    }
}

/// The allowed values of one toxic attribute, in the attribute's own unit.
struct ToxicAttributeRange: Sendable {
    var minimum: Double
    var maximum: Double
    var unit: String

    /// One hour: far beyond any delay worth emulating, far below Int64 nanoseconds.
    static let maximumMilliseconds = 3_600_000.0
    static let milliseconds = ToxicAttributeRange(minimum: 0, maximum: maximumMilliseconds, unit: "ms")
    static let microseconds = ToxicAttributeRange(minimum: 0, maximum: maximumMilliseconds * 1e3, unit: "µs")
    static let probability = ToxicAttributeRange(minimum: 0, maximum: 1, unit: "")
    /// 1 byte/s … 1 TB/s (the attribute is in KB/s, 1 KB = 1000 bytes).
    static let rate = ToxicAttributeRange(minimum: 0.001, maximum: 1e9, unit: "KB/s")
    static let sliceSize = ToxicAttributeRange(minimum: 1, maximum: Double(1 << 30), unit: "bytes")
    static let sliceVariation = ToxicAttributeRange(minimum: 0, maximum: Double(1 << 30), unit: "bytes")
    /// 1 PB.
    static let dataLimit = ToxicAttributeRange(minimum: 0, maximum: 1e15, unit: "bytes")

    static func of(_ type: ToxicType, _ key: String) -> ToxicAttributeRange {
        switch (type, key) {
        case (.bandwidth, "rate"): return rate
        case (.slicer, "average_size"): return sliceSize
        case (.slicer, "size_variation"): return sliceVariation
        case (.slicer, "delay"): return microseconds
        case (.limitData, "bytes"): return dataLimit
        case (.stall, "probability"): return probability
        default: return milliseconds  // latency, jitter, delays, timeouts, stall duration
        }
    }

    var text: String {
        let range = "\(Self.format(minimum))…\(Self.format(maximum))"
        return unit.isEmpty ? range : "\(range) \(unit)"
    }

    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e16 ? String(Int64(value)) : "\(value)"
    }
}

/// Conversions that cannot trap: the plan is also built from toxics a caller did not validate.
enum Checked {
    /// `value × scale` as integer nanoseconds (or bytes), 0 for negative or NaN, clamped at the top.
    static func int64(_ value: Double, scale: Double = 1) -> Int64 {
        let scaled = value * scale
        if scaled.isNaN || scaled <= 0 { return 0 }
        // The bound is 2^63 exactly (Int64.max rounds up to it); every Double below it converts.
        if scaled >= Double(Int64.max) { return .max }
        return Int64(scaled)
    }

    static func int(_ value: Double) -> Int { Int(truncatingIfNeeded: int64(value)) }

}

/// What one connection does in one direction, after the toxicity dice were rolled.
public struct DirectionPlan: Equatable, Sendable {
    public var latencyNanos: Int64 = 0
    public var jitterNanos: Int64 = 0
    public var bytesPerSecond: Double? = nil
    public var sliceAverage: Int? = nil
    public var sliceVariation: Int = 0
    public var sliceDelayNanos: Int64 = 0
    public var limitBytes: Int? = nil
    /// Black hole; the value is when to close (0 = never).
    public var blackHoleCloseNanos: Int64? = nil
    public var resetNanos: Int64? = nil
    public var slowCloseNanos: Int64 = 0
    public var stallProbability: Double = 0
    public var stallNanos: Int64 = 0

    public init() {}

    /// Data passes at once, as written.
    public var isTransparent: Bool { linkProfile.isTransparent && blackHoleCloseNanos == nil }

    /// What the release scheduler does with this direction's bytes (NetworkEmulation: the one
    /// meaning of latency ± jitter, shared with vtp-netem).
    public var linkProfile: LinkProfile {
        LinkProfile(
            delayNanos: latencyNanos, jitterNanos: jitterNanos, rateBytesPerSecond: bytesPerSecond,
            stallProbability: stallProbability, stallNanos: stallNanos,
            slicing: sliceAverage.map { .init(averageBytes: $0, variationBytes: sliceVariation, gapNanos: sliceDelayNanos) },
            slowCloseNanos: slowCloseNanos)
    }
}

public struct ConnectionPlan: Equatable, Sendable {
    public var upstream = DirectionPlan()
    public var downstream = DirectionPlan()
    public var connectDelayNanos: Int64 = 0

    public init() {}

    public subscript(direction: StreamDirection) -> DirectionPlan {
        get { direction == .upstream ? upstream : downstream }
        set {
            if direction == .upstream { upstream = newValue } else { downstream = newValue }
        }
    }

    /// Rolls each toxic's toxicity and folds the active ones into a plan.
    public static func make(
        from toxics: [Toxic], using random: inout some RandomNumberGenerator
    ) -> ConnectionPlan {
        var plan = ConnectionPlan()
        var connectDelay: Double? = nil
        var wantsConnectDelay = false
        let ms = 1e6
        for toxic in toxics {
            guard toxic.toxicity >= 1 || Double.random(in: 0..<1, using: &random) < toxic.toxicity else { continue }
            var direction = plan[toxic.stream]
            switch toxic.type {
            case .latency:
                direction.latencyNanos = Saturating.add(direction.latencyNanos, Checked.int64(toxic.attribute("latency"), scale: ms))
                direction.jitterNanos = Saturating.add(direction.jitterNanos, Checked.int64(toxic.attribute("jitter"), scale: ms))
            case .bandwidth:
                // A rate that is not positive and finite would make infinite release times.
                let rate = toxic.attribute("rate") * 1000
                if rate.isFinite, rate > 0 { direction.bytesPerSecond = min(direction.bytesPerSecond ?? .infinity, rate) }
            case .slowClose:
                direction.slowCloseNanos = Saturating.add(direction.slowCloseNanos, Checked.int64(toxic.attribute("delay"), scale: ms))
            case .timeout:
                direction.blackHoleCloseNanos = Checked.int64(toxic.attribute("timeout"), scale: ms)
            case .resetPeer:
                direction.resetNanos = Checked.int64(toxic.attribute("timeout"), scale: ms)
            case .slicer:
                // Bounded so that average ± variation cannot overflow.
                direction.sliceAverage = min(1 << 40, max(1, Checked.int(toxic.attribute("average_size"))))
                direction.sliceVariation = min(1 << 40, Checked.int(toxic.attribute("size_variation")))
                direction.sliceDelayNanos = Checked.int64(toxic.attribute("delay"), scale: 1e3)
            case .limitData:
                let bytes = Checked.int(toxic.attribute("bytes"))
                direction.limitBytes = min(direction.limitBytes ?? .max, bytes)
            case .connectDelay:
                wantsConnectDelay = true
                if let delay = toxic.attributes["delay"] { connectDelay = (connectDelay ?? 0) + delay }
            case .stall:
                direction.stallProbability = toxic.attribute("probability")
                direction.stallNanos = Checked.int64(toxic.attribute("duration", default: 200), scale: ms)
            }
            plan[toxic.stream] = direction
        }
        if wantsConnectDelay {
            plan.connectDelayNanos =
                connectDelay.map { Checked.int64($0, scale: ms) }
                ?? Saturating.add(plan.upstream.latencyNanos, plan.downstream.latencyNanos)
        }
        return plan
    }
}
