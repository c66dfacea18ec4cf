/// A `HOST:PORT` flag value (`127.0.0.1:8099`, `broker.example.org:8099`, `[::1]:8099`), as
/// `--subscribe` and `--broadcast` take it.
public struct HostAndPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
    }

    /// Reads `text`; `ports` is the accepted range (0 only where it picks a free port). The error
    /// names the flag and what was typed.
    public static func parse(_ text: String, flag: String, ports: ClosedRange<Int> = 1...65535) throws -> HostAndPort {
        let invalid = Invalid(
            description: "\(flag) must be HOST:PORT with a port from \(ports.lowerBound) to \(ports.upperBound), "
                + "e.g. 127.0.0.1:8099 or [::1]:8099 (got \(text))")
        guard let colon = text.lastIndex(of: ":") else { throw invalid }
        var host = String(text[..<colon])
        if host.hasPrefix("[") {
            guard host.hasSuffix("]") else { throw invalid }
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            throw invalid  // an IPv6 address needs brackets, or its last group reads as the port
        }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), ports.contains(port) else {
            throw invalid
        }
        return HostAndPort(host: host, port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
