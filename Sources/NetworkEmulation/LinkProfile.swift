/// How one direction of an emulated link treats what passes: packets on vtp-netem's TUN link,
/// byte chunks on a vtp-proxy connection. One meaning for both tools:
///
/// - **delay and jitter**: each packet (or chunk read from a socket) is held for a delay drawn
///   uniformly from [delay − jitter, delay + jitter], clamped at 0, counted from when the
///   emulated wire has finished sending it (at once without a rate limit). "+50 ms ± 5 ms"
///   means every packet is held 45…55 ms.
/// - **order**: a packet never leaves before the one ahead of it in the same direction
///   (stream); when jitter would make it overtake, it leaves together with that one. Only an
///   explicit `allowReorder` (vtp-netem `--allow-reorder`) lets jitter reorder packets.
/// - **rate**: packets are serialised one after another at `rateBytesPerSecond`, then delayed.
///
/// The stream-only parts (stalls, slicing, slow close) are used by vtp-proxy's toxics.
public struct LinkProfile: Sendable, Equatable, Codable {
    /// Fixed one-way delay added to every packet.
    public var delayNanos: Int64
    /// Uniform jitter: each delay is drawn from [delay − jitter, delay + jitter], never below 0.
    public var jitterNanos: Int64
    /// Whether jitter may reorder packets. Without it release times are clamped to be
    /// non-decreasing, as on a real FIFO link (Linux netem's default reorders; TCP dislikes it).
    public var allowReorder: Bool
    /// Probability in [0, 1] that a packet is dropped on arrival (packets only).
    public var lossProbability: Double
    /// Serialisation rate in bytes per second; nil for unlimited.
    public var rateBytesPerSecond: Double?
    /// Packets held at once before new arrivals are dropped (bounds memory; packets only).
    public var queueLimitPackets: Int
    /// Probability per chunk of a loss-like stall: the chunk leaves `stallNanos` late, and
    /// everything behind it waits for it, as a lost TCP segment holds the stream until its
    /// retransmission.
    public var stallProbability: Double
    public var stallNanos: Int64
    /// Cuts chunks into small pieces sent apart (streams only).
    public var slicing: Slicing?
    /// Extra hold for an end of stream (FIN), after the data before it.
    public var slowCloseNanos: Int64

    public struct Slicing: Sendable, Equatable, Codable {
        /// Pieces of `averageBytes ± variationBytes` (at least 1 byte), `gapNanos` apart.
        public var averageBytes: Int
        public var variationBytes: Int
        public var gapNanos: Int64

        public init(averageBytes: Int, variationBytes: Int = 0, gapNanos: Int64 = 0) {
            self.averageBytes = averageBytes
            self.variationBytes = variationBytes
            self.gapNanos = gapNanos
        }
    }

    public init(
        delayNanos: Int64 = 0, jitterNanos: Int64 = 0, allowReorder: Bool = false, lossProbability: Double = 0,
        rateBytesPerSecond: Double? = nil, queueLimitPackets: Int = 200_000, stallProbability: Double = 0,
        stallNanos: Int64 = 0, slicing: Slicing? = nil, slowCloseNanos: Int64 = 0
    ) {
        self.delayNanos = delayNanos
        self.jitterNanos = jitterNanos
        self.allowReorder = allowReorder
        self.lossProbability = lossProbability
        self.rateBytesPerSecond = rateBytesPerSecond
        self.queueLimitPackets = queueLimitPackets
        self.stallProbability = stallProbability
        self.stallNanos = stallNanos
        self.slicing = slicing
        self.slowCloseNanos = slowCloseNanos
    }

    /// Everything passes at once, as it came.
    public var isTransparent: Bool {
        delayNanos <= 0 && jitterNanos <= 0 && lossProbability <= 0 && rateBytesPerSecond == nil
            && stallProbability <= 0 && slicing == nil
    }

    /// Problems with the values, each naming the setting (nil when valid).
    public var problem: String? {
        if delayNanos < 0 { return "delay must be ≥ 0" }
        if jitterNanos < 0 { return "jitter must be ≥ 0" }
        if !(0...1).contains(lossProbability) { return "loss must be between 0 and 100 percent" }
        if let rate = rateBytesPerSecond, !(rate > 0) || !rate.isFinite { return "rate must be a positive number" }
        if queueLimitPackets < 1 { return "queue limit must be ≥ 1 packet" }
        if !(0...1).contains(stallProbability) { return "stall probability must be between 0 and 1" }
        if stallNanos < 0 || slowCloseNanos < 0 { return "stall and slow-close durations must be ≥ 0" }
        if let slicing, slicing.averageBytes < 1 || slicing.variationBytes < 0 || slicing.gapNanos < 0 {
            return "slices must be at least 1 byte, their variation and gap ≥ 0"
        }
        return nil
    }
}
