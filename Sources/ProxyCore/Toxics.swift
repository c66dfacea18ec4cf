import Foundation

/// Toxiproxy's vocabulary: upstream is client → server, downstream is server → client.
public enum StreamDirection: String, Codable, Sendable, CaseIterable {
    case upstream
    case downstream
}

public enum ToxicType: String, Codable, Sendable, CaseIterable {
    /// latency (ms), jitter (ms, uniform ±): every chunk is held latency ± jitter.
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
        type = try container.decode(ToxicType.self, forKey: .type)
        stream = try container.decodeIfPresent(StreamDirection.self, forKey: .stream) ?? .downstream
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

    /// Saturating addition for release times: many toxics or stalls add up, never wrap.
    static func add(_ a: Int64, _ b: Int64) -> Int64 {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? (b > 0 ? .max : .min) : sum
    }
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
    public var isTransparent: Bool {
        latencyNanos == 0 && jitterNanos == 0 && bytesPerSecond == nil && sliceAverage == nil
            && stallProbability == 0 && blackHoleCloseNanos == nil
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
                direction.latencyNanos = Checked.add(direction.latencyNanos, Checked.int64(toxic.attribute("latency"), scale: ms))
                direction.jitterNanos = Checked.add(direction.jitterNanos, Checked.int64(toxic.attribute("jitter"), scale: ms))
            case .bandwidth:
                // A rate that is not positive and finite would make infinite release times.
                let rate = toxic.attribute("rate") * 1000
                if rate.isFinite, rate > 0 { direction.bytesPerSecond = min(direction.bytesPerSecond ?? .infinity, rate) }
            case .slowClose:
                direction.slowCloseNanos = Checked.add(direction.slowCloseNanos, Checked.int64(toxic.attribute("delay"), scale: ms))
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
                ?? Checked.add(plan.upstream.latencyNanos, plan.downstream.latencyNanos)
        }
        return plan
    }
}

/// Release times for the bytes of one direction. Pure: the caller supplies the clock and the
/// random source, so order preservation and accuracy are testable without sockets.
public struct ReleaseScheduler: Sendable {
    public var plan: DirectionPlan
    /// Release time of the last slice: nothing may be released before it (byte order).
    public private(set) var lastRelease: Int64 = 0
    private var bandwidthFreeAt: Int64 = 0
    /// Bytes arriving earlier are treated as arriving then (connection set-up delay).
    public var holdUntil: Int64 = 0

    public init(plan: DirectionPlan) { self.plan = plan }

    /// Splits `length` bytes arriving at `arrival` (ns, monotonic) into slices with release
    /// times: latency (± jitter) from arrival, never before an earlier slice, then stalls,
    /// slicing and the bandwidth limit.
    public mutating func schedule(
        length: Int, arrival: Int64, using random: inout some RandomNumberGenerator
    ) -> [(release: Int64, length: Int)] {
        let arrival = max(arrival, holdUntil)
        // Saturating sums: with many stacked toxics the times only ever cap, never wrap.
        var base = Checked.add(arrival, plan.latencyNanos)
        if plan.jitterNanos > 0 {
            base = Checked.add(base, Int64.random(in: -plan.jitterNanos...plan.jitterNanos, using: &random))
        }
        base = max(base, arrival, lastRelease)
        if plan.stallProbability > 0, Double.random(in: 0..<1, using: &random) < plan.stallProbability {
            base = Checked.add(base, plan.stallNanos)
        }
        var pieces: [Int]
        if let average = plan.sliceAverage {
            pieces = []
            var remaining = length
            while remaining > 0 {
                let variation = plan.sliceVariation > 0 ? Int.random(in: -plan.sliceVariation...plan.sliceVariation, using: &random) : 0
                let size = min(remaining, max(1, average + variation))
                pieces.append(size)
                remaining -= size
            }
        } else if let rate = plan.bytesPerSecond {
            // Pieces of ~10 ms at the configured rate, so the limit is smooth, not bursty.
            let piece = max(512, min(1 << 30, Checked.int(rate / 100)))
            pieces = stride(from: 0, to: length, by: piece).map { min(piece, length - $0) }
        } else {
            pieces = [length]
        }
        var out: [(release: Int64, length: Int)] = []
        out.reserveCapacity(pieces.count)
        var release = base
        for (index, size) in pieces.enumerated() {
            if index > 0 { release = Checked.add(release, plan.sliceDelayNanos) }
            if let rate = plan.bytesPerSecond {
                let start = max(release, bandwidthFreeAt)
                bandwidthFreeAt = Checked.add(start, Checked.int64(Double(size) / rate, scale: 1e9))
                release = bandwidthFreeAt
            }
            release = max(release, lastRelease)
            lastRelease = release
            out.append((release, size))
        }
        return out
    }

    /// When an end-of-stream arriving at `arrival` may be passed on.
    public mutating func scheduleEnd(arrival: Int64) -> Int64 {
        let release = Checked.add(
            max(Checked.add(max(arrival, holdUntil), plan.latencyNanos), lastRelease), plan.slowCloseNanos)
        lastRelease = release
        return release
    }
}
