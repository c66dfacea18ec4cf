import Foundation

public enum SenderMode: String, Sendable, CaseIterable, Codable {
    /// Connect, send one event, wait for the ack, close (author → broker).
    case perEvent = "per-event"
    /// `max_connect` long-lived connections, one event in flight on each.
    case persistent
}

/// What `max_connect` limits.
public enum MaxConnectScope: String, Sendable, CaseIterable, Codable {
    /// Whole connections: a slot is held from connect until the ack (or close).
    case connection
    /// Connection set-ups only, as the 2012 benchmark's semaphore did: a slot is
    /// released once the event has been written, before its ack arrives.
    case setup
}

/// The benchmark's knobs; `config.json` holds the defaults, flags override them.
public struct BenchConfiguration: Sendable, Equatable {
    public var host = "127.0.0.1"
    public var port = 8098
    public var maxConnect = 30
    public var events = 1000
    /// Seconds over which `events` are spread evenly (0 = all at once).
    public var period = 10.0
    public var localIVO = "ivo://vtpbench.test/sender"
    public var receiverIVO = "ivo://vtpbench.test/receiver"
    public var reportInterval = 5.0
    public var eventSize = 1024
    public var mode = SenderMode.perEvent
    public var maxConnectScope = MaxConnectScope.connection
    public var connectTimeout = 10.0
    public var ackTimeout = 30.0
    /// The receiver closes a connection silent for this long (0 = never).
    public var idleTimeout = 120.0
    /// After the last event is scheduled, how long the sender keeps trying to
    /// deliver its backlog before giving up and counting the rest as failed.
    public var drainTimeout = 60.0
    public var maxFrameSize = 1 << 20

    public init() {}

    public static let defaults = BenchConfiguration()

    /// Every key `config.json` may hold, in the order the README documents them.
    public static let keys = [
        "host", "port", "max_connect", "events", "period", "local_ivo", "receiver_ivo", "report_interval",
        "event_size", "mode", "max_connect_scope", "connect_timeout", "ack_timeout", "idle_timeout",
        "drain_timeout", "max_frame_size",
    ]

    public static func load(path: String) throws -> BenchConfiguration {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw ConfigError.unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        return try load(data: data, source: path)
    }

    public static func load(data: Data, source: String = "config") throws -> BenchConfiguration {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: data)
        } catch {
            throw ConfigError.invalidJSON(source: source, reason: (error as NSError).localizedDescription)
        }
        guard let dictionary = object as? [String: Any] else { throw ConfigError.notAnObject(source: source) }
        // JSONSerialization keeps one of two equal keys silently; a duplicate is almost
        // always an edit mistake, so name it.
        if let duplicate = JSONObjectKeys.firstDuplicate(in: data) {
            throw ConfigError.duplicateKey(source: source, key: duplicate)
        }
        var config = BenchConfiguration()
        for key in dictionary.keys.sorted() {
            guard let value = dictionary[key] else { continue }
            try config.apply(key: key, jsonValue: value, source: source)
        }
        try config.validate(source: source)
        return config
    }

    private mutating func apply(key: String, jsonValue value: Any, source: String) throws {
        func string() throws -> String {
            guard let s = value as? String else { throw ConfigError.invalidValue(source: source, key: key, value: describe(value), expected: "a string") }
            return s
        }
        func integer() throws -> Int {
            guard let n = value as? NSNumber, !isBool(n), let i = Int(exactly: n.doubleValue) else {
                throw ConfigError.invalidValue(source: source, key: key, value: describe(value), expected: "an integer")
            }
            return i
        }
        func number() throws -> Double {
            guard let n = value as? NSNumber, !isBool(n), n.doubleValue.isFinite else {
                throw ConfigError.invalidValue(source: source, key: key, value: describe(value), expected: "a number")
            }
            return n.doubleValue
        }
        switch key {
        case "host": host = try string()
        case "port": port = try integer()
        case "max_connect": maxConnect = try integer()
        case "events": events = try integer()
        case "period": period = try number()
        case "local_ivo": localIVO = try string()
        case "receiver_ivo": receiverIVO = try string()
        case "report_interval": reportInterval = try number()
        case "event_size": eventSize = try integer()
        case "mode":
            let raw = try string()
            guard let m = SenderMode(rawValue: raw) else {
                throw ConfigError.invalidValue(source: source, key: key, value: describe(value), expected: "one of per-event, persistent")
            }
            mode = m
        case "max_connect_scope":
            let raw = try string()
            guard let s = MaxConnectScope(rawValue: raw) else {
                throw ConfigError.invalidValue(source: source, key: key, value: describe(value), expected: "one of connection, setup")
            }
            maxConnectScope = s
        case "connect_timeout": connectTimeout = try number()
        case "ack_timeout": ackTimeout = try number()
        case "idle_timeout": idleTimeout = try number()
        case "drain_timeout": drainTimeout = try number()
        case "max_frame_size": maxFrameSize = try integer()
        default:
            throw ConfigError.unknownKey(source: source, key: key, suggestion: Self.closestKey(to: key))
        }
    }

    /// Checks ranges; `source` names where the values came from (file or flags).
    public func validate(source: String = "config") throws {
        func fail(_ key: String, _ value: String, _ expected: String) -> ConfigError {
            .invalidValue(source: source, key: key, value: value, expected: expected)
        }
        if host.isEmpty { throw fail("host", "\"\"", "a host name or address") }
        if !(0...65535).contains(port) { throw fail("port", String(port), "a port number from 0 to 65535") }
        if maxConnect < 1 || maxConnect > Self.maximumMaxConnect {
            throw fail("max_connect", String(maxConnect), "an integer from 1 to \(Self.maximumMaxConnect)")
        }
        if events < 0 { throw fail("events", String(events), "a non-negative integer") }
        if !localIVO.hasPrefix("ivo://") || localIVO.contains("#") {
            throw fail("local_ivo", "\"\(localIVO)\"", "an IVO identifier like ivo://example.org/sender, without '#'")
        }
        if !receiverIVO.hasPrefix("ivo://") { throw fail("receiver_ivo", "\"\(receiverIVO)\"", "an IVO identifier like ivo://example.org/receiver") }
        // max_frame_size first: event_size is checked against it.
        if maxFrameSize < 64 || maxFrameSize > Int(UInt32.max) {
            throw fail("max_frame_size", String(maxFrameSize), "a size in bytes from 64 to 4294967295")
        }
        if eventSize < 0 || eventSize > maxFrameSize {
            throw fail("event_size", String(eventSize), "a size in bytes from 0 to max_frame_size (\(maxFrameSize))")
        }
        let durations: [(String, Double, DurationRule)] = [
            ("period", period, .nonNegative), ("report_interval", reportInterval, .reportInterval),
            ("connect_timeout", connectTimeout, .positive), ("ack_timeout", ackTimeout, .positive),
            ("idle_timeout", idleTimeout, .nonNegative), ("drain_timeout", drainTimeout, .nonNegative),
        ]
        for (key, value, rule) in durations where !rule.accepts(value) {
            throw fail(key, DurationRule.format(value), rule.expected)
        }
    }

    /// One TCP client address holds at most one connection per local port to one
    /// receiver address, so more than 65535 simultaneous connections cannot exist.
    public static let maximumMaxConnect = 65535

    /// The built-in defaults as JSON (what `config.json` ships with).
    public var jsonObject: [String: Any] {
        [
            "host": host, "port": port, "max_connect": maxConnect, "events": events, "period": period,
            "local_ivo": localIVO, "receiver_ivo": receiverIVO, "report_interval": reportInterval,
            "event_size": eventSize, "mode": mode.rawValue, "max_connect_scope": maxConnectScope.rawValue,
            "connect_timeout": connectTimeout, "ack_timeout": ackTimeout, "idle_timeout": idleTimeout,
            "drain_timeout": drainTimeout, "max_frame_size": maxFrameSize,
        ]
    }

    static func closestKey(to key: String) -> String? {
        let normalised = key.lowercased().replacingOccurrences(of: "-", with: "_")
        if keys.contains(normalised) { return normalised }
        let best = keys.map { ($0, editDistance($0, normalised)) }.min { $0.1 < $1.1 }
        guard let best, best.1 <= max(2, key.count / 3) else { return nil }
        return best.0
    }

    private static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = Swift.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

// JSONSerialization hands back booleans as NSNumber; their Objective-C type is "c" (char).
private func isBool(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

private func describe(_ value: Any) -> String {
    if let s = value as? String { return "\"\(s)\"" }
    if let n = value as? NSNumber { return isBool(n) ? (n.boolValue ? "true" : "false") : n.stringValue }
    if value is NSNull { return "null" }
    if value is [Any] { return "an array" }
    return "an object"
}

public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case unreadable(path: String, reason: String)
    case invalidJSON(source: String, reason: String)
    case notAnObject(source: String)
    case unknownKey(source: String, key: String, suggestion: String?)
    case invalidValue(source: String, key: String, value: String, expected: String)
    case duplicateKey(source: String, key: String)

    public var description: String {
        switch self {
        case .unreadable(let path, let reason): return "cannot read config file \(path): \(reason)"
        case .invalidJSON(let source, let reason): return "\(source): not valid JSON: \(reason)"
        case .notAnObject(let source): return "\(source): expected a JSON object of settings"
        case .unknownKey(let source, let key, let suggestion):
            return "\(source): unknown key \"\(key)\"" + (suggestion.map { " (did you mean \"\($0)\"?)" } ?? "")
                + "; known keys: " + BenchConfiguration.keys.joined(separator: ", ")
        case .invalidValue(let source, let key, let value, let expected):
            return "\(source): invalid value for \"\(key)\": \(value); expected \(expected)"
        case .duplicateKey(let source, let key):
            return "\(source): key \"\(key)\" appears more than once; keep one"
        }
    }
}

extension BenchConfiguration {
    /// The file named by `--config`, else `./config.json` if there is one, else the
    /// built-in defaults (which equal the shipped config.json).
    public static func resolve(path: String?) throws -> BenchConfiguration {
        if let path { return try load(path: path) }
        if FileManager.default.fileExists(atPath: "config.json") { return try load(path: "config.json") }
        return BenchConfiguration()
    }
}
