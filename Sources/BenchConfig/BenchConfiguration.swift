import CommandLineKit
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
    /// Events a persistent connection may have awaiting their acks at once (1 = send, await the
    /// ack, send the next).
    public var window = 1
    /// Events scheduled at the same instant every `burstEvery` seconds (0 = no bursts: `events`
    /// spread evenly over `period`).
    public var burst = 0
    public var burstEvery = 40.0
    public var connectTimeout = 10.0
    public var ackTimeout = 30.0
    /// The receiver closes a connection silent for this long (0 = never).
    public var idleTimeout = 120.0
    /// After the last event is scheduled, how long the sender keeps trying to
    /// deliver its backlog before giving up and counting the rest as failed.
    public var drainTimeout = 60.0
    public var maxFrameSize = 1 << 20
    /// `--broadcast`: a subscriber silent this long is sent an iamalive, and dropped if it has not
    /// answered within as long again (Comet sends one every 60 s).
    public var iamaliveInterval = 60.0
    /// The sender's receivers in order; empty: the one at host:port (`senderTargets`).
    public var targets: [SenderTarget] = []
    public var failover = FailoverMode.ordered

    public init() {}

    public static let defaults = BenchConfiguration()

    /// Every key `config.json` may hold, in the order the README documents them.
    public static var keys: [String] { table.map(\.name) }

    /// Every key, declared once: what it sets, what it may hold, and the flags that override it.
    public static let table: [ConfigKey] = [
        .text("host", \.host, expected: "a host name or address", flags: .init(sender: "Receiver host.", receiver: "Address to listen on.")) {
            !$0.isEmpty
        },
        .integer(
            "port", \.port,
            flags: .init(sender: "Receiver port.", receiver: "Port to listen on; 0 picks a free port and prints it."),
            range: { _ in 0...65535 }, expected: { _ in "a port number from 0 to 65535" }),
        .integer(
            "max_connect", \.maxConnect, flags: .sender("Maximum simultaneous TCP connections (at most 65535)."),
            range: { _ in 1...maximumMaxConnect }, expected: { _ in "an integer from 1 to \(maximumMaxConnect)" }),
        .integer(
            "events", \.events, flags: .sender("Number of events to send."), range: { _ in 1...Int.max },
            expected: { _ in "at least 1" }),
        .duration(
            "period", \.period, .nonNegative,
            flags: .sender("Time over which the events are spread evenly; 0 sends them all at once.")),
        .text(
            "local_ivo", \.localIVO, expected: "an IVO identifier like ivo://example.org/sender, without '#'",
            flags: .sender("IVO identifier the event ivorns are built from.")
        ) { $0.hasPrefix("ivo://") && !$0.contains("#") },
        .text(
            "receiver_ivo", \.receiverIVO, expected: "an IVO identifier like ivo://example.org/receiver",
            flags: .receiver("This receiver's IVO, sent as Response in acks.")
        ) { $0.hasPrefix("ivo://") },
        .duration(
            "report_interval", \.reportInterval, .reportInterval,
            flags: .both("Time between report lines (at least 0.1 s).")),
        // Checked after max_frame_size: its range is bounded by it.
        .integer(
            "event_size", \.eventSize,
            flags: .sender("Size of each event document in bytes (padded; the unpadded event, about 630 bytes, is the least sent)."),
            readsOtherKeys: true, range: { 0...$0.maxFrameSize },
            expected: { "a size in bytes from 0 to max_frame_size (\($0.maxFrameSize))" }),
        .choice(
            "mode", \.mode,
            flags: .sender("per-event (connect, send, await ack, close) or persistent (long-lived connections).")),
        .choice(
            "max_connect_scope", \.maxConnectScope,
            flags: .sender(
                "What --max-connect limits: connection (whole connections, default) or setup (connection set-ups only, as the 2012 benchmark).")),
        .integer(
            "window", \.window,
            flags: .sender(
                "Events a persistent connection may have awaiting their acks at once (1 = wait for each ack before the next; at most \(maximumWindow))."),
            range: { _ in 1...maximumWindow }, expected: { _ in "an integer from 1 to \(maximumWindow)" }),
        // Checked after events: its range is bounded by it.
        .integer(
            "burst", \.burst,
            flags: .sender(
                "Events scheduled at the same instant every --burst-every, each stamped with that instant; 0 spreads --events evenly over --period (which bursts replace)."),
            readsOtherKeys: true, range: { 0...$0.events }, expected: { "an integer from 0 to events (\($0.events))" }),
        .duration(
            "burst_every", \.burstEvery, .positive, flags: .sender("Time between the starts of bursts (with --burst).")),
        .duration(
            "connect_timeout", \.connectTimeout, .positive,
            flags: .sender("Time to wait for a TCP connection; if none has ever opened by then, the run stops (exit 2).")),
        .duration(
            "ack_timeout", \.ackTimeout, .positive, flags: .sender("Time to wait for an event's ack before retrying it.")),
        .duration(
            "idle_timeout", \.idleTimeout, .nonNegative, flags: .receiver("Close connections that deliver no whole frame this long (silent, or trickling one); 0 = never.")),
        .duration(
            "drain_timeout", \.drainTimeout, .nonNegative,
            flags: .sender("Time to keep delivering the backlog after the last event is scheduled.")),
        .duration(
            "iamalive_interval", \.iamaliveInterval, .positive,
            flags: .sender(
                "With --broadcast: a subscriber silent this long is sent an iamalive, and dropped if it does not answer within as long again.")),
        .integer(
            "max_frame_size", \.maxFrameSize, flags: .receiver("Largest accepted frame in bytes."),
            range: { _ in 64...Int(UInt32.max) }, expected: { _ in "a size in bytes from 64 to 4294967295" }),
        .targets(
            "targets", \.targets, flag: "target",
            flags: .sender(
                "A receiver as HOST:PORT; repeat for several, in order of preference (replaces --host/--port).")),
        .choice(
            "failover", \.failover,
            flags: .sender(
                "With several targets: ordered (the first healthy one; on failure move on and resend what was not acked) or all (every event to every target).")),
    ]

    /// The table's keys in the order their rules are checked: rules that read other keys last.
    static var validationOrder: [ConfigKey] { table.filter { !$0.readsOtherKeys } + table.filter(\.readsOtherKeys) }

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
        for name in dictionary.keys.sorted() {
            guard let json = dictionary[name] else { continue }
            guard let key = table.first(where: { $0.name == name }) else {
                throw ConfigError.unknownKey(source: source, key: name, suggestion: closestKey(to: name))
            }
            guard let value = key.value(json: json) else {
                throw ConfigError.invalidValue(source: source, key: name, value: describe(json), expected: key.expected(config))
            }
            key.write(&config, value)
        }
        try config.validate(source: source)
        return config
    }

    /// Checks ranges; `source` names where the values came from (file or flags).
    public func validate(source: String = "config") throws {
        for key in Self.validationOrder {
            if let problem = key.problem(in: self) {
                throw ConfigError.invalidValue(source: source, key: key.name, value: problem.value, expected: problem.expected)
            }
        }
    }

    /// Sets the keys given on the command line (flag text as typed): each value is checked
    /// against its key's rule and any error names the flag; then the whole is validated.
    public mutating func apply(flags: [(key: ConfigKey, text: String)]) throws {
        for (key, text) in flags {
            guard let value = key.value(text: text) else {
                throw ConfigError.invalidFlag(flag: key.flag, value: text, expected: key.expected(self))
            }
            key.write(&self, value)
        }
        try applyTargetFlags(flags.map(\.key.name))
        for key in Self.validationOrder {
            guard let given = flags.first(where: { $0.key.name == key.name }), let problem = key.problem(in: self) else { continue }
            throw ConfigError.invalidFlag(flag: key.flag, value: given.text, expected: problem.expected)
        }
        try validate(source: "settings (config file + flags)")
    }

    /// `--host`/`--port` name one target: they replace the config file's `targets`, and
    /// cannot be combined with `--target`.
    private mutating func applyTargetFlags(_ given: [String]) throws {
        let hostPort = given.filter { $0 == "host" || $0 == "port" }
        guard !hostPort.isEmpty else { return }
        if given.contains("targets") {
            throw ConfigError.conflictingFlags(
                "--target", "--" + hostPort[0], reason: "--host/--port name one target; give either --target or --host/--port")
        }
        targets = []
    }

    /// One TCP client address holds at most one connection per local port to one
    /// receiver address, so more than 65535 simultaneous connections cannot exist.
    public static let maximumMaxConnect = 65535

    /// A window this large already fills any link; beyond it only memory grows.
    public static let maximumWindow = 65535

    /// The built-in defaults as JSON (what `config.json` ships with).
    public var jsonObject: [String: Any] {
        Dictionary(uniqueKeysWithValues: Self.table.map { ($0.name, $0.jsonValue(self)) })
    }

    static func closestKey(to key: String) -> String? {
        let normalised = key.lowercased().replacingOccurrences(of: "-", with: "_")
        if keys.contains(normalised) { return normalised }
        return Suggestions.closest(to: normalised, among: keys)
    }
}

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
    /// A flag's value (as typed) that its key does not accept.
    case invalidFlag(flag: String, value: String, expected: String)
    /// Two flags that cannot be given together.
    case conflictingFlags(String, String, reason: String)

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
        case .invalidFlag(let flag, let value, let expected):
            return "\(flag) must be \(expected) (got \(value))"
        case .conflictingFlags(let a, let b, let reason):
            return "\(a) and \(b) cannot be combined: \(reason)"
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
