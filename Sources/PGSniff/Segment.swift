import PacketCapture

extension TCPSegment {
    /// An ACK with nothing else: no data, no SYN/FIN/RST.
    public var isPureAck: Bool { payload.isEmpty && flags.contains(.ack) && flags.isDisjoint(with: [.syn, .fin, .rst]) }
}

/// A client ↔ server connection, named by its two endpoints (the 5-tuple, protocol TCP):
/// PacketCapture's connection key, under the name this module's API has used.
public typealias PGFlowKey = ConnectionKey

/// TCP sequence-number arithmetic modulo 2^32 (RFC 1982 serial numbers).
enum SequenceNumber {
    /// b − a as a signed distance.
    static func distance(from a: UInt32, to b: UInt32) -> Int64 { Int64(Int32(bitPattern: b &- a)) }
    /// Whether `a` ≤ `b` in sequence space.
    static func lessOrEqual(_ a: UInt32, _ b: UInt32) -> Bool { distance(from: a, to: b) >= 0 }
}
