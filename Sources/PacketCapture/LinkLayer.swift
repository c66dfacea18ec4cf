/// Link-layer header types (pcap LINKTYPE_ / DLT_ values) the decoder understands.
public enum LinkType {
    public static let null: UInt32 = 0  // BSD loopback, 4-byte host-order address family
    public static let ethernet: UInt32 = 1
    public static let rawDLT: UInt32 = 12  // DLT_RAW as pcap_datalink reports it on Linux
    public static let rawDLTOpenBSD: UInt32 = 14
    public static let raw: UInt32 = 101  // LINKTYPE_RAW in files
    public static let loop: UInt32 = 108  // OpenBSD loopback, network-order family
    public static let linuxSLL: UInt32 = 113
    public static let ipv4: UInt32 = 228
    public static let ipv6: UInt32 = 229
    public static let linuxSLL2: UInt32 = 276

    public static func isSupported(_ linkType: UInt32) -> Bool {
        [null, ethernet, rawDLT, rawDLTOpenBSD, raw, loop, linuxSLL, ipv4, ipv6, linuxSLL2].contains(linkType)
    }

    public static func name(_ linkType: UInt32) -> String {
        switch linkType {
        case null: return "NULL (BSD loopback)"
        case ethernet: return "Ethernet"
        case rawDLT, rawDLTOpenBSD, raw: return "raw IP"
        case loop: return "LOOP"
        case linuxSLL: return "Linux cooked (SLL)"
        case linuxSLL2: return "Linux cooked v2 (SLL2)"
        case ipv4: return "raw IPv4"
        case ipv6: return "raw IPv6"
        default: return "link type \(linkType)"
        }
    }
}

/// Network-layer protocol found under a link-layer header.
enum NetworkProtocol {
    case ipv4, ipv6, other
}

enum LinkLayer {
    static let etherTypeIPv4: UInt16 = 0x0800
    static let etherTypeIPv6: UInt16 = 0x86DD
    static let vlanEtherTypes: Set<UInt16> = [0x8100, 0x88A8, 0x9100]

    /// Offset of the network header and its protocol, or nil when the frame is too
    /// short or carries something other than IP.
    static func networkOffset(_ data: [UInt8], linkType: UInt32) -> (Int, NetworkProtocol)? {
        switch linkType {
        case LinkType.ethernet:
            var offset = 12
            while true {
                guard data.count >= offset + 2 else { return nil }
                let type = be16(data, offset)
                if vlanEtherTypes.contains(type) {
                    offset += 4  // TPID was read; skip TCI and read the inner type
                    continue
                }
                return (offset + 2, etherType(type))
            }
        case LinkType.linuxSLL:
            guard data.count >= 16 else { return nil }
            return (16, etherType(be16(data, 14)))
        case LinkType.linuxSLL2:
            guard data.count >= 20 else { return nil }
            return (20, etherType(be16(data, 0)))
        case LinkType.raw, LinkType.rawDLT, LinkType.rawDLTOpenBSD:
            guard let first = data.first else { return nil }
            switch first >> 4 {
            case 4: return (0, .ipv4)
            case 6: return (0, .ipv6)
            default: return (0, .other)
            }
        case LinkType.ipv4: return (0, .ipv4)
        case LinkType.ipv6: return (0, .ipv6)
        case LinkType.null, LinkType.loop:
            guard data.count >= 4 else { return nil }
            // NULL stores the family in the capturing host's byte order; accept either.
            let little = UInt32(data[0]) | UInt32(data[1]) << 8 | UInt32(data[2]) << 16 | UInt32(data[3]) << 24
            let big = UInt32(data[3]) | UInt32(data[2]) << 8 | UInt32(data[1]) << 16 | UInt32(data[0]) << 24
            let family = linkType == LinkType.loop ? big : (little < 256 ? little : big)
            switch family {
            case 2: return (4, .ipv4)
            case 10, 24, 28, 30: return (4, .ipv6)  // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS
            default: return (4, .other)
            }
        default:
            return nil
        }
    }

    static func etherType(_ type: UInt16) -> NetworkProtocol {
        switch type {
        case etherTypeIPv4: return .ipv4
        case etherTypeIPv6: return .ipv6
        default: return .other
        }
    }

    @inline(__always) static func be16(_ d: [UInt8], _ i: Int) -> UInt16 { UInt16(d[i]) << 8 | UInt16(d[i + 1]) }
    @inline(__always) static func be32(_ d: [UInt8], _ i: Int) -> UInt32 {
        UInt32(d[i]) << 24 | UInt32(d[i + 1]) << 16 | UInt32(d[i + 2]) << 8 | UInt32(d[i + 3])
    }
}
