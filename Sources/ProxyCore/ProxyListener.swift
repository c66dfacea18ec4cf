import AcceptGuard
import CommandLineKit
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PGWire

public enum ProxyProtocol: String, Codable, Sendable, CaseIterable {
    case raw
    case pg
    case vtp
}

/// One listener: where it listens, where it forwards, how it reads the traffic, its toxics.
public struct ProxySpec: Codable, Sendable, Equatable {
    public var name: String
    public var listen: HostPort
    public var upstream: HostPort
    public var `protocol`: ProxyProtocol
    /// JSON-lines log; nil: no log, "-": standard output.
    public var log: String?
    public var enabled: Bool
    public var toxics: [Toxic]
    /// PostgreSQL: startup packets longer than this are refused.
    public var maxStartupLength: Int
    /// PostgreSQL: a client that has not sent its whole startup packet by then is closed.
    public var startupTimeoutNanos: Int64
    /// PostgreSQL: clients still sending their startup packet beyond this many are refused.
    /// The upstream connection is opened only after a complete startup packet, so stalled
    /// clients cost the server nothing; this bounds what they cost the proxy.
    public var maxPendingStartups: Int

    public static let defaultStartupTimeoutNanos: Int64 = 10_000_000_000
    public static let defaultMaxPendingStartups = 256
    static let maximumStartupTimeoutNanos: Int64 = 3_600_000_000_000

    public init(
        name: String, listen: HostPort, upstream: HostPort, protocol: ProxyProtocol, log: String? = nil,
        enabled: Bool = true, toxics: [Toxic] = [], maxStartupLength: Int = PGFraming.defaultMaximumStartupLength,
        startupTimeoutNanos: Int64 = ProxySpec.defaultStartupTimeoutNanos,
        maxPendingStartups: Int = ProxySpec.defaultMaxPendingStartups
    ) {
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.protocol = `protocol`
        self.log = log
        self.enabled = enabled
        self.toxics = toxics
        self.maxStartupLength = maxStartupLength
        self.startupTimeoutNanos = startupTimeoutNanos
        self.maxPendingStartups = maxPendingStartups
    }

    enum CodingKeys: String, CodingKey {
        case name, listen, upstream, `protocol`, log, enabled, toxics
        case maxStartupLength = "max_startup_length"
        case startupTimeout = "startup_timeout"
        case maxPendingStartups = "max_pending_startups"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        listen = try container.decode(HostPort.self, forKey: .listen)
        upstream = try container.decode(HostPort.self, forKey: .upstream)
        name = try container.decodeIfPresent(String.self, forKey: .name) ?? "proxy-\(listen.port)"
        `protocol` = try container.decodeIfPresent(ProxyProtocol.self, forKey: .protocol) ?? .raw
        log = try container.decodeIfPresent(String.self, forKey: .log)
        enabled = try container.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        toxics = try container.decodeIfPresent([Toxic].self, forKey: .toxics) ?? []
        maxStartupLength =
            try container.decodeIfPresent(Int.self, forKey: .maxStartupLength) ?? PGFraming.defaultMaximumStartupLength
        // A duration as on the command line ("10s"), or a number of milliseconds as in toxics.
        if let text = try? container.decodeIfPresent(String.self, forKey: .startupTimeout) {
            startupTimeoutNanos = try Units.parseDuration(text)
        } else if let milliseconds = try container.decodeIfPresent(Double.self, forKey: .startupTimeout) {
            startupTimeoutNanos = try Units.parseDuration("\(milliseconds)ms")
        } else {
            startupTimeoutNanos = Self.defaultStartupTimeoutNanos
        }
        maxPendingStartups =
            try container.decodeIfPresent(Int.self, forKey: .maxPendingStartups) ?? Self.defaultMaxPendingStartups
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(listen, forKey: .listen)
        try container.encode(upstream, forKey: .upstream)
        try container.encode(`protocol`, forKey: .protocol)
        try container.encodeIfPresent(log, forKey: .log)
        try container.encode(enabled, forKey: .enabled)
        try container.encode(toxics, forKey: .toxics)
        try container.encode(maxStartupLength, forKey: .maxStartupLength)
        try container.encode(Double(startupTimeoutNanos) / 1e6, forKey: .startupTimeout)
        try container.encode(maxPendingStartups, forKey: .maxPendingStartups)
    }

    /// Every toxic and limit checked once, before anything runs.
    public func validate() throws(ProxyError) {
        for toxic in toxics { _ = try toxic.validated() }
        if Set(toxics.map(\.name)).count != toxics.count {
            throw .invalidConfig("proxy \"\(name)\" has two toxics with the same name")
        }
        guard startupTimeoutNanos > 0, startupTimeoutNanos <= Self.maximumStartupTimeoutNanos else {
            throw .invalidConfig(
                "proxy \"\(name)\": startup timeout must be more than 0 and at most 1 hour (got \(Double(startupTimeoutNanos) / 1e9) s)")
        }
        guard maxStartupLength >= PGFraming.minimumStartupLength else {
            throw .invalidConfig(
                "proxy \"\(name)\": max startup length must be at least \(PGFraming.minimumStartupLength) bytes (got \(maxStartupLength))")
        }
        guard maxPendingStartups >= 1 else {
            throw .invalidConfig("proxy \"\(name)\": max pending startups must be at least 1 (got \(maxPendingStartups))")
        }
    }
}

/// A listening proxy: accepts clients, gives each its own upstream connection on the same
/// event loop. Toxics and enabled/disabled can change while it runs (from any thread).
public final class ProxyListener: Sendable {
    private struct State {
        var toxics: [Toxic]
        var generation = 0
        var enabled: Bool
        var serverChannel: Channel?
        var boundAddress: HostPort?
        /// Each reached only on its own event loop.
        var connections: [UInt64: NIOLoopBound<ProxyConnection>] = [:]
        var accepted: UInt64 = 0
        var lastUpstreamReport: NIODeadline = .distantPast
        var upstreamFailures: UInt64 = 0
        /// Since the start, for --metrics: failed upstream connects and refused startups.
        var failuresTotal = 0
        /// PostgreSQL clients that have not yet sent a complete startup packet.
        var pendingStartups = 0
        var lastRefusalReport: NIODeadline = .distantPast
        var refusals: UInt64 = 0
    }

    /// NIO reads up to 4 times per readiness event; for request/response traffic the
    /// extra reads only return EAGAIN, a wasted system call per message.
    static let readsPerWakeUp: UInt = UInt(ProcessInfo.processInfo.environment["VTP_PROXY_READS_PER_WAKEUP"].flatMap { UInt($0) } ?? 1)

    private static let nextConnectionID = NIOLockedValueBox<UInt64>(0)

    public let spec: ProxySpec
    let log: LogSink?
    private let group: EventLoopGroup
    private let state: NIOLockedValueBox<State>
    private let warn: @Sendable (String) -> Void
    /// Bytes forwarded, counted by each loop for its own connections (--metrics).
    let traffic: [ObjectIdentifier: NIOLoopBoundBox<ProxyTraffic>]

    public init(
        spec: ProxySpec, group: EventLoopGroup, log: LogSink?,
        warn: @escaping @Sendable (String) -> Void = { _ in }
    ) throws(ProxyError) {
        try spec.validate()
        self.spec = spec
        self.group = group
        self.log = log
        self.warn = warn
        state = NIOLockedValueBox(State(toxics: spec.toxics, enabled: spec.enabled))
        traffic = Dictionary(
            uniqueKeysWithValues: group.makeIterator().map { (ObjectIdentifier($0), .makeBoxSendingValue(ProxyTraffic(), eventLoop: $0)) })
    }

    /// The address actually bound (the port is resolved when 0 was asked for).
    public var boundAddress: HostPort? { state.withLockedValue { $0.boundAddress } }
    public var isEnabled: Bool { state.withLockedValue { $0.enabled } }
    public var activeConnections: Int { state.withLockedValue { $0.connections.count } }
    public var acceptedConnections: UInt64 { state.withLockedValue { $0.accepted } }
    /// Failed upstream connects and refused startups since the start.
    public var failuresTotal: Int { state.withLockedValue { $0.failuresTotal } }
    /// PostgreSQL clients connected that have not yet sent a complete startup packet.
    public var pendingStartups: Int { state.withLockedValue { $0.pendingStartups } }

    /// Binds (when enabled). Throws `cannotListen` with the reason (e.g. address in use).
    public func start() async throws {
        guard isEnabled else { return }
        try await bind()
    }

    private func bind() async throws {
        let address = state.withLockedValue { $0.boundAddress } ?? spec.listen
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.backlog, value: 1024)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                .childChannelOption(ChannelOptions.maxMessagesPerRead, value: Self.readsPerWakeUp)
                .serverChannelInitializer { [spec, warn] channel in
                    channel.eventLoop.makeCompletedFuture {
                        try AcceptGuard.install(on: channel, name: "vtp-proxy: [\(spec.name)]", report: warn)
                    }
                }
                .childChannelInitializer { [self] channel in
                    channel.eventLoop.makeCompletedFuture {
                        let connection = ProxyConnection(id: Self.makeConnectionID(), listener: self, client: channel)
                        self.register(NIOLoopBound(connection, eventLoop: channel.eventLoop), id: connection.id)
                        try channel.pipeline.syncOperations.addHandler(
                            ProxySideHandler(connection: connection, side: .client))
                    }
                }
                .bind(host: address.host, port: address.port).get()
        } catch {
            throw ProxyError.cannotListen(address: address.description, reason: Self.describe(error))
        }
        let port = channel.localAddress?.port ?? address.port
        state.withLockedValue {
            $0.serverChannel = channel
            $0.boundAddress = HostPort(host: address.host, port: port)
        }
    }

    /// "down": stop listening (new connections are refused) and close every open one.
    public func setEnabled(_ enabled: Bool) async throws {
        let (wasEnabled, channel, connections) = state.withLockedValue { state in
            let was = state.enabled
            state.enabled = enabled
            let channel = enabled ? nil : state.serverChannel
            if !enabled { state.serverChannel = nil }
            return (was, channel, enabled ? [] : Array(state.connections.values))
        }
        guard wasEnabled != enabled else { return }
        if enabled {
            try await bind()
        } else {
            try? await channel?.close()
            for connection in connections {
                connection.eventLoop.execute { connection.value.disable() }
            }
        }
    }

    public func stop() async {
        try? await setEnabled(false)
    }

    // MARK: toxics

    func toxicsSnapshot() -> ToxicsSnapshot {
        state.withLockedValue { ToxicsSnapshot(generation: $0.generation, toxics: $0.toxics) }
    }

    public var toxics: [Toxic] { state.withLockedValue { $0.toxics } }

    public func addToxic(_ toxic: Toxic) throws(ProxyError) {
        let toxic = try toxic.validated()
        let added = state.withLockedValue { state -> Bool in
            guard !state.toxics.contains(where: { $0.name == toxic.name }) else { return false }
            state.toxics.append(toxic)
            state.generation += 1
            return true
        }
        if !added { throw .duplicateToxic(proxy: spec.name, toxic: toxic.name) }
    }

    public func updateToxic(named name: String, toxicity: Double?, attributes: [String: Double]?) throws(ProxyError) -> Toxic {
        let result = state.withLockedValue { state -> Result<Toxic, ProxyError> in
            guard let index = state.toxics.firstIndex(where: { $0.name == name }) else {
                return .failure(.unknownToxic(proxy: spec.name, toxic: name))
            }
            var toxic = state.toxics[index]
            if let toxicity { toxic.toxicity = toxicity }
            if let attributes { toxic.attributes.merge(attributes) { $1 } }
            do {
                toxic = try toxic.validated()
            } catch {
                return .failure(error as! ProxyError)
            }
            state.toxics[index] = toxic
            state.generation += 1
            return .success(toxic)
        }
        return try result.get()
    }

    public func removeToxic(named name: String) throws(ProxyError) {
        let removed = state.withLockedValue { state -> Bool in
            guard let index = state.toxics.firstIndex(where: { $0.name == name }) else { return false }
            state.toxics.remove(at: index)
            state.generation += 1
            return true
        }
        if !removed { throw .unknownToxic(proxy: spec.name, toxic: name) }
    }

    public func removeAllToxics() {
        state.withLockedValue {
            $0.toxics = []
            $0.generation += 1
        }
    }

    // MARK: connections

    private static func makeConnectionID() -> UInt64 {
        nextConnectionID.withLockedValue {
            $0 += 1
            return $0
        }
    }

    private func register(_ connection: NIOLoopBound<ProxyConnection>, id: UInt64) {
        state.withLockedValue {
            $0.connections[id] = connection
            $0.accepted += 1
        }
    }

    func unregister(_ id: UInt64) {
        _ = state.withLockedValue { $0.connections.removeValue(forKey: id) }
    }

    /// Takes a slot for a client that is about to send its startup packet; false when
    /// `maxPendingStartups` are taken.
    func beginStartup() -> Bool {
        state.withLockedValue { state in
            guard state.pendingStartups < spec.maxPendingStartups else { return false }
            state.pendingStartups += 1
            return true
        }
    }

    func endStartup() {
        state.withLockedValue { $0.pendingStartups = max(0, $0.pendingStartups - 1) }
    }

    /// Like upstream failures, at most one warning per second.
    func reportStartupRefusal() {
        let (shouldWarn, suppressed) = state.withLockedValue { state -> (Bool, UInt64) in
            state.refusals += 1
            state.failuresTotal += 1
            let now = NIODeadline.now()
            guard now - state.lastRefusalReport > .seconds(1) else { return (false, 0) }
            state.lastRefusalReport = now
            defer { state.refusals = 0 }
            return (true, state.refusals - 1)
        }
        guard shouldWarn else { return }
        var message =
            "vtp-proxy: [\(spec.name)] refusing a client: \(spec.maxPendingStartups) clients have not finished"
            + " their startup packet (--max-pending-startups)"
        if suppressed > 0 { message += " (\(suppressed) more since the last report)" }
        warn(message)
    }

    /// At most one warning per second, so a dead upstream under load does not flood stderr.
    func reportUpstreamFailure(upstream: String, reason: String) {
        let (shouldWarn, suppressed) = state.withLockedValue { state -> (Bool, UInt64) in
            state.upstreamFailures += 1
            state.failuresTotal += 1
            let now = NIODeadline.now()
            guard now - state.lastUpstreamReport > .seconds(1) else { return (false, 0) }
            state.lastUpstreamReport = now
            defer { state.upstreamFailures = 0 }
            return (true, state.upstreamFailures - 1)
        }
        guard shouldWarn else { return }
        var message = "vtp-proxy: [\(spec.name)] \(ProxyError.upstreamUnreachable(address: upstream, reason: reason))"
        if suppressed > 0 { message += " (\(suppressed) more since the last report)" }
        warn(message)
    }

    static func describe(_ error: Error) -> String {
        if let io = error as? IOError {
            switch io.errnoCode {
            case ECONNREFUSED: return "connection refused"
            case EADDRINUSE: return "address already in use"
            case EACCES: return "permission denied"
            case EADDRNOTAVAIL: return "address not available on this host"
            case ECONNRESET: return "connection reset by peer"
            case EPIPE: return "broken pipe"
            case ETIMEDOUT: return "timed out"
            case EHOSTUNREACH, ENETUNREACH: return "no route to host"
            default: return String(cString: strerror(io.errnoCode))
            }
        }
        if let connect = error as? NIOConnectionError {
            if let first = connect.connectionErrors.first { return describe(first.error) }
            if connect.dnsAAAAError != nil || connect.dnsAError != nil { return "host name \(connect.host) did not resolve" }
            return "cannot connect to \(connect.host):\(connect.port)"
        }
        if case ChannelError.connectTimeout? = error as? ChannelError { return "connect timed out" }
        if error is SocketAddressError { return "host name did not resolve" }
        return UserMessage.describe(error)
    }
}
