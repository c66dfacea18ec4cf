import Foundation

/// Connection settings parsed from a libpq-style connection string.
///
/// Accepts the URI form `postgres://user:password@host:port/database?sslmode=disable`
/// (also `postgresql://`) and the keyword form `host=127.0.0.1 port=5432 user=postgres dbname=postgres`.
/// pgprobe speaks plaintext only (the sniffer must read the packets), so `sslmode` may be
/// `disable`, `allow` or `prefer`, never `require` or stricter.
public struct DSN: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String?
    public var database: String?

    public init(host: String, port: Int = 5432, user: String, password: String? = nil, database: String? = nil) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
    }

    /// `host:port/database as user` — never shows the password.
    public var redacted: String { "\(user)@\(host):\(port)/\(database ?? user)" }

    public init(parsing text: String) throws(DSNError) {
        let trimmed = text.trimmingWhitespace
        guard !trimmed.isEmpty else { throw DSNError("the DSN is empty") }
        var values: [String: String]
        if let schemeEnd = trimmed.range(of: "://") {
            let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
            guard scheme == "postgres" || scheme == "postgresql" else {
                throw DSNError("unknown scheme '\(scheme)://' (use postgres://user@host:port/database)")
            }
            values = try Self.uriValues(String(trimmed[schemeEnd.upperBound...]))
        } else {
            values = try Self.keywordValues(trimmed)
        }
        let sslmode = values.removeValue(forKey: "sslmode") ?? "disable"
        guard ["disable", "allow", "prefer"].contains(sslmode) else {
            throw DSNError(
                "sslmode=\(sslmode) is not supported: pgprobe connects without TLS so that its packets stay readable (use sslmode=disable)")
        }
        host = values.removeValue(forKey: "host") ?? "127.0.0.1"
        if host.isEmpty { host = "127.0.0.1" }
        guard !host.hasPrefix("/") else {
            throw DSNError("host '\(host)' is a Unix socket directory; pgprobe needs TCP (e.g. host=127.0.0.1)")
        }
        if let portText = values.removeValue(forKey: "port"), !portText.isEmpty {
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw DSNError("port '\(portText)' is not a number between 1 and 65535")
            }
            port = value
        } else {
            port = 5432
        }
        user = values.removeValue(forKey: "user") ?? "postgres"
        password = values.removeValue(forKey: "password")
        database = values.removeValue(forKey: "dbname")
        if database?.isEmpty == true { database = nil }
        // libpq options that do not change what goes on the wire for us.
        for harmless in ["connect_timeout", "application_name", "fallback_application_name"] {
            values.removeValue(forKey: harmless)
        }
        if let unknown = values.keys.sorted().first {
            throw DSNError("unsupported connection parameter '\(unknown)'")
        }
    }

    private static func uriValues(_ rest: String) throws(DSNError) -> [String: String] {
        var values: [String: String] = [:]
        var authorityAndPath = Substring(rest)
        if let question = rest.firstIndex(of: "?") {
            authorityAndPath = rest[..<question]
            for pair in rest[rest.index(after: question)...].split(separator: "&") where !pair.isEmpty {
                guard let equals = pair.firstIndex(of: "=") else {
                    throw DSNError("query parameter '\(pair)' has no value (write key=value)")
                }
                values[try percentDecoded(pair[..<equals])] = try percentDecoded(pair[pair.index(after: equals)...])
            }
        }
        var authority = authorityAndPath
        if let slash = authorityAndPath.firstIndex(of: "/") {
            authority = authorityAndPath[..<slash]
            let path = authorityAndPath[authorityAndPath.index(after: slash)...]
            if !path.isEmpty { values["dbname"] = try percentDecoded(path) }
        }
        var hostPort = authority
        if let at = authority.lastIndex(of: "@") {
            let userInfo = authority[..<at]
            hostPort = authority[authority.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                values["user"] = try percentDecoded(userInfo[..<colon])
                values["password"] = try percentDecoded(userInfo[userInfo.index(after: colon)...])
            } else if !userInfo.isEmpty {
                values["user"] = try percentDecoded(userInfo)
            }
        }
        if hostPort.hasPrefix("[") {  // [::1]:5432
            guard let close = hostPort.firstIndex(of: "]") else { throw DSNError("unterminated IPv6 address '\(hostPort)'") }
            values["host"] = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { values["port"] = String(after.dropFirst()) }
            else if !after.isEmpty { throw DSNError("unexpected '\(after)' after the IPv6 address") }
        } else if let colon = hostPort.lastIndex(of: ":") {
            values["host"] = try percentDecoded(hostPort[..<colon])
            values["port"] = String(hostPort[hostPort.index(after: colon)...])
        } else if !hostPort.isEmpty {
            values["host"] = try percentDecoded(hostPort)
        }
        return values
    }

    private static func keywordValues(_ text: String) throws(DSNError) -> [String: String] {
        var values: [String: String] = [:]
        var index = text.startIndex
        func skipSpaces() { while index < text.endIndex, text[index].isWhitespace { index = text.index(after: index) } }
        while true {
            skipSpaces()
            guard index < text.endIndex else { break }
            var key = ""
            while index < text.endIndex, text[index] != "=", !text[index].isWhitespace {
                key.append(text[index]); index = text.index(after: index)
            }
            skipSpaces()
            guard index < text.endIndex, text[index] == "=" else {
                throw DSNError("'\(key)' has no value: write key=value pairs (host=127.0.0.1 port=5432 …) or a postgres:// URI")
            }
            index = text.index(after: index)
            skipSpaces()
            var value = ""
            if index < text.endIndex, text[index] == "'" {
                index = text.index(after: index)
                var closed = false
                while index < text.endIndex {
                    let character = text[index]
                    index = text.index(after: index)
                    if character == "\\", index < text.endIndex {
                        value.append(text[index]); index = text.index(after: index)
                    } else if character == "'" {
                        closed = true; break
                    } else {
                        value.append(character)
                    }
                }
                guard closed else { throw DSNError("unterminated quoted value for '\(key)'") }
            } else {
                while index < text.endIndex, !text[index].isWhitespace {
                    value.append(text[index]); index = text.index(after: index)
                }
            }
            values[key] = value
        }
        guard !values.isEmpty else { throw DSNError("no connection parameters found") }
        return values
    }

    private static func percentDecoded(_ text: Substring) throws(DSNError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw DSNError("bad percent-escape in '\(text)'")
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

public struct DSNError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = "bad DSN: " + description }
}

extension String {
    var trimmingWhitespace: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
