#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// The control endpoint's shared secret: with one set, every request must carry
/// `Authorization: Bearer TOKEN`. Compared in constant time, so response timing tells a
/// client nothing about how much of a guess was right.
public struct ControlToken: Sendable, Equatable {
    let bytes: [UInt8]
    /// RFC 6750's token characters are printable ASCII; far longer than any generated secret.
    public static let maximumLength = 4096

    /// The token as given on the command line.
    public init(_ text: String) throws(ProxyError) {
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty else { throw .invalidFlag(flag: "--control-token", reason: "must not be empty") }
        guard bytes.count <= Self.maximumLength else {
            throw .invalidFlag(flag: "--control-token", reason: "longer than \(Self.maximumLength) bytes")
        }
        guard bytes.allSatisfy({ (0x21...0x7E).contains($0) }) else {
            throw .invalidFlag(
                flag: "--control-token", reason: "may hold printable ASCII only (no spaces or control characters)")
        }
        self.bytes = bytes
    }

    /// The first line of `path` (trailing white space dropped), as `openssl rand -hex 32 > FILE` writes it.
    public static func load(path: String) throws(ProxyError) -> ControlToken {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = errno == 0 ? "cannot read it" : String(cString: strerror(errno))
            throw .invalidFlag(flag: "--control-token-file", reason: "\(path): \(reason)")
        }
        guard data.count <= maximumLength + 2 else {
            throw .invalidFlag(flag: "--control-token-file", reason: "\(path): longer than \(maximumLength) bytes")
        }
        let text = String(decoding: data, as: UTF8.self)
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        do {
            return try ControlToken(trimmed)
        } catch {
            throw .invalidFlag(flag: "--control-token-file", reason: "\(path): the token \(error.reason)")
        }
    }

    /// Whether the request's Authorization headers are exactly one `Bearer` with this token.
    func accepts(authorization values: [String]) -> Bool {
        guard values.count == 1 else { return false }
        let value = Array(values[0].utf8)
        let scheme = Array("bearer ".utf8)
        guard value.count > scheme.count,
            zip(value.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 | 0x20 })
        else { return false }
        var offered = value.dropFirst(scheme.count)
        while offered.first == UInt8(ascii: " ") { offered = offered.dropFirst() }
        return Self.constantTimeEquals(bytes, Array(offered))
    }

    /// Time depends only on the secret's length, not on where a guess first differs.
    static func constantTimeEquals(_ secret: [UInt8], _ offered: [UInt8]) -> Bool {
        var difference = UInt(bitPattern: secret.count ^ offered.count)
        for index in 0..<secret.count {
            let guess = index < offered.count ? offered[index] : 0
            difference |= UInt(secret[index] ^ guess)
        }
        return difference == 0
    }
}

extension ProxyError {
    /// An invalid-flag error's reason alone (for wrapping under another flag).
    var reason: String {
        if case .invalidFlag(_, let reason) = self { return reason }
        return description
    }
}

extension HostPort {
    /// Reachable only from this host: `localhost`, 127.0.0.0/8 or ::1. Every other address
    /// (0.0.0.0, ::, a LAN address, a host name) may be reachable from elsewhere.
    public var isLoopback: Bool {
        if host == "localhost" { return true }
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { $0.dropLast().allSatisfy { $0 == 0 } && $0.last == 1 }
        }
        return false
    }
}
