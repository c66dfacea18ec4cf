import NetworkEmulation
import NIOCore
import NIOPosix

/// One proxied connection's channels and timers: the client channel and its upstream channel
/// (opened on the same event loop). It feeds their events to its `ProxyConnectionState` and
/// performs the actions that returns; all decisions are the state machine's.
///
/// Confined to `eventLoop` (not Sendable): closures NIO runs later reach it through
/// `NIOLoopBound`, which checks the loop.
final class ProxyConnection {
    typealias Action = ProxyConnectionState.Action
    typealias Timer = ProxyConnectionState.Timer

    let id: UInt64
    let eventLoop: EventLoop
    private let listener: ProxyListener
    private let client: Channel
    private var server: Channel?
    private var state: ProxyConnectionState
    private var timers: [Timer: Scheduled<Void>] = [:]
    /// Each connection's own generator (jitter, loss), seeded from the system's. Not the
    /// zero-sized SystemRandomNumberGenerator: an inout of a zero-sized value has no address of
    /// its own, which ThreadSanitizer reported as one variable written from every event loop
    /// (stored) or crashed on (local).
    private var random = SplitMix64(seed: UInt64.random(in: .min ... .max))
    private let traffic: NIOLoopBoundBox<ProxyTraffic>?

    init(id: UInt64, listener: ProxyListener, client: Channel) {
        self.id = id
        self.listener = listener
        self.client = client
        eventLoop = client.eventLoop
        traffic = listener.traffic[ObjectIdentifier(client.eventLoop)]
        state = ProxyConnectionState(settings: .init(connectionID: id, spec: listener.spec))
    }

    private var bound: NIOLoopBound<ProxyConnection> { NIOLoopBound(self, eventLoop: eventLoop) }
    private var nowNanos: Int64 { Int64(clamping: NIODeadline.now().uptimeNanoseconds) }
    private var toxics: ToxicsSnapshot { listener.toxicsSnapshot() }

    private func channel(_ side: ProxySide) -> Channel? { side == .client ? client : server }

    // MARK: events (from ProxySideHandler, on the event loop)

    func clientActive() {
        let address = client.remoteAddress.map { address in
            address.ipAddress.map { HostPort(host: $0, port: address.port ?? 0).description } ?? "\(address)"
        }
        perform(state.clientActive(nowNanos: nowNanos, clientAddress: address, toxics: toxics, using: &random))
    }

    func received(_ bytes: ByteBuffer, from side: ProxySide) {
        traffic?.value.add(bytes.readableBytes, from: side)
        perform(state.received(bytes, from: side, nowNanos: nowNanos, toxics: toxics, using: &random))
    }

    func readComplete(_ side: ProxySide) { perform(state.readComplete(side)) }
    func inputClosed(_ side: ProxySide) { perform(state.inputClosed(side, nowNanos: nowNanos)) }
    func writabilityChanged(_ side: ProxySide, isWritable: Bool) {
        perform(state.writabilityChanged(side, isWritable: isWritable))
    }
    func inactive(_ side: ProxySide) { perform(state.inactive(side, nowNanos: nowNanos)) }
    func failed(_ side: ProxySide, _ error: Error) {
        perform(state.failed(side, description: ProxyListener.describe(error)))
    }
    func mayRead(_ side: ProxySide) -> Bool { state.readRequested(side) }
    func disable() { perform(state.disable()) }

    // MARK: actions

    private func perform(_ actions: [Action]) {
        for action in actions { perform(action) }
    }

    private func perform(_ action: Action) {
        switch action {
        case .write(let side, let bytes):
            channel(side)?.write(bytes, promise: nil)
        case .flush(let side):
            channel(side)?.flush()
        case .writeAndFlush(let side, let bytes):
            channel(side)?.writeAndFlush(bytes, promise: nil)
        case .closeOutput(let side):
            guard let target = channel(side) else { return }
            let bound = bound
            target.writeAndFlush(ByteBuffer()).flatMap { target.close(mode: .output) }.whenComplete { result in
                let connection = bound.value
                if case .failure = result {
                    connection.perform(connection.state.outputClosed(side, succeeded: false))
                } else {
                    connection.perform(connection.state.outputClosed(side, succeeded: true))
                }
            }
        case .sendFatal(let bytes):
            let bound = bound
            let client = client
            client.writeAndFlush(bytes).whenComplete { _ in
                client.close(mode: .output, promise: nil)
                let connection = bound.value
                connection.perform(connection.state.fatalReplySent(nowNanos: connection.nowNanos))
            }
        case .read(let side):
            channel(side)?.read()
        case .connectUpstream:
            connectUpstream()
        case .schedule(let timer, let deadline):
            let bound = bound
            timers[timer]?.cancel()
            timers[timer] = eventLoop.scheduleTask(deadline: .uptimeNanoseconds(UInt64(clamping: deadline))) {
                bound.value.timerFired(timer)
            }
        case .cancel(let timer):
            timers.removeValue(forKey: timer)?.cancel()
        case .log(let record):
            listener.log?.write(record)
        case .requestStartupSlot:
            perform(state.startupSlotAnswered(granted: listener.beginStartup(), nowNanos: nowNanos))
        case .releaseStartupSlot:
            listener.endStartup()
        case .warnUpstreamFailure(let reason):
            listener.reportUpstreamFailure(upstream: listener.spec.upstream.description, reason: reason)
        case .warnStartupRefusal:
            listener.reportStartupRefusal()
        case .closeConnection(let reset):
            closeConnection(reset: reset)
        case .closeLateUpstream:
            server?.close(promise: nil)
        }
    }

    private func timerFired(_ timer: Timer) {
        timers[timer] = nil
        perform(state.timerFired(timer, nowNanos: nowNanos))
    }

    private func connectUpstream() {
        let upstream = listener.spec.upstream
        let bound = bound
        ClientBootstrap(group: eventLoop)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.maxMessagesPerRead, value: ProxyListener.readsPerWakeUp)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                // Runs on `eventLoop` (the bootstrap's only loop), where `bound` may be read.
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ProxySideHandler(connection: bound.value, side: .server))
                }
            }
            .connect(host: upstream.host, port: upstream.port)
            .whenComplete { result in
                let connection = bound.value
                switch result {
                case .success(let channel):
                    connection.server = channel
                    connection.perform(connection.state.upstreamConnected(nowNanos: connection.nowNanos))
                case .failure(let error):
                    let reason = ProxyListener.describe(error)
                    connection.perform(connection.state.upstreamFailed(reason: reason, nowNanos: connection.nowNanos))
                }
            }
    }

    private func closeConnection(reset: Bool) {
        for timer in timers.values { timer.cancel() }
        timers = [:]
        let channels = [client] + (server.map { [$0] } ?? [])
        listener.unregister(id)
        guard reset else {
            for channel in channels { channel.close(promise: nil) }
            return
        }
        // SO_LINGER 0: close sends RST instead of FIN.
        let settings = channels.compactMap { ($0 as? SocketOptionProvider)?.setSoLinger(linger(l_onoff: 1, l_linger: 0)) }
        EventLoopFuture.andAllComplete(settings, on: eventLoop).whenComplete { _ in
            for channel in channels { channel.close(promise: nil) }
        }
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
        connection.writabilityChanged(side, isWritable: context.channel.isWritable)
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
        if connection.mayRead(side) { context.read() }
    }
}
