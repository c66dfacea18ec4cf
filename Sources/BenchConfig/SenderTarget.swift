import Foundation

/// One receiver the sender may deliver to: `HOST:PORT` (`[::1]:8098` for an IPv6 address).
public struct SenderTarget: Sendable, Hashable, Codable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// What a target must look like, for error messages.
    public static let expected = "HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8098 or [::1]:8098"

    /// `HOST:PORT`, or nil when `text` is not one (no colon, empty host, port not 1…65535).
    public init?(parsing text: String) {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = Substring(text[..<colon])
        if host.hasPrefix("[") {
            // A bracketed IPv6 address: the brackets enclose the whole host.
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = host.dropFirst().dropLast()
        } else if host.contains(":") {
            return nil  // an IPv6 address without brackets: where does the port start?
        }
        let portText = text[text.index(after: colon)...]
        // Digits only: Int("+80") parses, and a port is never signed.
        guard !host.isEmpty, !host.contains(where: \.isWhitespace), !portText.isEmpty, portText.count <= 5,
            portText.allSatisfy(\.isASCIIDigit), let port = Int(portText), (1...65535).contains(port)
        else { return nil }
        self.host = String(host)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let target = SenderTarget(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: Self.expected))
        }
        self = target
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }

    /// Splits flag text on commas (`--target a:1,b:2` as well as repeated `--target`).
    public static func list(_ text: String) -> [String] {
        text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    }
}

/// How the sender uses several targets.
public enum FailoverMode: String, Sendable, CaseIterable, Codable {
    /// Everything to the first healthy target; on failure, move on and resend what was unacked.
    case ordered
    /// Every event to every target (authors publishing to several brokers).
    case all
}

extension Character {
    fileprivate var isASCIIDigit: Bool { isASCII && isNumber }
}

extension BenchConfiguration {
    /// The receivers to deliver to: `targets`, or `host:port` when none are listed.
    public var senderTargets: [SenderTarget] {
        targets.isEmpty ? [SenderTarget(host: host, port: port)] : targets
    }
}
