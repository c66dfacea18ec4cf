import CommandLineKit

/// Where `--metrics` serves: `HOST:PORT`, `[IPv6]:PORT`, or `:PORT` for every interface.
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case malformed(String)
        case badPort(String)

        public var description: String {
            switch self {
            case .malformed(let text):
                return "--metrics must be HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464 (got \(text.isEmpty ? "nothing" : text))"
            case .badPort(let text): return "--metrics port must be 0 to 65535 (got \(text))"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        guard let (host, port) = HostAndPort.split(text), !port.isEmpty else { throw .malformed(text) }
        guard let number = HostAndPort.portNumber(port) else { throw .badPort(String(port)) }
        self.host = host.isEmpty ? "0.0.0.0" : host
        self.port = number
    }

    public var description: String { HostAndPort.format(host: host, port: port) }
}
