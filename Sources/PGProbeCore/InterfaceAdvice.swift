import Glibc

/// Which interface traffic to a server leaves by, for crosscheck's advice when the capture saw
/// none of the probe's queries (loopback traffic is on `lo`, never on `eth0`).
public enum InterfaceAdvice {
    /// The line to print: which interface the server's traffic is on and what to run instead.
    public static func text(captured: String, host: String, port: Int) -> String {
        let route = interface(toward: host, port: port)
        switch route {
        case .some(let name) where name != captured:
            return "the capture on \(captured) saw none of the probe's queries: traffic to \(host):\(port) goes over"
                + " \(name); run again with --interface \(name)"
        case .some:
            return "the capture on \(captured) saw none of the probe's queries although traffic to \(host):\(port)"
                + " goes over it: is the server reached through a proxy or another port?"
        case .none:
            return "the capture on \(captured) saw none of the probe's queries: capture on the interface traffic to"
                + " \(host):\(port) leaves by (ip route get \(host); lo for a local server)"
        }
    }

    /// The interface the kernel routes `host:port` through: a UDP socket is connected (which
    /// sends nothing) and its local address looked up among the interfaces. nil when unknown.
    public static func interface(toward host: String, port: Int) -> String? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var found: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &found) == 0, let first = found else { return nil }
        defer { freeaddrinfo(found) }
        let family = first.pointee.ai_family
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        guard connect(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else { return nil }
        var local = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0, let address = addressBytes(of: local) else { return nil }
        return firstInterface { entry in
            guard let raw = entry.ifa_addr, Int32(raw.pointee.sa_family) == Int32(local.ss_family) else { return false }
            var candidate = sockaddr_storage()
            let size = Int32(raw.pointee.sa_family) == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size
            withUnsafeMutableBytes(of: &candidate) { $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: size)) }
            return addressBytes(of: candidate) == address
        }
    }

    /// The name of the first interface address (getifaddrs) that `matches`.
    static func firstInterface(where matches: (ifaddrs) -> Bool) -> String? {
        var interfaces: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&interfaces) == 0 else { return nil }
        defer { freeifaddrs(interfaces) }
        var cursor = interfaces
        while let entry = cursor {
            if matches(entry.pointee) { return String(cString: entry.pointee.ifa_name) }
            cursor = entry.pointee.ifa_next
        }
        return nil
    }

    /// The address part of an IPv4 or IPv6 socket address.
    private static func addressBytes(of storage: sockaddr_storage) -> [UInt8]? {
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: storage) { raw -> [UInt8]? in
            switch family {
            case AF_INET:
                let offset = MemoryLayout<sockaddr_in>.offset(of: \sockaddr_in.sin_addr) ?? 4
                return Array(raw[offset..<(offset + 4)])
            case AF_INET6:
                let offset = MemoryLayout<sockaddr_in6>.offset(of: \sockaddr_in6.sin6_addr) ?? 8
                return Array(raw[offset..<(offset + 16)])
            default:
                return nil
            }
        }
    }
}
