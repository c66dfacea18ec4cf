import CommandLineKit
import Foundation

/// Parsing of the human units used on the command line and in config files.
public enum Units {
    /// "50ms", "5 ms", "1.5s", "250us", "100000ns", "2m"; a bare number is milliseconds.
    /// Returns nanoseconds. The parsing is CommandLineKit's (`Durations`), as for every tool.
    public static func parseDuration(_ text: String) throws(ProxyError) -> Int64 {
        let seconds: Double
        do {
            seconds = try Durations.parseSeconds(text, bareUnit: .milliseconds)
        } catch {
            throw ProxyError.invalidValue(what: "duration", value: text, expected: "\(error.reason); e.g. 50ms, 1.5s, 250us")
        }
        // At most a week (checked by the kit): far inside Int64 nanoseconds.
        return Int64((seconds * 1e9).rounded())
    }

    /// tc-style rates: "1mbit", "500kbit", "10gbit", "100bit" (bits/s) or "1mbps", "64kbps",
    /// "100bps" (bytes/s, as tc reads them). Returns bytes per second.
    public static func parseBandwidth(_ text: String) throws(ProxyError) -> Double {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let suffixes: [(String, Double)] = [
            ("gbit", 1e9 / 8), ("mbit", 1e6 / 8), ("kbit", 1e3 / 8), ("bit", 1.0 / 8),
            ("gbps", 1e9), ("mbps", 1e6), ("kbps", 1e3), ("bps", 1),
        ]
        for (suffix, scale) in suffixes where trimmed.hasSuffix(suffix) {
            let number = trimmed.dropLast(suffix.count).trimmingCharacters(in: .whitespaces)
            if let value = Double(number), value > 0, (value * scale).isFinite { return value * scale }
            break
        }
        throw ProxyError.invalidValue(
            what: "bandwidth", value: text, expected: "e.g. 1mbit, 500kbit (bits/s) or 64kbps (bytes/s)")
    }
}

/// "host:port", "[::1]:port".
public struct HostPort: Sendable, Equatable, Codable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(parsing text: String) throws(ProxyError) {
        let invalid = ProxyError.invalidValue(what: "address", value: text, expected: "HOST:PORT, e.g. 127.0.0.1:6432")
        guard let (host, portText) = HostAndPort.split(text), !host.isEmpty, let port = HostAndPort.portNumber(portText)
        else { throw invalid }
        self.host = host
        self.port = port
    }

    public var description: String { HostAndPort.format(host: host, port: port) }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try HostPort(parsing: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// Errors a user can act on.
public enum ProxyError: Error, Equatable, CustomStringConvertible {
    case invalidValue(what: String, value: String, expected: String)
    /// A command-line flag's value; the message starts with the flag.
    case invalidFlag(flag: String, reason: String)
    /// Flags missing or not fitting together.
    case usage(String)
    case invalidToxic(name: String, reason: String)
    case invalidConfig(String)
    case cannotListen(address: String, reason: String)
    case upstreamUnreachable(address: String, reason: String)
    case unknownProxy(String)
    case unknownToxic(proxy: String, toxic: String)
    case duplicateToxic(proxy: String, toxic: String)

    public var description: String {
        switch self {
        case .invalidValue(let what, let value, let expected): return "invalid \(what) \"\(value)\" (\(expected))"
        case .invalidFlag(let flag, let reason): return "\(flag): \(reason)"
        case .usage(let message): return message
        case .invalidToxic(let name, let reason): return "toxic \"\(name)\": \(reason)"
        case .invalidConfig(let reason): return "configuration: \(reason)"
        case .cannotListen(let address, let reason): return "cannot listen on \(address): \(reason)"
        case .upstreamUnreachable(let address, let reason): return "upstream \(address) unreachable: \(reason)"
        case .unknownProxy(let name): return "no proxy named \"\(name)\""
        case .unknownToxic(let proxy, let toxic): return "proxy \"\(proxy)\" has no toxic named \"\(toxic)\""
        case .duplicateToxic(let proxy, let toxic): return "proxy \"\(proxy)\" already has a toxic named \"\(toxic)\""
        }
    }
}
