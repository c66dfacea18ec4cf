import BenchConfig
import LatencyStats
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import VTPProtocol

public struct ReceiverOptions: Sendable {
    public var host: String
    public var port: Int
    public var reportInterval: Double
    public var receiverIVO: String
    public var maxFrameSize: Int
    public var idleTimeout: Double
    public var stopAfterEvents: Int?
    public var stopAfterSeconds: Double?
    public var warmupSeconds: Double = 0
    public var eventsCSVPath: String?

    public init(configuration c: BenchConfiguration) {
        host = c.host
        port = c.port
        reportInterval = c.reportInterval
        receiverIVO = c.receiverIVO
        maxFrameSize = c.maxFrameSize
        idleTimeout = c.idleTimeout
    }
}

/// Accepts VTP connections, acks every valid event, naks the rest, and measures
/// latency = (time after parsing) − (the event's embedded send timestamp).
public final class VTPReceiver: @unchecked Sendable {
    public let options: ReceiverOptions
    public let statistics: ReceiverStatistics
    private let group: EventLoopGroup
    private let output: @Sendable (String) -> Void
    private let errorOutput: @Sendable (String) -> Void
    private let observer: (@Sendable (ReceivedEvent) -> Void)?
    private let csv: EventsCSVWriter?
    private let lock = NIOLock()
    private var serverChannel: Channel?
    private var reportTask: RepeatedTask?
    private var stopped = false
    private let donePromise: EventLoopPromise<ReceiverSummary>

    /// - Parameter observer: called for every event (on a connection's event loop).
    public init(
        options: ReceiverOptions, group: EventLoopGroup,
        output: @escaping @Sendable (String) -> Void = LineOutput.print,
        errorOutput: @escaping @Sendable (String) -> Void = LineOutput.printError,
        observer: (@Sendable (ReceivedEvent) -> Void)? = nil
    ) throws {
        self.options = options
        self.group = group
        self.output = output
        self.errorOutput = errorOutput
        self.observer = observer
        statistics = ReceiverStatistics(warmupSeconds: options.warmupSeconds)
        csv = try options.eventsCSVPath.map { try EventsCSVWriter(path: $0) }
        donePromise = group.next().makePromise(of: ReceiverSummary.self)
    }

    /// Completes with the final summary when a stop condition is met or `stop()` is called.
    public var done: EventLoopFuture<ReceiverSummary> { donePromise.futureResult }

    /// Binds and starts serving; returns the bound address (port 0 picks a free port).
    @discardableResult
    public func start() throws -> SocketAddress {
        let options = options
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if options.idleTimeout > 0 {
                        try sync.addHandler(
                            IdleStateHandler(readTimeout: .nanoseconds(Int64(options.idleTimeout * 1e9))))
                    }
                    try sync.addHandler(ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: options.maxFrameSize)))
                    try sync.addHandler(ReceiverConnectionHandler(receiver: self))
                }
            }
        let channel: Channel
        do {
            channel = try bootstrap.bind(host: options.host, port: options.port).wait()
        } catch {
            let failure = TransportError.cannotBind(host: options.host, port: options.port, reason: ErrorText.describe(error))
            lock.withLock { stopped = true }
            csv?.close()
            donePromise.fail(failure)
            throw failure
        }
        lock.withLock { serverChannel = channel }
        let loop = channel.eventLoop
        let interval = TimeAmount.nanoseconds(Int64(options.reportInterval * 1e9))
        reportTask = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            for line in self.statistics.reportLines() { self.output(line) }
        }
        if let seconds = options.stopAfterSeconds {
            loop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) { self.stop() }
        }
        return channel.localAddress!
    }

    /// Stops listening, closes connections, completes `done`. Idempotent.
    public func stop() {
        let channel: Channel? = lock.withLock {
            guard !stopped else { return nil }
            stopped = true
            return serverChannel
        }
        guard let channel else { return }
        reportTask?.cancel()
        channel.close().whenComplete { _ in
            self.csv?.close()
            self.donePromise.succeed(self.statistics.summary())
        }
    }

    // MARK: called by connections

    func handle(_ event: ReceivedEvent) {
        let (recorded, total) = statistics.record(event)
        csv?.write(recorded)
        observer?(recorded)
        if let limit = options.stopAfterEvents, total >= limit {
            group.next().execute { self.stop() }
        }
    }

    func reportConnectionError(_ text: String) { errorOutput(text) }
}

/// One receiver connection. It never closes first except on a framing error or idle
/// timeout, so per-event and persistent senders both work.
final class ReceiverConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let receiver: VTPReceiver
    private var peer = "unknown peer"
    private var remoteAddress: String?
    private var remotePort: Int?

    init(receiver: VTPReceiver) { self.receiver = receiver }

    func channelActive(context: ChannelHandlerContext) {
        if let address = context.channel.remoteAddress {
            remoteAddress = address.ipAddress
            remotePort = address.port
            peer = "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        }
        receiver.statistics.connectionOpened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        receiver.statistics.connectionClosed()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let receiverIVO = receiver.options.receiverIVO
        let message: VTPMessage
        do {
            message = try VTPMessage.parse(frame)
        } catch {
            nak(context: context, origin: receiverIVO, reason: "Event rejected: \(error)")
            return
        }
        switch message {
        case .voEvent(let event):
            let receivedNanos = WallClock.nowNanos()
            let sentNanos: Int64
            do {
                sentNanos = try event.sendTimestampNanos()
            } catch {
                nak(context: context, origin: event.ivorn, reason: "Event rejected: \(error)")
                return
            }
            receiver.handle(
                ReceivedEvent(
                    sequence: event.sequence, runID: event.runID, ivorn: event.ivorn, sentNanos: sentNanos,
                    receivedNanos: receivedNanos, remoteAddress: remoteAddress, remotePort: remotePort,
                    inWarmup: false, senderClockOffset: event.clockOffset))
            // Receive and reply times let the sender estimate the clock offset (NTP-style).
            let repliedNanos = WallClock.nowNanos()
            let ack = TransportMessage.ack(
                eventIVORN: event.ivorn, localIVO: receiverIVO, nowNanos: repliedNanos,
                params: [
                    .init(name: TransportMessage.receivedNanosParam, value: String(receivedNanos)),
                    .init(name: TransportMessage.repliedNanosParam, value: String(repliedNanos)),
                ])
            context.writeAndFlush(wrapOutboundOut(ack.framed(allocator: context.channel.allocator)), promise: nil)
        case .transport(let transport):
            switch transport.role {
            case .iamalive:
                let reply = TransportMessage(
                    role: .iamalive, origin: transport.origin, response: receiverIVO,
                    timestamp: ISO8601Time.formatSeconds(nanos: WallClock.nowNanos()))
                context.writeAndFlush(wrapOutboundOut(reply.framed(allocator: context.channel.allocator)), promise: nil)
            case .ack, .nak, .authenticate:
                break  // nothing to answer
            }
        }
    }

    private func nak(context: ChannelHandlerContext, origin: String, reason: String) {
        receiver.statistics.recordNak()
        receiver.reportConnectionError("nak to \(peer): \(reason)")
        let nak = TransportMessage.nak(eventIVORN: origin, localIVO: receiver.options.receiverIVO, reason: reason)
        context.writeAndFlush(wrapOutboundOut(nak.framed(allocator: context.channel.allocator)), promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            receiver.reportConnectionError("closing idle connection from \(peer)")
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if error is VTPFramingError {
            receiver.statistics.recordFramingError()
            receiver.reportConnectionError("closing connection from \(peer): \(error)")
        } else if let io = error as? IOError, io.errnoCode == ECONNRESET {
            // The peer reset the connection; nothing to report beyond its close.
        } else {
            receiver.reportConnectionError("connection from \(peer): \(error)")
        }
        context.close(promise: nil)
    }
}
