/// What the capture side saw, in one vocabulary for every capture tool (`vtp-capture`, the
/// receiver's wire check, `pgprobe sniff`): frames read and their bytes, the frames that carried no
/// usable TCP segment (by reason), the kernel's drops and the holes the reassembly gave up on.
public struct DecodeCounters: Sendable, Equatable, Codable {
    public var packets = 0
    /// Bytes of those frames on the wire (their original lengths, not the snaplen).
    public var bytes: UInt64 = 0
    /// Not IP, or IP but not TCP: skipped.
    public var notTCP = 0
    /// Later IP fragments (no TCP header to read).
    public var fragments = 0
    /// Cut by the snaplen inside the TCP payload.
    public var truncated = 0
    public var malformed = 0
    /// Packets the kernel dropped before the capture read them (buffer full, or the interface);
    /// always 0 for a file.
    public var captureDropped: UInt64 = 0
    /// Holes in a TCP stream given up on (bytes the capture never saw), and their bytes. Every
    /// consumer treats one the same way: counted here, and the stream resynchronised after it.
    public var reassemblyGaps = 0
    public var gapBytes: UInt64 = 0
    /// Segments that would have opened a connection while the reassembly already followed its
    /// maximum (`TCPReassembler.maximumConnections`): those connections are skipped, not followed.
    public var connectionsSkipped = 0

    public init() {}

    enum CodingKeys: String, CodingKey {
        case packets, bytes, notTCP, fragments, truncated, malformed, captureDropped, reassemblyGaps, gapBytes
        case connectionsSkipped
    }

    /// Every key optional: summaries written before a counter existed still read.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        packets = try c.decodeIfPresent(Int.self, forKey: .packets) ?? 0
        bytes = try c.decodeIfPresent(UInt64.self, forKey: .bytes) ?? 0
        notTCP = try c.decodeIfPresent(Int.self, forKey: .notTCP) ?? 0
        fragments = try c.decodeIfPresent(Int.self, forKey: .fragments) ?? 0
        truncated = try c.decodeIfPresent(Int.self, forKey: .truncated) ?? 0
        malformed = try c.decodeIfPresent(Int.self, forKey: .malformed) ?? 0
        captureDropped = try c.decodeIfPresent(UInt64.self, forKey: .captureDropped) ?? 0
        reassemblyGaps = try c.decodeIfPresent(Int.self, forKey: .reassemblyGaps) ?? 0
        gapBytes = try c.decodeIfPresent(UInt64.self, forKey: .gapBytes) ?? 0
        connectionsSkipped = try c.decodeIfPresent(Int.self, forKey: .connectionsSkipped) ?? 0
    }

    /// Frames that could not be read as TCP: fragments, truncated and malformed.
    public var undecodable: Int { fragments + truncated + malformed }

    /// The one line every capture tool prints about its packets:
    /// `capture: 1200 packets (96000 bytes), skipped 3 not TCP and 0 undecodable, 0 dropped by the kernel, 0 reassembly gaps (0 bytes)`
    public var line: String {
        "capture: \(packets) packets (\(bytes) bytes), skipped \(notTCP) not TCP and \(undecodable) undecodable"
            + (truncated > 0 ? " (\(truncated) truncated by the snaplen)" : "")
            + ", \(captureDropped) dropped by the kernel, \(reassemblyGaps) reassembly gaps (\(gapBytes) bytes)"
            + (connectionsSkipped > 0 ? ", \(connectionsSkipped) segments of connections past the limit skipped" : "")
    }

    /// Decodes one captured frame and counts it; nil when it carries no TCP segment.
    public mutating func segment(from packet: CapturedPacket, linkType: UInt32) -> TCPSegment? {
        packets += 1
        bytes += UInt64(max(packet.originalLength, packet.data.count))
        switch PacketDecoder.decode(packet, linkType: linkType) {
        case .segment(let segment): return segment
        case .notTCP: notTCP += 1
        case .ipFragment: fragments += 1
        case .truncated: truncated += 1
        case .malformed: malformed += 1
        }
        return nil
    }

    /// Takes in the kernel's counters at the end of a live capture.
    public mutating func update(from statistics: CaptureStatistics) {
        captureDropped = statistics.dropped + statistics.interfaceDropped
    }

    /// Takes in the reassembly's gap totals.
    public mutating func update(from totals: TCPReassembler.Totals) {
        reassemblyGaps = totals.gaps
        gapBytes = totals.gapBytes
        connectionsSkipped = totals.connectionsSkipped
    }
}

/// Turns captured frames of one link type into TCP segments, counting what it skips.
public struct SegmentExtractor: Sendable {
    public let linkType: UInt32
    public var counters = DecodeCounters()

    public init(linkType: UInt32) { self.linkType = linkType }

    public mutating func segment(from packet: CapturedPacket) -> TCPSegment? {
        counters.segment(from: packet, linkType: linkType)
    }
}
