import Foundation
import NIOCore
import NIOPosix
import PGWire
import VTPProtocol

public enum ProxySide: Sendable {
    case client
    case server

    var inbound: StreamDirection { self == .client ? .upstream : .downstream }
}

/// One proxied connection: the client channel, its upstream channel (on the same event loop),
/// and for each direction a FIFO of chunks with release times. All state is touched on
/// `eventLoop` only; the Sendable conformance is for the closures NIO schedules there.
final class ProxyConnection: @unchecked Sendable {
    /// Reading stops while more than this is queued in the proxy for one direction.
    static let highWater = 1 << 20
    static let lowWater = 256 << 10

    private enum Payload {
        case data(ByteBuffer)
        /// End of stream: half-close the target's output.
        case end
        /// limit_data reached: close everything.
        case closeAll
    }

    /// Event-loop confined, like its connection.
    private final class Path: @unchecked Sendable {
        let direction: StreamDirection
        var scheduler: ReleaseScheduler
        var queue = CircularBuffer<(release: Int64, payload: Payload)>()
        var queuedBytes = 0
        var timer: Scheduled<Void>?
        var timerDeadline: Int64 = .max
        var acceptedBytes = 0
        var forwardedBytes = 0
        var droppedBytes = 0
        var needsFlush = false
        var inputEnded = false
        var outputClosed = false
        var limitHit = false

        init(direction: StreamDirection, plan: DirectionPlan) {
            self.direction = direction
            scheduler = ReleaseScheduler(plan: plan)
        }

        var plan: DirectionPlan { scheduler.plan }
    }

    let id: UInt64
    let eventLoop: EventLoop
    private let listener: ProxyListener
    private let client: Channel
    private var server: Channel?
    private var plan = ConnectionPlan()
    private var planGeneration = -1
    private let upstreamPath: Path
    private let downstreamPath: Path
    private var upstreamInspector: any StreamInspector
    private var downstreamInspector: any StreamInspector
    private var heldRead: (client: Bool, server: Bool) = (false, false)
    private var closed = false
    private var startedAt = NIODeadline.now()
    private var random = SystemRandomNumberGenerator()
    private var faultTimers: [Scheduled<Void>] = []
    /// PostgreSQL: the upstream connection is opened only once the client's startup packet is
    /// complete, so clients that stall in their startup cannot use up the server's slots.
    private var awaitingStartup: Bool
    private var holdsStartupSlot = false
    /// Over the pending-startup cap: the client gets `refusalGrace` to send its startup packet,
    /// which is answered with FATAL 53300 as PostgreSQL answers when full (answering before it
    /// would land in the SSLRequest exchange, where clients do not show errors); then it is closed.
    private var refusedForCapacity = false
    static let refusalGrace = TimeAmount.seconds(2)
    private var startupTimer: Scheduled<Void>?
    /// Why a FATAL reply went out; the client's side is half-closed and its input ignored.
    private var rejection: String?
    private var rejecting: Bool { rejection != nil }

    init(id: UInt64, listener: ProxyListener, client: Channel) {
        self.id = id
        self.listener = listener
        self.client = client
        self.eventLoop = client.eventLoop
        upstreamPath = Path(direction: .upstream, plan: DirectionPlan())
        downstreamPath = Path(direction: .downstream, plan: DirectionPlan())
        awaitingStartup = listener.spec.protocol == .pg
        switch listener.spec.protocol {
        case .raw:
            upstreamInspector = PassThroughInspector()
            downstreamInspector = PassThroughInspector()
        case .pg:
            upstreamInspector = PGClientInspector(maximumStartupLength: listener.spec.maxStartupLength)
            downstreamInspector = PGServerInspector()
        case .vtp:
            upstreamInspector = VTPInspector(direction: .upstream)
            downstreamInspector = VTPInspector(direction: .downstream)
        }
    }

    private func path(_ direction: StreamDirection) -> Path {
        direction == .upstream ? upstreamPath : downstreamPath
    }

    private func channel(_ side: ProxySide) -> Channel? { side == .client ? client : server }

    private func target(of direction: StreamDirection) -> Channel? { direction == .upstream ? server : client }

    private func log(_ record: LogRecord) { listener.log?.write(record) }

    // MARK: set-up

    func clientActive() {
        startedAt = .now()
        refreshPlan()
        var record = LogRecord(event: "connect", connection: id)
        record.add("proxy", listener.spec.name)
        record.add("client", client.remoteAddress.map { address in
            address.ipAddress.map { ip in ip.contains(":") ? "[\(ip)]:\(address.port ?? 0)" : "\(ip):\(address.port ?? 0)" }
                ?? "\(address)"
        })
        record.add("upstream", listener.spec.upstream.description)
        log(record)
        guard awaitingStartup else { return scheduleConnect() }
        guard listener.beginStartup() else {
            listener.reportStartupRefusal()
            refusedForCapacity = true
            startupTimer = eventLoop.scheduleTask(in: Self.refusalGrace) {
                self.teardown(reason: "too many pending startups")
            }
            return
        }
        holdsStartupSlot = true
        let timeout = listener.spec.startupTimeoutNanos
        startupTimer = eventLoop.scheduleTask(in: .nanoseconds(timeout)) {
            guard self.awaitingStartup else { return }
            self.rejectClient(
                sqlState: "08P01",
                message: "vtp-proxy: incomplete startup packet after \(Self.describe(nanos: timeout)) (--startup-timeout)",
                reason: "startup timeout")
        }
    }

    /// The client's startup packet (or CancelRequest) is complete: connect upstream now.
    private func startupFinished() {
        awaitingStartup = false
        releaseStartupSlot()
        scheduleConnect()
    }

    private func releaseStartupSlot() {
        startupTimer?.cancel()
        startupTimer = nil
        if holdsStartupSlot {
            holdsStartupSlot = false
            listener.endStartup()
        }
    }

    /// Connects once the connect delay, counted from the client's arrival, has passed.
    private func scheduleConnect() {
        let deadline = startedAt + .nanoseconds(plan.connectDelayNanos)
        if plan.connectDelayNanos > 0, deadline > .now() {
            eventLoop.scheduleTask(deadline: deadline) { self.connectUpstream() }
        } else {
            connectUpstream()
        }
    }

    static func describe(nanos: Int64) -> String {
        nanos % 1_000_000_000 == 0 ? "\(nanos / 1_000_000_000) s" : "\(Double(nanos) / 1e6) ms"
    }

    private func connectUpstream() {
        guard !closed else { return }
        let upstream = listener.spec.upstream
        ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.maxMessagesPerRead, value: ProxyListener.readsPerWakeUp)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ProxySideHandler(connection: self, side: .server))
                }
            }
            .connect(host: upstream.host, port: upstream.port)
            .whenComplete { result in
                switch result {
                case .success(let channel): self.serverConnected(channel)
                case .failure(let error): self.upstreamFailed(error)
                }
            }
    }

    private func serverConnected(_ channel: Channel) {
        guard !closed else {
            channel.close(promise: nil)
            return
        }
        server = channel
        release(upstreamPath)
    }

    private func upstreamFailed(_ error: Error) {
        let upstream = listener.spec.upstream.description
        let reason = ProxyListener.describe(error)
        listener.reportUpstreamFailure(upstream: upstream, reason: reason)
        var record = LogRecord(event: "upstream_error", connection: id)
        record.add("upstream", upstream)
        record.add("error", reason)
        log(record)
        if listener.spec.protocol == .pg {
            rejectClient(
                sqlState: "08006", message: "vtp-proxy: upstream \(upstream) unreachable: \(reason)",
                reason: "upstream unreachable")
        } else {
            teardown(reason: "upstream unreachable")
        }
    }

    /// Tells a PostgreSQL client why, in its own protocol (a FATAL ErrorResponse), instead of
    /// a bare close; then closes.
    private func rejectClient(sqlState: String, message: String, reason: String) {
        guard !closed, !rejecting else { return }
        rejection = reason
        releaseStartupSlot()
        let bytes = PGEncoding.bytes(
            .errorResponse(
                PGErrorFields(fields: [
                    UInt8(ascii: "S"): "FATAL", UInt8(ascii: "V"): "FATAL", UInt8(ascii: "C"): sqlState,
                    UInt8(ascii: "M"): message,
                ])))
        client.writeAndFlush(bytes).whenComplete { _ in
            // Half-close and linger instead of closing outright: the client's startup
            // packet may still be in flight, and a closed socket answers it with RST,
            // which can destroy the unread error in the client's receive buffer.
            self.client.close(mode: .output, promise: nil)
            self.eventLoop.scheduleTask(in: .seconds(2)) { self.teardown(reason: reason) }
        }
    }

    /// Re-reads the listener's toxics when they changed and rolls their toxicity again.
    private func refreshPlan() {
        let (generation, toxics) = listener.toxicsSnapshot()
        guard generation != planGeneration else { return }
        planGeneration = generation
        plan = ConnectionPlan.make(from: toxics, using: &random)
        upstreamPath.scheduler.plan = plan.upstream
        downstreamPath.scheduler.plan = plan.downstream
        // The client could not have sent before its handshake completed: hold early bytes.
        upstreamPath.scheduler.holdUntil = Int64(startedAt.uptimeNanoseconds) + plan.connectDelayNanos
        for timer in faultTimers { timer.cancel() }
        faultTimers = []
        for direction in StreamDirection.allCases {
            let directionPlan = plan[direction]
            if let reset = directionPlan.resetNanos {
                faultTimers.append(
                    eventLoop.scheduleTask(deadline: startedAt + .nanoseconds(reset)) { self.resetBoth() })
            }
            if let close = directionPlan.blackHoleCloseNanos, close > 0 {
                faultTimers.append(
                    eventLoop.scheduleTask(deadline: startedAt + .nanoseconds(close)) {
                        self.teardown(reason: "timeout toxic")
                    })
            }
        }
    }

    // MARK: events from the handlers

    func received(_ bytes: ByteBuffer, from side: ProxySide) {
        guard !closed, !rejecting else { return }
        refreshPlan()
        let direction = side.inbound
        let inspection =
            direction == .upstream
            ? upstreamInspector.inspect(bytes, connection: id)
            : downstreamInspector.inspect(bytes, connection: id)
        for record in inspection.records { log(record) }
        if let reply = inspection.reply, let source = channel(side) {
            source.writeAndFlush(reply, promise: nil)
        }
        if let failure = inspection.failure {
            var record = LogRecord(event: "protocol_error", connection: id)
            record.add("stream", direction.rawValue)
            record.add("error", failure)
            log(record)
            teardown(reason: "protocol error")
            return
        }
        if inspection.startupComplete, awaitingStartup {
            guard !refusedForCapacity else {
                return rejectClient(
                    sqlState: "53300",
                    message: "vtp-proxy: too many clients (\(listener.spec.maxPendingStartups)) have not finished their"
                        + " startup packet; try again later",
                    reason: "too many pending startups")
            }
            startupFinished()
        }
        if let forward = inspection.forward, forward.readableBytes > 0 {
            enqueue(forward, on: path(direction))
        }
    }

    private func enqueue(_ bytes: ByteBuffer, on path: Path) {
        let plan = path.plan
        guard plan.blackHoleCloseNanos == nil else {
            path.droppedBytes += bytes.readableBytes
            return
        }
        var bytes = bytes
        if let limit = plan.limitBytes {
            let remaining = limit - path.acceptedBytes
            if remaining <= 0 {
                path.droppedBytes += bytes.readableBytes
                return
            }
            if bytes.readableBytes >= remaining {
                bytes = bytes.getSlice(at: bytes.readerIndex, length: remaining)!
                path.limitHit = true
            }
        }
        path.acceptedBytes += bytes.readableBytes
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        if plan.isTransparent, path.queue.isEmpty, !path.limitHit, let target = target(of: path.direction) {
            path.forwardedBytes += bytes.readableBytes
            target.write(bytes, promise: nil)
            path.needsFlush = true
            return
        }
        if plan.isTransparent {
            path.queue.append((max(now, path.scheduler.lastRelease), .data(bytes)))
            path.queuedBytes += bytes.readableBytes
        } else {
            path.queuedBytes += bytes.readableBytes
            for slice in path.scheduler.schedule(length: bytes.readableBytes, arrival: now, using: &random) {
                path.queue.append((slice.release, .data(bytes.readSlice(length: slice.length)!)))
            }
        }
        if path.limitHit {
            path.queue.append((path.scheduler.scheduleEnd(arrival: now), .closeAll))
        }
        release(path)
    }

    func readComplete(_ side: ProxySide) {
        let path = path(side.inbound)
        if path.needsFlush {
            path.needsFlush = false
            target(of: path.direction)?.flush()
        }
    }

    func inputClosed(_ side: ProxySide) {
        guard !closed else { return }
        if side == .client, awaitingStartup || rejecting, server == nil {
            // Nothing was or will be forwarded: no upstream to finish, and a client that has
            // stopped sending cannot complete its startup packet.
            return teardown(reason: rejection ?? "client closed before completing its startup packet")
        }
        let path = path(side.inbound)
        guard !path.inputEnded else { return }
        path.inputEnded = true
        readComplete(side)
        if path.plan.blackHoleCloseNanos != nil { return }  // a black hole swallows the FIN too
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        path.queue.append((path.scheduler.scheduleEnd(arrival: now), .end))
        release(path)
    }

    func writabilityChanged(_ side: ProxySide) {
        // `side` can take more: let the opposite side read again.
        guard channel(side)?.isWritable == true else { return }
        resumeRead(side == .client ? .server : .client)
    }

    func inactive(_ side: ProxySide) {
        guard !closed else { return }
        if side == .client, awaitingStartup || rejecting, server == nil {
            return teardown(reason: rejection ?? "client closed before completing its startup packet")
        }
        // Failures (resets, write errors) arrive through errorCaught and tear down before this.
        // Here the peer closed cleanly: NIO closes a channel fully when its FIN arrives after
        // our output was shut, sometimes without an inputClosed event. Bytes and the FIN it
        // sent may still be queued (latency, slow_close) for the other side: deliver them
        // first; nothing more can be delivered to it.
        let fromClosedSide = path(side.inbound)
        if !fromClosedSide.inputEnded { inputClosed(side) }
        let towardsClosedSide = path(side.inbound == .upstream ? .downstream : .upstream)
        towardsClosedSide.queue.removeAll()
        towardsClosedSide.queuedBytes = 0
        towardsClosedSide.outputClosed = true
        if fromClosedSide.outputClosed || fromClosedSide.queue.isEmpty && fromClosedSide.plan.blackHoleCloseNanos != nil {
            teardown(reason: nil)
        }
    }

    func failed(_ side: ProxySide, _ error: Error) {
        guard !closed else { return }
        var record = LogRecord(event: "socket_error", connection: id)
        record.add("side", side == .client ? "client" : "server")
        record.add("error", ProxyListener.describe(error))
        log(record)
        teardown(reason: "\(side == .client ? "client" : "server") error")
    }

    /// Back-pressure: read from `side` only while its partner keeps up.
    func mayRead(_ side: ProxySide) -> Bool {
        let path = path(side.inbound)
        guard path.queuedBytes < Self.highWater else { return false }
        return target(of: path.direction)?.isWritable ?? true
    }

    func holdRead(_ side: ProxySide) {
        if side == .client { heldRead.client = true } else { heldRead.server = true }
    }

    private func resumeRead(_ side: ProxySide) {
        let held = side == .client ? heldRead.client : heldRead.server
        guard held, !closed, mayRead(side) else { return }
        if side == .client { heldRead.client = false } else { heldRead.server = false }
        channel(side)?.read()
    }

    // MARK: release

    /// Passes on every queued item whose time has come; arms the timer for the next one.
    private func release(_ path: Path) {
        guard !closed, let target = target(of: path.direction) else { return }
        let now = Int64(NIODeadline.now().uptimeNanoseconds)
        var wrote = false
        while let head = path.queue.first, head.release <= now {
            path.queue.removeFirst()
            switch head.payload {
            case .data(let bytes):
                path.queuedBytes -= bytes.readableBytes
                path.forwardedBytes += bytes.readableBytes
                target.write(bytes, promise: nil)
                wrote = true
            case .end:
                if wrote { target.flush() }
                wrote = false
                closeOutput(of: path, target: target)
            case .closeAll:
                if wrote { target.flush() }
                teardown(reason: "limit_data reached", flushFirst: true)
                return
            }
        }
        if wrote { target.flush() }
        if let next = path.queue.first {
            if next.release != path.timerDeadline {
                path.timer?.cancel()
                path.timerDeadline = next.release
                path.timer = eventLoop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(UInt64(next.release))) {
                    path.timerDeadline = .max
                    self.release(path)
                }
            }
        } else {
            path.timer?.cancel()
            path.timer = nil
            path.timerDeadline = .max
        }
        if path.queuedBytes < Self.lowWater {
            resumeRead(path.direction == .upstream ? .client : .server)
        }
    }

    private func closeOutput(of path: Path, target: Channel) {
        // Wait until every earlier write has reached the socket: if the target's input is
        // already shut, NIO escalates an output close to a full close, which would drop them.
        target.writeAndFlush(ByteBuffer()).flatMap {
            target.close(mode: .output)
        }.whenComplete { result in
            path.outputClosed = true
            if case .failure = result {
                self.teardown(reason: "half-close failed")
            } else if self.upstreamPath.outputClosed && self.downstreamPath.outputClosed {
                self.teardown(reason: nil)
            }
        }
    }

    // MARK: tear-down

    private func resetBoth() {
        guard !closed else { return }
        // SO_LINGER 0: close sends RST instead of FIN.
        let channels = [client] + (server.map { [$0] } ?? [])
        let settings = channels.compactMap { ($0 as? SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0)) }
        EventLoopFuture.andAllComplete(settings, on: eventLoop).whenComplete { _ in
            self.teardown(reason: "reset_peer toxic")
        }
    }

    /// Closes both sides (if either fails, both go). Idempotent.
    func teardown(reason: String?, flushFirst: Bool = false) {
        guard !closed else { return }
        closed = true
        releaseStartupSlot()
        upstreamPath.timer?.cancel()
        downstreamPath.timer?.cancel()
        for timer in faultTimers { timer.cancel() }
        client.close(promise: nil)
        server?.close(promise: nil)
        listener.unregister(self)
        var record = LogRecord(event: "close", connection: id)
        record.add("bytes_up", upstreamPath.forwardedBytes)
        record.add("bytes_down", downstreamPath.forwardedBytes)
        if upstreamPath.droppedBytes + downstreamPath.droppedBytes > 0 {
            record.add("bytes_dropped", upstreamPath.droppedBytes + downstreamPath.droppedBytes)
        }
        if let reason { record.add("reason", reason) }
        log(record)
    }
}

/// Forwards one channel's events to its connection; holds reads back when the connection says
/// the other side cannot keep up (the GlueHandler pattern from swift-nio-examples).
final class ProxySideHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let connection: ProxyConnection
    private let side: ProxySide

    init(connection: ProxyConnection, side: ProxySide) {
        self.connection = connection
        self.side = side
    }

    func channelActive(context: ChannelHandlerContext) {
        if side == .client { connection.clientActive() }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        connection.received(unwrapInboundIn(data), from: side)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        connection.readComplete(side)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            connection.inputClosed(side)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.writabilityChanged(side)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.inactive(side)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        connection.failed(side, error)
    }

    func read(context: ChannelHandlerContext) {
        if connection.mayRead(side) {
            context.read()
        } else {
            connection.holdRead(side)
        }
    }
}
