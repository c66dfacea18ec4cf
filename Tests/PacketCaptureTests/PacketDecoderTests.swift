import PacketCapture
import XCTest

final class PacketDecoderTests: XCTestCase {
    let v4 = TCPSegment(
        timestampNanos: 42, source: Endpoint(IPAddress("192.168.1.10")!, 51_000),
        destination: Endpoint(IPAddress("192.168.1.20")!, 8098), sequence: 0xFFFF_FFF0, acknowledgment: 77,
        flags: [.ack, .psh], window: 512, payload: Array("hello".utf8))
    let v6 = TCPSegment(
        timestampNanos: 43, source: Endpoint(IPAddress("2001:db8::1")!, 51_001),
        destination: Endpoint(IPAddress("::1")!, 8098), sequence: 9, acknowledgment: 10, flags: [.syn, .ack],
        window: 1024, payload: [])

    func testEveryLinkTypeBothIPVersions() {
        let linkTypes: [UInt32] = [
            LinkType.ethernet, LinkType.linuxSLL, LinkType.linuxSLL2, LinkType.raw, LinkType.rawDLT, LinkType.null,
            LinkType.loop,
        ]
        for linkType in linkTypes {
            for segment in [v4, v6] {
                let packet = CapturedPacket(
                    timestampNanos: segment.timestampNanos, data: PacketBuilder.frame(for: segment, linkType: linkType))
                XCTAssertEqual(PacketDecoder.decode(packet, linkType: linkType), .segment(segment), LinkType.name(linkType))
            }
        }
        XCTAssertEqual(v6.source.description, "[2001:db8::1]:51001")
        XCTAssertEqual(v4.destination.description, "192.168.1.20:8098")
    }

    func testVLANTaggedEthernetAndPadding() {
        var frame = PacketBuilder.frame(for: v4, linkType: LinkType.ethernet, vlanTags: [100, 200])
        frame += [0, 0, 0, 0, 0, 0]  // Ethernet trailer padding must not leak into the payload
        let packet = CapturedPacket(timestampNanos: 42, data: frame)
        XCTAssertEqual(PacketDecoder.decode(packet, linkType: LinkType.ethernet), .segment(v4))
    }

    func testIPv6ExtensionHeadersAreSkipped() {
        var ip = PacketBuilder.ipPacket(for: v6)
        let tcp = Array(ip[40...])
        // Hop-by-hop (8 bytes) then destination options (16 bytes), then TCP.
        let hopByHop: [UInt8] = [60, 0, 1, 4, 0, 0, 0, 0]
        let destOpts: [UInt8] = [6, 1] + [UInt8](repeating: 0, count: 14)
        ip = Array(ip[0..<40]) + hopByHop + destOpts + tcp
        ip[6] = 0
        let length = UInt16(ip.count - 40)
        ip[4] = UInt8(length >> 8)
        ip[5] = UInt8(length & 0xFF)
        XCTAssertEqual(PacketDecoder.decode(CapturedPacket(timestampNanos: 43, data: ip), linkType: LinkType.raw), .segment(v6))
    }

    func testNonTCPFragmentsTruncatedAndMalformed() {
        var udp = PacketBuilder.ipPacket(for: v4)
        udp[9] = 17
        XCTAssertEqual(PacketDecoder.decode(CapturedPacket(timestampNanos: 0, data: udp), linkType: LinkType.raw), .notTCP)

        var arp = PacketBuilder.frame(for: v4, linkType: LinkType.ethernet)
        arp[12] = 0x08
        arp[13] = 0x06
        XCTAssertEqual(PacketDecoder.decode(CapturedPacket(timestampNanos: 0, data: arp), linkType: LinkType.ethernet), .notTCP)

        var fragment = PacketBuilder.ipPacket(for: v4)
        fragment[6] = 0x00
        fragment[7] = 0x10  // offset 16 × 8
        XCTAssertEqual(PacketDecoder.decode(CapturedPacket(timestampNanos: 0, data: fragment), linkType: LinkType.raw), .ipFragment)

        let full = PacketBuilder.ipPacket(for: v4)
        let cut = CapturedPacket(timestampNanos: 0, originalLength: full.count, data: Array(full[0..<(full.count - 3)]))
        XCTAssertEqual(PacketDecoder.decode(cut, linkType: LinkType.raw), .truncated(missing: 3))

        var lying = full
        lying[3] = lying[3] &+ 50  // IP total length beyond the frame, without a snaplen cut
        guard case .malformed = PacketDecoder.decode(CapturedPacket(timestampNanos: 0, data: lying), linkType: LinkType.raw)
        else { return XCTFail("lying length accepted") }

        for length in 0..<full.count {
            // Any prefix decodes to some result without trapping.
            _ = PacketDecoder.decode(CapturedPacket(timestampNanos: 0, data: Array(full[0..<length])), linkType: LinkType.raw)
            _ = PacketDecoder.decode(
                CapturedPacket(timestampNanos: 0, data: Array(PacketBuilder.frame(for: v6, linkType: LinkType.linuxSLL2).prefix(length))),
                linkType: LinkType.linuxSLL2)
        }
        guard case .malformed = PacketDecoder.decode(CapturedPacket(timestampNanos: 0, data: [1, 2]), linkType: 9999) else {
            return XCTFail("unknown link type accepted")
        }
    }
}
