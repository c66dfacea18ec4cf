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
        guard let (host, portText) = split(text), !host.isEmpty, let port = portNumber(portText), ports.contains(port) else {
            throw invalid
        }
        return HostAndPort(host: host, port: port)
    }

    public var description: String { HostAndPort.format(host: host, port: port) }

    /// The one HOST:PORT splitter every tool's address flag goes through (`--subscribe`,
    /// `--broadcast`, `--metrics`, vtp-proxy's `--listen`/`--upstream`/`--control`); each keeps
    /// its own error wording. `[IPv6]:PORT` needs its brackets (or the address's last group would
    /// read as the port); the host may be empty (`:PORT`) and whitespace-free; the port text is
    /// returned as typed, for `portNumber`. Nil when the shape is wrong.
    public static func split(_ text: some StringProtocol) -> (host: String, port: Substring)? {
        let text = Substring(text)
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !host.contains(where: \.isWhitespace) else { return nil }
        return (String(host), port)
    }

    /// A port typed as decimal digits only (no sign, no spaces), 0...65535; nil otherwise.
    public static func portNumber(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(text),
            port <= 65_535
        else { return nil }
        return port
    }

    /// `host:port`, with brackets around an IPv6 address.
    public static func format(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}
