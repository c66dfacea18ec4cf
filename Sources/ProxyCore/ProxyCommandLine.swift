import CommandLineKit
import Foundation
import PGWire

/// Which directions the latency, jitter, bandwidth and stall flags apply to.
public enum FlagDirections: String, Sendable, CaseIterable {
    case upstream, downstream, both

    var streams: [StreamDirection] {
        switch self {
        case .upstream: return [.upstream]
        case .downstream: return [.downstream]
        case .both: return [.upstream, .downstream]
        }
    }
}

/// vtp-proxy's command line as given, before any check: the executable parses it into this,
/// `plan()` turns it into listeners and toxics (tested in ProxyTests without a process).
public struct ProxyCommandLine: Sendable {
    public var listen: String?
    public var upstream: String?
    public var `protocol`: ProxyProtocol = .raw
    public var log: String?
    public var name = "proxy"
    public var latency: String?
    public var jitter: String?
    public var bandwidth: String?
    public var direction: FlagDirections = .both
    public var toxicity: Double = 1
    public var connectDelay: String?
    public var stallProbability: Double?
    public var stallDuration = "200ms"
    /// Toxics as JSON, one per `--toxic`.
    public var toxics: [String] = []
    public var maxStartupLength = PGFraming.defaultMaximumStartupLength
    public var startupTimeout = "10s"
    public var maxPendingStartups = ProxySpec.defaultMaxPendingStartups
    public var control: String?
    /// `--control-token` / `--control-token-file`: required when the control endpoint is not on loopback.
    public var controlToken: String?
    public var controlTokenFile: String?
    public var config: String?
    public var threads: Int

    public init(threads: Int) { self.threads = threads }

    /// What to run: every listener (the config file's, then the flags' one) and the control address.
    public struct Plan: Sendable {
        public var specs: [ProxySpec]
        public var control: HostPort?
        public var controlToken: ControlToken?
        public var threads: Int
    }

    /// Every value checked, each error naming its flag (or the config file and key).
    public func plan() throws(ProxyError) -> Plan {
        guard config != nil || listen != nil || upstream != nil else {
            throw .usage("give --listen and --upstream (or --config FILE)")
        }
        guard (listen == nil) == (upstream == nil) else {
            throw .usage("--listen and --upstream go together (\(listen == nil ? "--listen" : "--upstream") is missing)")
        }
        guard threads >= 1 else { throw .invalidFlag(flag: "--threads", reason: "must be at least 1 (got \(threads))") }
        var plan = Plan(specs: [], control: nil, controlToken: nil, threads: threads)
        if let config {
            let file = try ProxyFileConfig.load(path: config)
            plan.specs = file.proxies
            plan.control = file.control
        }
        if let spec = try listenerSpec() { plan.specs.append(spec) }
        if let control { plan.control = try Self.flag("--control") { () throws(ProxyError) in try HostPort(parsing: control) } }
        plan.controlToken = try controlTokenValue(control: plan.control)
        // Log files are checked before anything listens, so a typo in a path costs no run.
        for spec in plan.specs {
            guard let path = spec.log, path != "-" else { continue }
            let flag = spec.name == name && listen != nil ? "--log" : "proxy \"\(spec.name)\" log"
            do {
                try OutputPaths.check(path, flag: flag)
            } catch {
                throw .invalidFlag(flag: flag, reason: "\(path): \(error.reason)")
            }
        }
        return plan
    }

    /// The control token from `--control-token` or `--control-token-file`. A control endpoint
    /// other hosts may reach changes faults for everyone who passes, so one there needs it.
    func controlTokenValue(control: HostPort?) throws(ProxyError) -> ControlToken? {
        if controlToken != nil && controlTokenFile != nil {
            throw .usage("give --control-token or --control-token-file, not both")
        }
        var token: ControlToken?
        if let controlToken { token = try ControlToken(controlToken) }
        if let controlTokenFile { token = try ControlToken.load(path: controlTokenFile) }
        guard let control else {
            if token != nil { throw .usage("--control-token needs a control endpoint (--control HOST:PORT, or \"control\" in --config)") }
            return nil
        }
        if token == nil && !control.isLoopback {
            throw .invalidFlag(
                flag: "--control",
                reason: "\(control) may be reachable from other hosts: give --control-token TOKEN or --control-token-file PATH"
                    + " (requests then need \"Authorization: Bearer TOKEN\"), or listen on 127.0.0.1")
        }
        return token
    }

    /// The listener given by --listen/--upstream and the toxic flags, if any.
    public func listenerSpec() throws(ProxyError) -> ProxySpec? {
        guard let listen, let upstream else { return nil }
        guard (0...1).contains(toxicity) else {
            throw .invalidFlag(flag: "--toxicity", reason: "must be a probability in 0…1 (got \(toxicity))")
        }
        if let stallProbability, !(0...1).contains(stallProbability) {
            throw .invalidFlag(flag: "--stall-probability", reason: "must be a probability in 0…1 (got \(stallProbability))")
        }
        guard maxPendingStartups >= 1 else {
            throw .invalidFlag(flag: "--max-pending-startups", reason: "must be at least 1 (got \(maxPendingStartups))")
        }
        guard maxStartupLength >= PGFraming.minimumStartupLength else {
            throw .invalidFlag(
                flag: "--max-startup-length",
                reason: "must be at least \(PGFraming.minimumStartupLength) bytes (got \(maxStartupLength))")
        }
        let startupTimeoutNanos = try Self.flag("--startup-timeout") { () throws(ProxyError) in
            try Units.parseDuration(startupTimeout)
        }
        guard startupTimeoutNanos > 0, startupTimeoutNanos <= ProxySpec.maximumStartupTimeoutNanos else {
            throw .invalidFlag(flag: "--startup-timeout", reason: "must be more than 0 and at most 1 hour (got \(startupTimeout))")
        }
        let spec = ProxySpec(
            name: name,
            listen: try Self.flag("--listen") { () throws(ProxyError) in try HostPort(parsing: listen) },
            upstream: try Self.flag("--upstream") { () throws(ProxyError) in try HostPort(parsing: upstream) },
            protocol: `protocol`, log: log, toxics: try flagToxics(), maxStartupLength: maxStartupLength,
            startupTimeoutNanos: startupTimeoutNanos, maxPendingStartups: maxPendingStartups)
        try spec.validate()
        return spec
    }

    /// The toxics the flags describe, in flag order, each validated.
    func flagToxics() throws(ProxyError) -> [Toxic] {
        var toxics: [Toxic] = []
        let latencyMs = try Self.milliseconds("--latency", latency ?? "0")
        let jitterMs = try Self.milliseconds("--jitter", jitter ?? "0")
        let stallMs = try Self.milliseconds("--stall-duration", stallDuration)
        let rate = try bandwidth.map { text throws(ProxyError) in
            try Self.flag("--bandwidth") { () throws(ProxyError) in try Units.parseBandwidth(text) / 1000 }
        }
        for stream in direction.streams {
            if latency != nil || jitter != nil {
                toxics.append(
                    try Self.checked(
                        Toxic(
                            name: "latency_\(stream.rawValue)", type: .latency, stream: stream, toxicity: toxicity,
                            attributes: ["latency": latencyMs, "jitter": jitterMs]),
                        flags: "--latency/--jitter"))
            }
            if let rate {
                toxics.append(
                    try Self.checked(
                        Toxic(
                            name: "bandwidth_\(stream.rawValue)", type: .bandwidth, stream: stream, toxicity: toxicity,
                            attributes: ["rate": rate]),
                        flags: "--bandwidth"))
            }
            if let stallProbability {
                toxics.append(
                    try Self.checked(
                        Toxic(
                            name: "stall_\(stream.rawValue)", type: .stall, stream: stream,
                            attributes: ["probability": stallProbability, "duration": stallMs]),
                        flags: "--stall-probability/--stall-duration"))
            }
        }
        if let connectDelay {
            let attributes = connectDelay == "rtt" ? [:] : ["delay": try Self.milliseconds("--connect-delay", connectDelay)]
            toxics.append(
                try Self.checked(
                    Toxic(name: "connect_delay", type: .connectDelay, stream: .upstream, toxicity: toxicity, attributes: attributes),
                    flags: "--connect-delay"))
        }
        for text in self.toxics {
            let decoded: Toxic
            do {
                decoded = try JSONDecoder().decode(Toxic.self, from: Data(text.utf8))
            } catch {
                throw .invalidFlag(flag: "--toxic \(text)", reason: "not a toxic: \(UserMessage.describe(error))")
            }
            toxics.append(try Self.checked(decoded, flags: "--toxic \(text)"))
        }
        return toxics
    }

    /// A duration flag in milliseconds (a bare number is milliseconds).
    private static func milliseconds(_ flag: String, _ text: String) throws(ProxyError) -> Double {
        Double(try Self.flag(flag) { () throws(ProxyError) in try Units.parseDuration(text) }) / 1e6
    }

    /// Checks a toxic built from flags now, so a value out of range is a usage error that
    /// names the flag rather than a failure at start-up.
    private static func checked(_ toxic: Toxic, flags: String) throws(ProxyError) -> Toxic {
        try flag(flags) { () throws(ProxyError) in try toxic.validated() }
    }

    /// Runs `body`, naming `flag` in its error.
    private static func flag<T>(_ flag: String, _ body: () throws(ProxyError) -> T) throws(ProxyError) -> T {
        do {
            return try body()
        } catch {
            throw .invalidFlag(flag: flag, reason: error.description)
        }
    }
}

extension ProxyRuntime {
    /// What vtp-proxy prints once everything listens: one line per listener, then the control
    /// endpoint's address.
    public func readyLines(control address: HostPort?) -> [String] {
        var lines = listeners.map { listener in
            let toxics = listener.toxics.map(\.name).joined(separator: ",")
            return "vtp-proxy: [\(listener.spec.name)] listening on \(listener.boundAddress ?? listener.spec.listen)"
                + " -> \(listener.spec.upstream) (\(listener.spec.protocol.rawValue))"
                + (toxics.isEmpty ? "" : " toxics: \(toxics)")
                + (listener.spec.log.map { " log: \($0)" } ?? "")
        }
        if let control, let address {
            lines.append(
                "vtp-proxy: control on http://\(HostPort(host: address.host, port: control.boundPort ?? address.port))/proxies"
                    + (control.tokenRequired ? " (token required)" : ""))
        }
        return lines
    }

    /// At shutdown, per listener: connections accepted, and the log lines written.
    public func summaryLines() -> [String] {
        var lines = listeners.map { listener in
            "vtp-proxy: [\(listener.spec.name)] \(Human.grouped(Int64(clamping: listener.acceptedConnections))) connections accepted"
        }
        if !logs.isEmpty {
            let lost = logs.reduce(0) { $0 + $1.lostLineCount }
            lines.append(
                "vtp-proxy: \(Human.grouped(Int64(clamping: logLineCount - lost))) log lines written"
                    + (lost > 0 ? ", \(Human.grouped(Int64(clamping: lost))) lost (the log could not be written)" : ""))
        }
        return lines
    }
}
