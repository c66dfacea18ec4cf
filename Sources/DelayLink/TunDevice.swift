import CDelayLink

/// An open TUN device (raw IP, optionally with the virtio-net header). The device exists only
/// while this fd is open, so a crashed forwarder takes its link down with it (fails closed).
public final class TunDevice {
    public let name: String
    public let fd: Int32
    public let vnetHeader: Bool

    public init(requestedName: String, vnetHeader: Bool) throws(DelayLinkError) {
        var actual = [CChar](repeating: 0, count: 16)
        let result = vtp_tun_open(requestedName, vnetHeader ? 1 : 0, &actual)
        guard result >= 0 else {
            throw .system(
                call: "opening TUN device \(requestedName)", errno: -result,
                hint: "needs root or CAP_NET_ADMIN and /dev/net/tun")
        }
        fd = result
        name = String(decoding: actual.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        self.vnetHeader = vnetHeader
    }

    deinit { _ = vtp_close(fd) }
}
