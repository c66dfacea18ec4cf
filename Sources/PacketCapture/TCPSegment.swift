import Glibc

/// An IPv4 or IPv6 address, compact and hashable (flow-table keys).
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let isIPv6: Bool
    /// IPv4: low 32 bits of `low`; IPv6: the 128 bits as high/low halves.
    let high: UInt64
    let low: UInt64

    public init(ipv4 value: UInt32) {
        isIPv6 = false
        high = 0
        low = UInt64(value)
    }

    public init(ipv6 bytes: [UInt8]) {
        precondition(bytes.count == 16, "an IPv6 address has 16 bytes")
        isIPv6 = true
        high = bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        low = bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// Parses dotted IPv4 ("127.0.0.1") or IPv6 ("::1", "fe80::1") text.
    public init?(_ text: String) {
        if text.contains(":") {
            var bytes = [UInt8](repeating: 0, count: 16)
            let ok = text.withCString { inet_pton(AF_INET6, $0, &bytes) } == 1
            guard ok else { return nil }
            self.init(ipv6: bytes)
        } else {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var value: UInt32 = 0
            for part in parts {
                guard let byte = UInt8(part) else { return nil }
                value = value << 8 | UInt32(byte)
            }
            self.init(ipv4: value)
        }
    }

    public var bytes: [UInt8] {
        if !isIPv6 { return (0..<4).map { UInt8(truncatingIfNeeded: low >> (24 - 8 * UInt64($0))) } }
        return (0..<8).map { UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64($0))) }
            + (0..<8).map { UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64($0))) }
    }

    public var description: String {
        if !isIPv6 { return bytes.map(String.init).joined(separator: ".") }
        var text = [CChar](repeating: 0, count: 64)
        var raw = bytes
        _ = inet_ntop(AF_INET6, &raw, &text, 64)
        return text.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        (a.isIPv6 ? 1 : 0, a.high, a.low) < (b.isIPv6 ? 1 : 0, b.high, b.low)
    }
}


/// One side of a TCP connection.
public struct Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(_ address: IPAddress, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String { address.isIPv6 ? "[\(address)]:\(port)" : "\(address):\(port)" }

    public static func < (a: Endpoint, b: Endpoint) -> Bool { (a.address, a.port) < (b.address, b.port) }
}

public struct TCPFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let fin = TCPFlags(rawValue: 0x01)
    public static let syn = TCPFlags(rawValue: 0x02)
    public static let rst = TCPFlags(rawValue: 0x04)
    public static let psh = TCPFlags(rawValue: 0x08)
    public static let ack = TCPFlags(rawValue: 0x10)
    public static let urg = TCPFlags(rawValue: 0x20)

    public var description: String {
        let names: [(TCPFlags, String)] = [(.syn, "S"), (.fin, "F"), (.rst, "R"), (.psh, "P"), (.ack, "."), (.urg, "U")]
        let text = names.filter { contains($0.0) }.map(\.1).joined()
        return text.isEmpty ? "none" : text
    }
}

/// A TCP segment as seen on the wire, with its capture time.
public struct TCPSegment: Sendable, Equatable {
    public var timestampNanos: Int64
    public var source: Endpoint
    public var destination: Endpoint
    public var sequence: UInt32
    public var acknowledgment: UInt32
    public var flags: TCPFlags
    public var window: UInt16
    public var payload: [UInt8]

    public init(
        timestampNanos: Int64, source: Endpoint, destination: Endpoint, sequence: UInt32,
        acknowledgment: UInt32 = 0, flags: TCPFlags = .ack, window: UInt16 = 65535, payload: [UInt8] = []
    ) {
        self.timestampNanos = timestampNanos
        self.source = source
        self.destination = destination
        self.sequence = sequence
        self.acknowledgment = acknowledgment
        self.flags = flags
        self.window = window
        self.payload = payload
    }

    /// Sequence space the segment occupies (payload plus one each for SYN and FIN).
    public var sequenceLength: UInt32 {
        UInt32(payload.count) + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
    }
}

/// Why a captured frame yielded no TCP segment.
public enum PacketDecodeResult: Sendable, Equatable {
    case segment(TCPSegment)
    /// Not IP, or IP but not TCP: ignore.
    case notTCP
    /// A later IP fragment (offset > 0) or a first fragment whose TCP payload is incomplete.
    case ipFragment
    /// The snaplen cut the packet inside the TCP payload (`missing` bytes lost).
    case truncated(missing: Int)
    /// Headers are inconsistent or shorter than they claim.
    case malformed(String)
}

public enum PacketDecoder {
    /// Decodes the TCP segment carried by one captured frame.
    public static func decode(_ packet: CapturedPacket, linkType: UInt32) -> PacketDecodeResult {
        let data = packet.data
        guard let (offset, network) = LinkLayer.networkOffset(data, linkType: linkType) else {
            return LinkType.isSupported(linkType)
                ? .malformed("frame shorter than its \(LinkType.name(linkType)) header")
                : .malformed("unsupported \(LinkType.name(linkType))")
        }
        let truncatedBy = max(0, packet.originalLength - data.count)
        switch network {
        case .other: return .notTCP
        case .ipv4: return decodeIPv4(data, at: offset, time: packet.timestampNanos, truncatedBy: truncatedBy)
        case .ipv6: return decodeIPv6(data, at: offset, time: packet.timestampNanos, truncatedBy: truncatedBy)
        }
    }

    static func decodeIPv4(_ d: [UInt8], at o: Int, time: Int64, truncatedBy: Int) -> PacketDecodeResult {
        guard d.count >= o + 20 else { return .malformed("IPv4 header cut short") }
        guard d[o] >> 4 == 4 else { return .malformed("IPv4 version field is \(d[o] >> 4)") }
        let headerLength = Int(d[o] & 0x0F) * 4
        guard headerLength >= 20 else { return .malformed("IPv4 header length \(headerLength) < 20") }
        // 0 means "see the frame": TSO/GSO super-packets captured on the sending host.
        let claimed = Int(LinkLayer.be16(d, o + 2))
        let totalLength = claimed == 0 ? d.count - o + truncatedBy : claimed
        guard totalLength >= headerLength else { return .malformed("IPv4 total length \(totalLength) < header") }
        let fragment = LinkLayer.be16(d, o + 6)
        if fragment & 0x1FFF != 0 || fragment & 0x2000 != 0 { return .ipFragment }
        guard d[o + 9] == 6 else { return .notTCP }
        let source = IPAddress(ipv4: LinkLayer.be32(d, o + 12))
        let destination = IPAddress(ipv4: LinkLayer.be32(d, o + 16))
        // Total length, not the frame length: Ethernet pads short frames.
        return decodeTCP(
            d, at: o + headerLength, end: o + totalLength, source: source, destination: destination, time: time,
            truncatedBy: truncatedBy)
    }

    static func decodeIPv6(_ d: [UInt8], at o: Int, time: Int64, truncatedBy: Int) -> PacketDecodeResult {
        guard d.count >= o + 40 else { return .malformed("IPv6 header cut short") }
        guard d[o] >> 4 == 6 else { return .malformed("IPv6 version field is \(d[o] >> 4)") }
        let payloadLength = Int(LinkLayer.be16(d, o + 4))
        let end = o + 40 + payloadLength
        var next = d[o + 6]
        var cursor = o + 40
        let source = IPAddress(ipv6: Array(d[(o + 8)..<(o + 24)]))
        let destination = IPAddress(ipv6: Array(d[(o + 24)..<(o + 40)]))
        // Walk extension headers until TCP (6) or something we do not look inside.
        while true {
            switch next {
            case 6:
                return decodeTCP(
                    d, at: cursor, end: end, source: source, destination: destination, time: time,
                    truncatedBy: truncatedBy)
            case 0, 43, 60:  // hop-by-hop, routing, destination options
                guard d.count >= cursor + 2 else { return .malformed("IPv6 extension header cut short") }
                next = d[cursor]
                cursor += (Int(d[cursor + 1]) + 1) * 8
            case 44:  // fragment
                guard d.count >= cursor + 8 else { return .malformed("IPv6 fragment header cut short") }
                let offsetAndFlags = LinkLayer.be16(d, cursor + 2)
                if offsetAndFlags & 0xFFF9 != 0 { return .ipFragment }  // offset > 0 or more-fragments
                next = d[cursor]
                cursor += 8
            case 51:  // authentication header
                guard d.count >= cursor + 2 else { return .malformed("IPv6 AH cut short") }
                next = d[cursor]
                cursor += (Int(d[cursor + 1]) + 2) * 4
            default:
                return .notTCP
            }
            if cursor > end { return .malformed("IPv6 extension headers overrun the payload length") }
        }
    }

    static func decodeTCP(
        _ d: [UInt8], at o: Int, end: Int, source: IPAddress, destination: IPAddress, time: Int64, truncatedBy: Int
    ) -> PacketDecodeResult {
        guard end >= o + 20 else { return .malformed("IP length leaves no room for a TCP header") }
        guard d.count >= o + 20 else { return .truncated(missing: end - d.count) }
        let dataOffset = Int(d[o + 12] >> 4) * 4
        guard dataOffset >= 20, o + dataOffset <= end else {
            return .malformed("TCP data offset \(dataOffset) is inconsistent with the IP length")
        }
        if end > d.count {
            // The IP header claims more than was captured: snaplen, or a lying header.
            return truncatedBy > 0 ? .truncated(missing: end - d.count) : .malformed("IP length exceeds the frame")
        }
        let segment = TCPSegment(
            timestampNanos: time,
            source: Endpoint(source, LinkLayer.be16(d, o)),
            destination: Endpoint(destination, LinkLayer.be16(d, o + 2)),
            sequence: LinkLayer.be32(d, o + 4),
            acknowledgment: LinkLayer.be32(d, o + 8),
            flags: TCPFlags(rawValue: d[o + 13] & 0x3F),
            window: LinkLayer.be16(d, o + 14),
            payload: Array(d[(o + dataOffset)..<end]))
        return .segment(segment)
    }
}

/// Builds link-layer frames that carry a TCP segment: for tests, fixtures and tools
/// that synthesise captures. Checksums are left zero (captures do not verify them).
public enum PacketBuilder {
    public static func frame(for segment: TCPSegment, linkType: UInt32, vlanTags: [UInt16] = []) -> [UInt8] {
        let ip = ipPacket(for: segment)
        let v6 = segment.source.address.isIPv6
        let etherType: UInt16 = v6 ? LinkLayer.etherTypeIPv6 : LinkLayer.etherTypeIPv4
        switch linkType {
        case LinkType.ethernet:
            var frame: [UInt8] = [0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01]
            for tag in vlanTags { frame += be16(0x8100) + be16(tag) }
            return frame + be16(etherType) + ip
        case LinkType.linuxSLL:
            return be16(0) + be16(772) + be16(6) + [0, 0, 0, 0, 0, 0, 0, 0] + be16(etherType) + ip
        case LinkType.linuxSLL2:
            return be16(etherType) + be16(0) + [0, 0, 0, 1] + be16(772) + [0, 6] + [0, 0, 0, 0, 0, 0, 0, 0] + ip
        case LinkType.null:
            let family: UInt32 = v6 ? 10 : 2
            return withUnsafeBytes(of: family.littleEndian) { Array($0) } + ip
        case LinkType.loop:
            return be32(v6 ? 24 : 2) + ip
        default:
            return ip
        }
    }

    public static func ipPacket(for s: TCPSegment) -> [UInt8] {
        var tcp = be16(s.source.port) + be16(s.destination.port) + be32(s.sequence) + be32(s.acknowledgment)
        tcp += [5 << 4, s.flags.rawValue] + be16(s.window) + [0, 0, 0, 0]
        tcp += s.payload
        if s.source.address.isIPv6 {
            return [0x60, 0, 0, 0] + be16(UInt16(tcp.count)) + [6, 64] + s.source.address.bytes
                + s.destination.address.bytes + tcp
        }
        return [0x45, 0] + be16(UInt16(20 + tcp.count)) + [0, 0, 0x40, 0, 64, 6, 0, 0]
            + s.source.address.bytes + s.destination.address.bytes + tcp
    }

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
}
