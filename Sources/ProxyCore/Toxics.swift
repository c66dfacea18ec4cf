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
        for (key, value) in attributes {
            guard required.contains(key) || optional.contains(key) else {
                throw .invalidToxic(
                    name: name,
                    reason: "unknown attribute \"\(key)\" for \(type.rawValue) (known: \((required + optional).joined(separator: ", ")))")
            }
            guard value.isFinite, value >= 0 else {
                throw .invalidToxic(name: name, reason: "attribute \"\(key)\" must be a finite number ≥ 0")
            }
        }
        if type == .bandwidth, attributes["rate"]! <= 0 {
            throw .invalidToxic(name: name, reason: "rate must be > 0 KB/s")
        }
        if type == .slicer, attributes["average_size"]! < 1 {
            throw .invalidToxic(name: name, reason: "average_size must be ≥ 1 byte")
        }
        if type == .stall, attributes["probability"]! > 1 {
            throw .invalidToxic(name: name, reason: "probability must be in 0…1")
        }
        return self
    }

    func attribute(_ key: String, default value: Double = 0) -> Double { attributes[key] ?? value }
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
                direction.latencyNanos += Int64(toxic.attribute("latency") * ms)
                direction.jitterNanos += Int64(toxic.attribute("jitter") * ms)
            case .bandwidth:
                let rate = toxic.attribute("rate") * 1000
                direction.bytesPerSecond = min(direction.bytesPerSecond ?? .infinity, rate)
            case .slowClose:
                direction.slowCloseNanos += Int64(toxic.attribute("delay") * ms)
            case .timeout:
                direction.blackHoleCloseNanos = Int64(toxic.attribute("timeout") * ms)
            case .resetPeer:
                direction.resetNanos = Int64(toxic.attribute("timeout") * ms)
            case .slicer:
                direction.sliceAverage = max(1, Int(toxic.attribute("average_size")))
                direction.sliceVariation = Int(toxic.attribute("size_variation"))
                direction.sliceDelayNanos = Int64(toxic.attribute("delay") * 1e3)
            case .limitData:
                let bytes = Int(toxic.attribute("bytes"))
                direction.limitBytes = min(direction.limitBytes ?? .max, bytes)
            case .connectDelay:
                wantsConnectDelay = true
                if let delay = toxic.attributes["delay"] { connectDelay = (connectDelay ?? 0) + delay }
            case .stall:
                direction.stallProbability = toxic.attribute("probability")
                direction.stallNanos = Int64(toxic.attribute("duration", default: 200) * ms)
            }
            plan[toxic.stream] = direction
        }
        if wantsConnectDelay {
            plan.connectDelayNanos =
                connectDelay.map { Int64($0 * ms) } ?? (plan.upstream.latencyNanos + plan.downstream.latencyNanos)
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
        var base = arrival + plan.latencyNanos
        if plan.jitterNanos > 0 { base += Int64.random(in: -plan.jitterNanos...plan.jitterNanos, using: &random) }
        base = max(base, arrival, lastRelease)
        if plan.stallProbability > 0, Double.random(in: 0..<1, using: &random) < plan.stallProbability {
            base += plan.stallNanos
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
            let piece = max(512, Int(rate / 100))
            pieces = stride(from: 0, to: length, by: piece).map { min(piece, length - $0) }
        } else {
            pieces = [length]
        }
        var out: [(release: Int64, length: Int)] = []
        out.reserveCapacity(pieces.count)
        var release = base
        for (index, size) in pieces.enumerated() {
            if index > 0 { release += plan.sliceDelayNanos }
            if let rate = plan.bytesPerSecond {
                let start = max(release, bandwidthFreeAt)
                bandwidthFreeAt = start + Int64(Double(size) / rate * 1e9)
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
        let release = max(max(arrival, holdUntil) + plan.latencyNanos, lastRelease) + plan.slowCloseNanos
        lastRelease = release
        return release
    }
}
