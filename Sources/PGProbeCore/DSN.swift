import Foundation

/// Connection settings parsed from a libpq-style connection string.
///
/// Accepts the URI form `postgres://user:password@host:port/database?sslmode=disable`
/// (also `postgresql://`) and the keyword form `host=127.0.0.1 port=5432 user=postgres dbname=postgres`.
/// pgprobe speaks plaintext only (the sniffer must read the packets), so `sslmode` may be
/// `disable`, `allow` or `prefer`, never `require` or stricter.
///
/// Several hosts, as libpq writes them (`postgres://u@h1:5432,h2:5433/db`, or
/// `host=h1,h2 port=5432,5433`), are kept in `endpoints`; `host`/`port` are the first. Only
/// `pgprobe failover` walks the list (it always wants a read-write server, whatever
/// `target_session_attrs` says).
public struct DSN: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Every host:port in the order given (the first is `host`/`port`).
    public var endpoints: [Endpoint]
    public var user: String
    public var password: String?
    public var database: String?

    public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    public init(host: String, port: Int = 5432, user: String, password: String? = nil, database: String? = nil) {
        self.host = host
        self.port = port
        self.endpoints = [Endpoint(host: host, port: port)]
        self.user = user
        self.password = password
        self.database = database
    }

    /// `user@host:port/database` — never shows the password.
    public var redacted: String {
        let hosts = endpoints.count > 1 ? endpoints.map(\.description).joined(separator: ",") : "\(host):\(port)"
        return "\(user)@\(hosts)/\(database ?? user)"
    }

    /// The same settings aimed at one of the endpoints.
    public func at(_ endpoint: Endpoint) -> DSN {
        var copy = self
        copy.host = endpoint.host
        copy.port = endpoint.port
        copy.endpoints = [endpoint]
        return copy
    }

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
        let hosts = (values.removeValue(forKey: "host") ?? "").split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.isEmpty ? "127.0.0.1" : String($0) }
        let portTexts = (values.removeValue(forKey: "port") ?? "").split(separator: ",", omittingEmptySubsequences: false)
            .map(String.init)
        guard portTexts.count <= 1 || portTexts.count == hosts.count else {
            throw DSNError("\(hosts.count) hosts but \(portTexts.count) ports (give one port, or one per host)")
        }
        var endpoints: [Endpoint] = []
        for (index, host) in hosts.enumerated() {
            guard !host.hasPrefix("/") else {
                throw DSNError("host '\(host)' is a Unix socket directory; pgprobe needs TCP (e.g. host=127.0.0.1)")
            }
            let portText = portTexts.isEmpty ? "" : portTexts[portTexts.count == 1 ? 0 : index]
            var port = 5432
            if !portText.isEmpty {
                guard let value = Int(portText), (1...65535).contains(value) else {
                    throw DSNError("port '\(portText)' is not a number between 1 and 65535")
                }
                port = value
            }
            endpoints.append(Endpoint(host: host, port: port))
        }
        self.endpoints = endpoints
        host = endpoints[0].host
        port = endpoints[0].port
        user = values.removeValue(forKey: "user") ?? "postgres"
        password = values.removeValue(forKey: "password")
        database = values.removeValue(forKey: "dbname")
        if database?.isEmpty == true { database = nil }
        // libpq options that do not change what goes on the wire for us.
        if let attributes = values.removeValue(forKey: "target_session_attrs"),
            !["any", "read-write", "primary", "read-only", "standby", "prefer-standby"].contains(attributes)
        {
            throw DSNError("target_session_attrs=\(attributes) is not one of any, read-write, primary, read-only, standby, prefer-standby")
        }
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
        // libpq: several hosts separated by commas, each with its own optional port.
        var hosts: [String] = []
        var ports: [String] = []
        for part in hostPort.split(separator: ",", omittingEmptySubsequences: false) {
            let (host, port) = try hostAndPort(part)
            hosts.append(host)
            ports.append(port)
        }
        if hosts.contains(where: { !$0.isEmpty }) || hosts.count > 1 { values["host"] = hosts.joined(separator: ",") }
        if ports.contains(where: { !$0.isEmpty }) {
            values["port"] = ports.count == 1 ? ports[0] : ports.map { $0.isEmpty ? "5432" : $0 }.joined(separator: ",")
        }
        return values
    }

    /// `host`, `host:port`, `[::1]:port` → (host, port text; empty when absent).
    private static func hostAndPort(_ hostPort: Substring) throws(DSNError) -> (String, String) {
        if hostPort.hasPrefix("[") {  // [::1]:5432
            guard let close = hostPort.firstIndex(of: "]") else { throw DSNError("unterminated IPv6 address '\(hostPort)'") }
            let host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { return (host, String(after.dropFirst())) }
            if !after.isEmpty { throw DSNError("unexpected '\(after)' after the IPv6 address") }
            return (host, "")
        } else if let colon = hostPort.lastIndex(of: ":") {
            return (try percentDecoded(hostPort[..<colon]), String(hostPort[hostPort.index(after: colon)...]))
        }
        return (try percentDecoded(hostPort), "")
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
