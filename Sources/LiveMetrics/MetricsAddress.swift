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
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else { throw .malformed(text) }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else { throw .malformed(text) }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        }
        guard !port.isEmpty, !host.contains(where: \.isWhitespace) else { throw .malformed(text) }
        guard port.allSatisfy(\.isASCIIDigit), let number = Int(port), number <= 65_535 else { throw .badPort(String(port)) }
        self.host = host.isEmpty ? "0.0.0.0" : String(host)
        self.port = number
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}
