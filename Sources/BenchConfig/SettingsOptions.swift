import ArgumentParser

/// vtp-sender's settings flags: `--config` and one flag per config key the sender reads. Each
/// flag's help comes from `BenchConfiguration.table`; `configuration()` loads the config file,
/// applies every given flag through the table and validates the result.
public struct SenderSettings: SettingsFlags {
    @Option(help: .configFile) public var config: String?
    @Option(help: .setting("host", .sender)) public var host: String?
    // Numbers and durations take the next word whatever it looks like, so `--events -5` is
    // answered by the key's rule rather than "missing value".
    @Option(parsing: .unconditional, help: .setting("port", .sender)) public var port: String?
    @Option(parsing: .unconditional, help: .setting("max_connect", .sender)) public var maxConnect: String?
    @Option(help: .setting("max_connect_scope", .sender)) public var maxConnectScope: String?
    @Option(parsing: .unconditional, help: .setting("events", .sender)) public var events: String?
    @Option(parsing: .unconditional, help: .setting("period", .sender)) public var period: String?
    @Option(help: .setting("mode", .sender)) public var mode: String?
    @Option(parsing: .unconditional, help: .setting("event_size", .sender)) public var eventSize: String?
    @Option(parsing: .unconditional, help: .setting("report_interval", .sender)) public var reportInterval: String?
    @Option(name: .customLong("local-ivo"), help: .setting("local_ivo", .sender)) public var localIVO: String?
    @Option(parsing: .unconditional, help: .setting("window", .sender)) public var window: String?
    @Option(parsing: .unconditional, help: .setting("burst", .sender)) public var burst: String?
    @Option(parsing: .unconditional, help: .setting("burst_every", .sender)) public var burstEvery: String?
    @Option(parsing: .unconditional, help: .setting("connect_timeout", .sender)) public var connectTimeout: String?
    @Option(parsing: .unconditional, help: .setting("ack_timeout", .sender)) public var ackTimeout: String?
    @Option(parsing: .unconditional, help: .setting("drain_timeout", .sender)) public var drainTimeout: String?
    @Option(parsing: .unconditional, help: .setting("iamalive_interval", .sender)) public var iamaliveInterval: String?
    @Option(name: .customLong("target"), parsing: .unconditionalSingleValue, help: .setting("targets", .sender))
    public var target: [String] = []
    @Option(help: .setting("failover", .sender)) public var failover: String?

    public init() {}

    public static let bindings: [(key: String, path: KeyPath<SenderSettings, String?> & Sendable)] = [
        ("host", \.host), ("port", \.port), ("max_connect", \.maxConnect), ("max_connect_scope", \.maxConnectScope),
        ("events", \.events), ("period", \.period), ("mode", \.mode), ("event_size", \.eventSize),
        ("report_interval", \.reportInterval), ("local_ivo", \.localIVO), ("window", \.window), ("burst", \.burst), ("burst_every", \.burstEvery), ("connect_timeout", \.connectTimeout),
        ("ack_timeout", \.ackTimeout), ("drain_timeout", \.drainTimeout), ("iamalive_interval", \.iamaliveInterval),
        ("targets", \.targets), ("failover", \.failover),
    ]

    /// Every `--target`, as the key's text (a comma-separated list); nil when none was given.
    public var targets: String? { target.isEmpty ? nil : target.joined(separator: ",") }

    /// Names the first `--target` that is not HOST:PORT (the key's own check shows the whole list).
    public func validate() throws {
        for text in target.flatMap(SenderTarget.list) where SenderTarget(parsing: text) == nil {
            throw ValidationError("--target must be \(SenderTarget.expected) (got \"\(text)\")")
        }
    }

}

/// vtp-receiver's settings flags; see `SenderSettings`.
public struct ReceiverSettings: SettingsFlags {
    @Option(help: .configFile) public var config: String?
    @Option(help: .setting("host", .receiver)) public var host: String?
    @Option(parsing: .unconditional, help: .setting("port", .receiver)) public var port: String?
    @Option(parsing: .unconditional, help: .setting("report_interval", .receiver)) public var reportInterval: String?
    @Option(name: .customLong("receiver-ivo"), help: .setting("receiver_ivo", .receiver)) public var receiverIVO: String?
    @Option(parsing: .unconditional, help: .setting("idle_timeout", .receiver)) public var idleTimeout: String?
    @Option(parsing: .unconditional, help: .setting("max_frame_size", .receiver)) public var maxFrameSize: String?

    public init() {}

    public static let bindings: [(key: String, path: KeyPath<ReceiverSettings, String?> & Sendable)] = [
        ("host", \.host), ("port", \.port), ("report_interval", \.reportInterval), ("receiver_ivo", \.receiverIVO),
        ("idle_timeout", \.idleTimeout), ("max_frame_size", \.maxFrameSize),
    ]
}

/// A tool's settings flags: `--config` plus one flag per config key, bound to the key table.
public protocol SettingsFlags: ParsableArguments {
    var config: String? { get }
    /// Which property holds which key's flag.
    static var bindings: [(key: String, path: KeyPath<Self, String?> & Sendable)] { get }
}

extension SettingsFlags {
    /// The config file (`--config`, else ./config.json, else defaults) with the flags applied.
    public func resolve() throws -> BenchConfiguration {
        try BenchConfiguration.resolve(path: config, flags: ConfigKey.given(Self.bindings, in: self))
    }

    /// `resolve()` for `run()`: errors are usage errors (exit 64) with one line naming the problem.
    public func configuration() throws -> BenchConfiguration {
        do { return try resolve() } catch let error as ConfigError { throw ValidationError(error.description) }
    }
}

extension ConfigKey {
    /// The table's keys whose flags were given, with their text, in table order.
    static func given<Group>(
        _ bindings: [(key: String, path: KeyPath<Group, String?> & Sendable)], in group: Group
    ) -> [(key: ConfigKey, text: String)] {
        BenchConfiguration.table.compactMap { key in
            guard let binding = bindings.first(where: { $0.key == key.name }), let text = group[keyPath: binding.path] else {
                return nil
            }
            return (key, text)
        }
    }

    /// The `--help` text of this key's flag for `tool`: the table's text, the unit of a bare
    /// number for durations, and the key it overrides.
    func flagHelp(for tool: Tool) -> String {
        var text = help[tool] ?? ""
        if case .duration = kind { text += " A bare number is seconds; units: 500ms, 2s, 1m." }
        return text + " [config: \(name)]"
    }
}

extension BenchConfiguration {
    /// The config file with command-line flags applied and checked.
    public static func resolve(path: String?, flags: [(key: ConfigKey, text: String)]) throws
        -> BenchConfiguration
    {
        var configuration = try resolve(path: path)
        try configuration.apply(flags: flags)
        return configuration
    }
}

extension DurationRule {
    /// A duration flag that is no config key (`--stop-after-seconds 30s`), checked against this rule.
    public func seconds(flag: String, _ text: String) throws -> Double {
        guard let seconds = seconds(from: text) else {
            throw ConfigError.invalidFlag(flag: flag, value: text, expected: expected + ", or with a unit: 500ms, 2s, 1m")
        }
        return seconds
    }
}

extension ArgumentHelp {
    static let configFile = ArgumentHelp(
        "JSON configuration file (default: ./config.json if present, else built-in defaults).")

    /// The help of `key`'s flag, from the key table.
    static func setting(_ key: String, _ tool: ConfigKey.Tool) -> ArgumentHelp {
        let entry = BenchConfiguration.table.first { $0.name == key }
        var help = ArgumentHelp(entry?.flagHelp(for: tool) ?? "[config: \(key)]")
        if case .duration? = entry?.kind { help.valueName = "duration" }
        return help
    }
}
