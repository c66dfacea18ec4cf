import Foundation

/// A loopback TCP socket that listens and never accepts: a port in use, or a peer whose
/// connects beyond the backlog stay pending. Closed by `close()`.
public struct ListeningSocket {
    public let fd: Int32
    public let port: Int

    public init?(backlog: Int32 = 1) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
                bind(fd, p, length) == 0 && listen(fd, backlog) == 0 && getsockname(fd, p, &length) == 0
            }
        }
        guard bound else {
            Foundation.close(fd)
            return nil
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    public func close() { Foundation.close(fd) }
}
