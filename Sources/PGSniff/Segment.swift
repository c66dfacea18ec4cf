import PacketCapture

extension TCPSegment {
    /// An ACK with nothing else: no data, no SYN/FIN/RST.
    public var isPureAck: Bool { payload.isEmpty && flags.contains(.ack) && flags.isDisjoint(with: [.syn, .fin, .rst]) }
}

/// A client ↔ server connection, named by its two endpoints (the 5-tuple, protocol TCP):
/// PacketCapture's connection key, under the name this module's API has used.
public typealias PGFlowKey = ConnectionKey
