import NIOCore
import PacketCapture
import Protocol

/// Crafts the segments of one TCP conversation, with explicit sequence numbers and times.
public struct Conversation {
    public let client: Endpoint
    public let server: Endpoint
    public var clientISN: UInt32
    public var serverISN: UInt32

    public init(
        client: Endpoint = Endpoint(IPAddress("10.0.0.1")!, 40_000),
        server: Endpoint = Endpoint(IPAddress("10.0.0.2")!, 8098), clientISN: UInt32 = 1000, serverISN: UInt32 = 5000
    ) {
        self.client = client
        self.server = server
        self.clientISN = clientISN
        self.serverISN = serverISN
    }

    public func syn(at t: Int64) -> TCPSegment {
        TCPSegment(timestampNanos: t, source: client, destination: server, sequence: clientISN, flags: .syn)
    }

    public func synAck(at t: Int64) -> TCPSegment {
        TCPSegment(
            timestampNanos: t, source: server, destination: client, sequence: serverISN,
            acknowledgment: clientISN &+ 1, flags: [.syn, .ack])
    }

    public func ack(at t: Int64) -> TCPSegment {
        TCPSegment(
            timestampNanos: t, source: client, destination: server, sequence: clientISN &+ 1,
            acknowledgment: serverISN &+ 1, flags: .ack)
    }

    /// Client data at stream offset `offset` (0 = first byte after the SYN).
    public func clientData(_ bytes: [UInt8], offset: Int, at t: Int64) -> TCPSegment {
        TCPSegment(
            timestampNanos: t, source: client, destination: server,
            sequence: clientISN &+ 1 &+ UInt32(truncatingIfNeeded: offset), acknowledgment: serverISN &+ 1,
            flags: [.ack, .psh], payload: bytes)
    }

    public func serverData(_ bytes: [UInt8], offset: Int, at t: Int64) -> TCPSegment {
        TCPSegment(
            timestampNanos: t, source: server, destination: client,
            sequence: serverISN &+ 1 &+ UInt32(truncatingIfNeeded: offset), acknowledgment: clientISN &+ 1,
            flags: [.ack, .psh], payload: bytes)
    }

    public func fin(fromClient: Bool, offset: Int, at t: Int64) -> TCPSegment {
        fromClient
            ? TCPSegment(
                timestampNanos: t, source: client, destination: server,
                sequence: clientISN &+ 1 &+ UInt32(offset), acknowledgment: serverISN &+ 1, flags: [.fin, .ack])
            : TCPSegment(
                timestampNanos: t, source: server, destination: client,
                sequence: serverISN &+ 1 &+ UInt32(offset), acknowledgment: clientISN &+ 1, flags: [.fin, .ack])
    }
}

/// A VTP frame's bytes: 4-byte big-endian length + payload.
public func vtpFrame(_ text: String) -> [UInt8] {
    let buffer = VTPFraming.frame(text)
    return Array(buffer.readableBytesView)
}

public func pcapFile(_ segments: [TCPSegment], linkType: UInt32, precision: TimestampPrecision, bigEndian: Bool = false)
    -> [UInt8]
{
    var writer = PcapFileWriter(linkType: linkType, precision: precision, bigEndian: bigEndian)
    for segment in segments {
        writer.append(
            CapturedPacket(
                timestampNanos: segment.timestampNanos, data: PacketBuilder.frame(for: segment, linkType: linkType)))
    }
    return writer.bytes
}

/// Full offline pipeline for tests: pcap bytes → segments → reassembly → events.
public func reassemble(pcap bytes: [UInt8], serverPorts: Set<UInt16> = []) throws -> [ReassemblyEvent] {
    let reader = try PcapFileReader(bytes: bytes)
    var reassembler = TCPReassembler(serverPorts: serverPorts)
    var events: [ReassemblyEvent] = []
    while let packet = try reader.next() {
        if case .segment(let segment) = PacketDecoder.decode(packet, linkType: reader.linkType) {
            events += reassembler.process(segment)
        }
    }
    return events + reassembler.flush()
}

/// Concatenated data per direction, and each chunk's (offset, length, captured, delivered).
public func streamBytes(_ events: [ReassemblyEvent], direction: FlowDirection) -> [UInt8] {
    events.flatMap { event -> [UInt8] in
        if case .data(_, let d, let chunk) = event, d == direction { return chunk.bytes }
        return []
    }
}

/// Collects what the capture thread hands its consumer.
public struct Collector: CaptureConsumer {
    public init(port: UInt16 = 0) { self.port = port }
    /// Payload is counted for this port only: other tests' loopback traffic may pass the first filter.
    public var port: UInt16 = 0
    public var segments = 0
    public var payloadBytes = 0
    public var polls = 0
    public var finished = false
    public var reassembler = TCPReassembler()
    public mutating func consume(_ segment: TCPSegment) {
        segments += 1
        if segment.source.port == port || segment.destination.port == port { payloadBytes += segment.payload.count }
        _ = reassembler.process(segment)
    }
    public mutating func afterPoll() { polls += 1 }
    public mutating func finish() { finished = true }
    public var reassemblyTotals: TCPReassembler.Totals { reassembler.totals }
}
