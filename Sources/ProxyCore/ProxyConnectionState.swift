import CommandLineKit
import NIOCore
import NetworkEmulation
import PGWire

public enum ProxySide: Sendable, Hashable {
    case client
    case server

    /// The direction of the bytes this side sends.
    var inbound: StreamDirection { self == .client ? .upstream : .downstream }
    /// The direction of the bytes written to this side.
    var outbound: StreamDirection { self == .client ? .downstream : .upstream }
    var other: ProxySide { self == .client ? .server : .client }
    var name: String { self == .client ? "client" : "server" }
}

extension StreamDirection {
    /// Where this direction's bytes come from and where they go.
    var source: ProxySide { self == .upstream ? .client : .server }
    var target: ProxySide { self == .upstream ? .server : .client }
}

/// Everything one proxied connection decides: the PostgreSQL startup phase (slot, timeout,
/// FATAL replies and the linger after them), the upstream connect, the toxics' plan, for each
/// direction a FIFO of chunks with release times (water marks, half-close, limit_data), fault
/// timers and tear-down. A pure value type: every event returns the actions to perform, so it
/// is tested without sockets (`ProxyConnectionStateTests`). Times are monotonic nanoseconds.
///
/// Owned by `ProxyConnection`, which feeds it its channels' events on their event loop and
/// performs the actions; nothing else touches it.
struct ProxyConnectionState {
    /// Reading stops while more than this is queued in the proxy for one direction.
    static let highWater = 1 << 20
    static let lowWater = 256 << 10

    struct Settings: Sendable {
        var connectionID: UInt64
        var proxyName: String
        var upstream: String
        var `protocol`: ProxyProtocol
        var maxStartupLength: Int
        var startupTimeoutNanos: Int64
        var maxPendingStartups: Int
        /// Over the pending-startup cap, a client gets this long to send its startup packet
        /// (answered with FATAL 53300, as PostgreSQL answers when full); then it is closed.
        var refusalGraceNanos: Int64 = 2_000_000_000
        /// After a FATAL reply the client's side is half-closed and kept this long before the
        /// close: its startup packet may still be in flight, and a closed socket answers it
        /// with RST, which can destroy the unread error in the client's receive buffer.
        var lingerNanos: Int64 = 2_000_000_000

        init(connectionID: UInt64, spec: ProxySpec) {
            self.connectionID = connectionID
            proxyName = spec.name
            upstream = spec.upstream.description
            self.protocol = spec.protocol
            maxStartupLength = spec.maxStartupLength
            startupTimeoutNanos = spec.startupTimeoutNanos
            maxPendingStartups = spec.maxPendingStartups
        }
    }

    enum Timer: Hashable, Sendable {
        /// The head of this direction's queue is due.
        case release(StreamDirection)
        /// The connect delay has passed.
        case connect
        /// The startup timeout (or, over the cap, the refusal grace) has passed.
        case startup
        /// The linger after a FATAL reply is over.
        case linger
        /// reset_peer toxic.
        case reset(StreamDirection)
        /// timeout toxic with a close time.
        case blackHoleClose(StreamDirection)
    }

    enum Action {
        case write(ProxySide, ByteBuffer)
        case flush(ProxySide)
        case writeAndFlush(ProxySide, ByteBuffer)
        /// Half-close that side's output once every earlier write has reached the socket (if
        /// its input is already shut NIO escalates an output close to a full close, which would
        /// drop them); then report `outputClosed(_:succeeded:)`.
        case closeOutput(ProxySide)
        /// Write and flush a FATAL ErrorResponse to the client, half-close its output, then
        /// report `fatalReplySent(nowNanos:)`.
        case sendFatal(ByteBuffer)
        /// Let that side read again.
        case read(ProxySide)
        /// Open the upstream connection; report `upstreamConnected` or `upstreamFailed`.
        case connectUpstream
        /// Call `timerFired` then, replacing that timer if it is armed.
        case schedule(Timer, atNanos: Int64)
        case cancel(Timer)
        case log(LogRecord)
        /// Ask the listener for a pending-startup slot; report `startupSlotAnswered(granted:nowNanos:)`.
        case requestStartupSlot
        case releaseStartupSlot
        /// The listener's rate-limited warnings.
        case warnUpstreamFailure(reason: String)
        case warnStartupRefusal
        /// Cancel every timer, close both channels (with RST when `reset`), unregister.
        case closeConnection(reset: Bool)
        /// An upstream channel that connected after the connection was closed.
        case closeLateUpstream
    }

    private enum Payload {
        case data(ByteBuffer)
        /// End of stream: half-close the target's output.
        case end
        /// limit_data reached: close everything.
        case closeAll
    }

    /// One direction: its toxics' plan, scheduler and queue.
    private struct Path {
        var plan = DirectionPlan()
        var scheduler = ReleaseScheduler(profile: LinkProfile())
        var queue = CircularBuffer<(release: Int64, payload: Payload)>()
        var queuedBytes = 0
        var timerDeadline: Int64 = .max
        var acceptedBytes = 0
        var forwardedBytes = 0
        var droppedBytes = 0
        var needsFlush = false
        var inputEnded = false
        var outputClosed = false
        var limitHit = false

        mutating func setPlan(_ plan: DirectionPlan) {
            self.plan = plan
            scheduler.profile = plan.linkProfile
        }
    }

    let settings: Settings
    private var plan = ConnectionPlan()
    private var planGeneration = -1
    private var upstreamPath = Path()
    private var downstreamPath = Path()
    private var upstreamInspector: any StreamInspector
    private var downstreamInspector: any StreamInspector
    private var writable: [ProxySide: Bool] = [.client: true, .server: true]
    private var heldRead: Set<ProxySide> = []
    private var armed: Set<Timer> = []
    private var startedAt: Int64 = 0
    private var serverConnected = false
    private(set) var closed = false
    /// PostgreSQL: the upstream connection is opened only once the client's startup packet is
    /// complete, so clients that stall in their startup cannot use up the server's slots.
    private var awaitingStartup: Bool
    private var holdsStartupSlot = false
    private var refusedForCapacity = false
    /// Why a FATAL reply went out; the client's input is ignored from then on.
    private var rejection: String?

    init(settings: Settings) {
        self.settings = settings
        awaitingStartup = settings.protocol == .pg
        switch settings.protocol {
        case .raw:
            upstreamInspector = PassThroughInspector()
            downstreamInspector = PassThroughInspector()
        case .pg:
            upstreamInspector = PGClientInspector(maximumStartupLength: settings.maxStartupLength)
            downstreamInspector = PGServerInspector()
        case .vtp:
            upstreamInspector = VTPInspector(direction: .upstream)
            downstreamInspector = VTPInspector(direction: .downstream)
        }
    }

    /// Bytes forwarded in each direction and dropped by toxics, so far.
    var bytes: (up: Int, down: Int, dropped: Int) {
        (upstreamPath.forwardedBytes, downstreamPath.forwardedBytes, upstreamPath.droppedBytes + downstreamPath.droppedBytes)
    }

    // MARK: set-up

    mutating func clientActive(
        nowNanos: Int64, clientAddress: String?, toxics: ToxicsSnapshot, using random: inout some RandomNumberGenerator
    ) -> [Action] {
        startedAt = nowNanos
        var actions = refreshPlan(toxics, using: &random)
        var record = LogRecord(event: "connect", connection: settings.connectionID)
        record.add("proxy", settings.proxyName)
        record.add("client", clientAddress)
        record.add("upstream", settings.upstream)
        actions.append(.log(record))
        actions.append(awaitingStartup ? .requestStartupSlot : connectWhenDue(nowNanos: nowNanos))
        return actions
    }

    mutating func startupSlotAnswered(granted: Bool, nowNanos: Int64) -> [Action] {
        guard !closed, awaitingStartup else { return [] }
        if granted {
            holdsStartupSlot = true
            return [arm(.startup, at: Saturating.add(nowNanos, settings.startupTimeoutNanos))]
        }
        refusedForCapacity = true
        return [.warnStartupRefusal, arm(.startup, at: Saturating.add(nowNanos, settings.refusalGraceNanos))]
    }

    /// Connects once the connect delay, counted from the client's arrival, has passed.
    private mutating func connectWhenDue(nowNanos: Int64) -> Action {
        let deadline = Saturating.add(startedAt, plan.connectDelayNanos)
        if plan.connectDelayNanos > 0, deadline > nowNanos { return arm(.connect, at: deadline) }
        return .connectUpstream
    }

    mutating func upstreamConnected(nowNanos: Int64) -> [Action] {
        guard !closed else { return [.closeLateUpstream] }
        serverConnected = true
        return release(.upstream, nowNanos: nowNanos)
    }

    mutating func upstreamFailed(reason: String, nowNanos: Int64) -> [Action] {
        var record = LogRecord(event: "upstream_error", connection: settings.connectionID)
        record.add("upstream", settings.upstream)
        record.add("error", reason)
        var actions: [Action] = [.warnUpstreamFailure(reason: reason), .log(record)]
        if settings.protocol == .pg {
            actions += reject(
                sqlState: "08006", message: "vtp-proxy: upstream \(settings.upstream) unreachable: \(reason)",
                reason: "upstream unreachable")
        } else {
            actions += teardown(reason: "upstream unreachable")
        }
        return actions
    }

    /// Tells a PostgreSQL client why, in its own protocol (a FATAL ErrorResponse), instead of
    /// a bare close; the close follows after the linger.
    private mutating func reject(sqlState: String, message: String, reason: String) -> [Action] {
        guard !closed, rejection == nil else { return [] }
        rejection = reason
        let fields: [UInt8: String] = [
            UInt8(ascii: "S"): "FATAL", UInt8(ascii: "V"): "FATAL", UInt8(ascii: "C"): sqlState,
            UInt8(ascii: "M"): message,
        ]
        return releaseStartupSlot() + [.sendFatal(PGEncoding.bytes(.errorResponse(PGErrorFields(fields: fields))))]
    }

    mutating func fatalReplySent(nowNanos: Int64) -> [Action] {
        guard !closed else { return [] }
        return [arm(.linger, at: Saturating.add(nowNanos, settings.lingerNanos))]
    }

    private mutating func releaseStartupSlot() -> [Action] {
        var actions = disarm(.startup)
        if holdsStartupSlot {
            holdsStartupSlot = false
            actions.append(.releaseStartupSlot)
        }
        return actions
    }

    /// Re-reads the toxics when they changed and rolls their toxicity again.
    private mutating func refreshPlan(_ toxics: ToxicsSnapshot, using random: inout some RandomNumberGenerator) -> [Action] {
        guard toxics.generation != planGeneration else { return [] }
        planGeneration = toxics.generation
        plan = ConnectionPlan.make(from: toxics.toxics, using: &random)
        upstreamPath.setPlan(plan.upstream)
        downstreamPath.setPlan(plan.downstream)
        // The client could not have sent before its handshake completed: hold early bytes.
        upstreamPath.scheduler.holdUntilNanos = Saturating.add(startedAt, plan.connectDelayNanos)
        var actions: [Action] = []
        for direction in StreamDirection.allCases {
            actions += disarm(.reset(direction)) + disarm(.blackHoleClose(direction))
            let directionPlan = plan[direction]
            if let reset = directionPlan.resetNanos {
                actions.append(arm(.reset(direction), at: Saturating.add(startedAt, reset)))
            }
            if let close = directionPlan.blackHoleCloseNanos, close > 0 {
                actions.append(arm(.blackHoleClose(direction), at: Saturating.add(startedAt, close)))
            }
        }
        return actions
    }

    // MARK: events from the channels

    mutating func received(
        _ bytes: ByteBuffer, from side: ProxySide, nowNanos: Int64, toxics: ToxicsSnapshot,
        using random: inout some RandomNumberGenerator
    ) -> [Action] {
        guard !closed, rejection == nil else { return [] }
        var actions = refreshPlan(toxics, using: &random)
        let direction = side.inbound
        let inspection =
            direction == .upstream
            ? upstreamInspector.inspect(bytes, connection: settings.connectionID)
            : downstreamInspector.inspect(bytes, connection: settings.connectionID)
        actions += inspection.records.map { .log($0) }
        if let reply = inspection.reply { actions.append(.writeAndFlush(side, reply)) }
        if let failure = inspection.failure {
            var record = LogRecord(event: "protocol_error", connection: settings.connectionID)
            record.add("stream", direction.rawValue)
            record.add("error", failure)
            return actions + [.log(record)] + teardown(reason: "protocol error")
        }
        if inspection.startupComplete, awaitingStartup {
            guard !refusedForCapacity else {
                return actions
                    + reject(
                        sqlState: "53300",
                        message: "vtp-proxy: too many clients (\(settings.maxPendingStartups)) have not finished their"
                            + " startup packet; try again later",
                        reason: "too many pending startups")
            }
            // The startup packet (or CancelRequest) is complete: connect upstream now.
            awaitingStartup = false
            actions += releaseStartupSlot()
            actions.append(connectWhenDue(nowNanos: nowNanos))
        }
        if let forward = inspection.forward, forward.readableBytes > 0 {
            actions += enqueue(forward, direction, nowNanos: nowNanos, using: &random)
        }
        return actions
    }

    private mutating func enqueue(
        _ bytes: ByteBuffer, _ direction: StreamDirection, nowNanos: Int64, using random: inout some RandomNumberGenerator
    ) -> [Action] {
        let targetConnected = isConnected(direction.target)
        switch Self.accept(bytes, into: &self[direction], targetConnected: targetConnected, nowNanos: nowNanos, using: &random) {
        case .dropped: return []
        case .passOn(let bytes): return [.write(direction.target, bytes)]
        case .queued: return release(direction, nowNanos: nowNanos)
        }
    }

    private enum Accepted {
        case dropped
        /// The fast path: no toxic, nothing ahead of it.
        case passOn(ByteBuffer)
        case queued
    }

    private static func accept(
        _ bytes: ByteBuffer, into path: inout Path, targetConnected: Bool, nowNanos: Int64,
        using random: inout some RandomNumberGenerator
    ) -> Accepted {
        guard path.plan.blackHoleCloseNanos == nil else {
            path.droppedBytes += bytes.readableBytes
            return .dropped
        }
        var bytes = bytes
        if let limit = path.plan.limitBytes {
            let remaining = limit - path.acceptedBytes
            if remaining <= 0 {
                path.droppedBytes += bytes.readableBytes
                return .dropped
            }
            if bytes.readableBytes >= remaining {
                bytes = bytes.getSlice(at: bytes.readerIndex, length: remaining) ?? bytes
                path.limitHit = true
            }
        }
        path.acceptedBytes += bytes.readableBytes
        let transparent = path.plan.isTransparent
        if transparent, path.queue.isEmpty, !path.limitHit, targetConnected {
            path.forwardedBytes += bytes.readableBytes
            path.needsFlush = true
            return .passOn(bytes)
        }
        path.queuedBytes += bytes.readableBytes
        if transparent {
            path.queue.append((max(nowNanos, path.scheduler.lastReleaseNanos), .data(bytes)))
        } else {
            for slice in path.scheduler.schedule(length: bytes.readableBytes, arrivalNanos: nowNanos, using: &random) {
                guard let piece = bytes.readSlice(length: slice.length) else { break }
                path.queue.append((slice.releaseNanos, .data(piece)))
            }
        }
        if path.limitHit {
            path.queue.append((path.scheduler.scheduleEnd(arrivalNanos: nowNanos), .closeAll))
        }
        return .queued
    }

    mutating func readComplete(_ side: ProxySide) -> [Action] {
        let direction = side.inbound
        guard self[direction].needsFlush else { return [] }
        self[direction].needsFlush = false
        return isConnected(direction.target) ? [.flush(direction.target)] : []
    }

    /// The side's peer sent its FIN (its input ended).
    mutating func inputClosed(_ side: ProxySide, nowNanos: Int64) -> [Action] {
        guard !closed else { return [] }
        if let ended = endBeforeUpstream(side) { return ended }
        let direction = side.inbound
        guard !self[direction].inputEnded else { return [] }
        self[direction].inputEnded = true
        var actions = readComplete(side)
        if self[direction].plan.blackHoleCloseNanos != nil { return actions }  // a black hole swallows the FIN too
        let release = self[direction].scheduler.scheduleEnd(arrivalNanos: nowNanos)
        self[direction].queue.append((release, .end))
        actions += self.release(direction, nowNanos: nowNanos)
        return actions
    }

    /// A client that stops before any upstream connection: nothing was or will be forwarded, no
    /// upstream to finish, and it cannot complete its startup packet any more.
    private mutating func endBeforeUpstream(_ side: ProxySide) -> [Action]? {
        guard side == .client, awaitingStartup || rejection != nil, !serverConnected else { return nil }
        return teardown(reason: rejection ?? "client closed before completing its startup packet")
    }

    mutating func writabilityChanged(_ side: ProxySide, isWritable: Bool) -> [Action] {
        writable[side] = isWritable
        // `side` can take more: let the opposite side read again.
        return isWritable ? resumeRead(side.other) : []
    }

    /// The side's channel closed. Failures (resets, write errors) arrive through `failed` and
    /// tear down before this; here the peer closed cleanly (NIO closes a channel fully when its
    /// FIN arrives after our output was shut, sometimes without an input-closed event). Bytes
    /// and the FIN it sent may still be queued (latency, slow_close) for the other side:
    /// deliver them first; nothing more can be delivered to it.
    mutating func inactive(_ side: ProxySide, nowNanos: Int64) -> [Action] {
        guard !closed else { return [] }
        if let ended = endBeforeUpstream(side) { return ended }
        let fromClosedSide = side.inbound
        var actions: [Action] = []
        if !self[fromClosedSide].inputEnded { actions += inputClosed(side, nowNanos: nowNanos) }
        let towardsClosedSide = side.outbound
        self[towardsClosedSide].queue.removeAll()
        self[towardsClosedSide].queuedBytes = 0
        self[towardsClosedSide].outputClosed = true
        let from = self[fromClosedSide]
        if from.outputClosed || from.queue.isEmpty && from.plan.blackHoleCloseNanos != nil {
            actions += teardown(reason: nil)
        }
        return actions
    }

    mutating func failed(_ side: ProxySide, description: String) -> [Action] {
        guard !closed else { return [] }
        var record = LogRecord(event: "socket_error", connection: settings.connectionID)
        record.add("side", side.name)
        record.add("error", description)
        return [.log(record)] + teardown(reason: "\(side.name) error")
    }

    /// The output close asked for by `.closeOutput(side)` finished.
    mutating func outputClosed(_ side: ProxySide, succeeded: Bool) -> [Action] {
        self[side.outbound].outputClosed = true
        if !succeeded { return teardown(reason: "half-close failed") }
        return upstreamPath.outputClosed && downstreamPath.outputClosed ? teardown(reason: nil) : []
    }

    /// Back-pressure: `side` may read only while its partner keeps up; otherwise the read is
    /// held until a `.read(side)` action.
    mutating func readRequested(_ side: ProxySide) -> Bool {
        if mayRead(side) { return true }
        heldRead.insert(side)
        return false
    }

    private func mayRead(_ side: ProxySide) -> Bool {
        let direction = side.inbound
        guard self[direction].queuedBytes < Self.highWater else { return false }
        return !isConnected(direction.target) || writable[direction.target] ?? true
    }

    private mutating func resumeRead(_ side: ProxySide) -> [Action] {
        guard heldRead.contains(side), !closed, mayRead(side) else { return [] }
        heldRead.remove(side)
        return [.read(side)]
    }

    mutating func timerFired(_ timer: Timer, nowNanos: Int64) -> [Action] {
        // A timer cancelled while its run was already due may still fire once: ignore it.
        guard armed.remove(timer) != nil, !closed else { return [] }
        switch timer {
        case .release(let direction):
            self[direction].timerDeadline = .max
            return release(direction, nowNanos: nowNanos)
        case .connect:
            return [.connectUpstream]
        case .startup:
            if refusedForCapacity { return teardown(reason: "too many pending startups") }
            guard awaitingStartup else { return [] }
            let timeout = Human.duration(seconds: Double(settings.startupTimeoutNanos) / 1e9)
            return reject(
                sqlState: "08P01", message: "vtp-proxy: incomplete startup packet after \(timeout) (--startup-timeout)",
                reason: "startup timeout")
        case .linger:
            return teardown(reason: rejection)
        case .reset:
            return teardown(reason: "reset_peer toxic", reset: true)
        case .blackHoleClose:
            return teardown(reason: "timeout toxic")
        }
    }

    /// The listener was taken down.
    mutating func disable() -> [Action] { teardown(reason: "proxy disabled") }

    // MARK: release

    /// Passes on every queued item whose time has come; arms the timer for the next one.
    private mutating func release(_ direction: StreamDirection, nowNanos: Int64) -> [Action] {
        let target = direction.target
        guard !closed, isConnected(target) else { return [] }
        var actions: [Action] = []
        var wrote = false
        while let head = self[direction].queue.first, head.release <= nowNanos {
            self[direction].queue.removeFirst()
            switch head.payload {
            case .data(let bytes):
                self[direction].queuedBytes -= bytes.readableBytes
                self[direction].forwardedBytes += bytes.readableBytes
                actions.append(.write(target, bytes))
                wrote = true
            case .end:
                if wrote { actions.append(.flush(target)) }
                wrote = false
                actions.append(.closeOutput(target))
            case .closeAll:
                if wrote { actions.append(.flush(target)) }
                return actions + teardown(reason: "limit_data reached")
            }
        }
        if wrote { actions.append(.flush(target)) }
        if let next = self[direction].queue.first {
            if next.release != self[direction].timerDeadline {
                self[direction].timerDeadline = next.release
                actions.append(arm(.release(direction), at: next.release))
            }
        } else {
            self[direction].timerDeadline = .max
            actions += disarm(.release(direction))
        }
        if self[direction].queuedBytes < Self.lowWater { actions += resumeRead(direction.source) }
        return actions
    }

    // MARK: tear-down

    /// Closes both sides (if either fails, both go). Idempotent.
    private mutating func teardown(reason: String?, reset: Bool = false) -> [Action] {
        guard !closed else { return [] }
        closed = true
        armed = []
        var record = LogRecord(event: "close", connection: settings.connectionID)
        let (up, down, dropped) = bytes
        record.add("bytes_up", up)
        record.add("bytes_down", down)
        if dropped > 0 { record.add("bytes_dropped", dropped) }
        if let reason { record.add("reason", reason) }
        var actions: [Action] = []
        if holdsStartupSlot {
            holdsStartupSlot = false
            actions.append(.releaseStartupSlot)
        }
        return actions + [.closeConnection(reset: reset), .log(record)]
    }

    // MARK: helpers

    private func isConnected(_ side: ProxySide) -> Bool { side == .client || serverConnected }

    private mutating func arm(_ timer: Timer, at deadline: Int64) -> Action {
        armed.insert(timer)
        return .schedule(timer, atNanos: deadline)
    }

    private mutating func disarm(_ timer: Timer) -> [Action] {
        armed.remove(timer) == nil ? [] : [.cancel(timer)]
    }

    /// In place (`_modify`): the queues are edited per chunk and must not be copied on write.
    private subscript(direction: StreamDirection) -> Path {
        get { direction == .upstream ? upstreamPath : downstreamPath }
        _modify {
            if direction == .upstream { yield &upstreamPath } else { yield &downstreamPath }
        }
    }
}

/// The listener's toxics as one connection last saw them; `generation` changes with every edit.
struct ToxicsSnapshot: Sendable {
    var generation: Int
    var toxics: [Toxic]
}
