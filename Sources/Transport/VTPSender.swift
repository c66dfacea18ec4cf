#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import BenchConfig
import LatencyStats
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import VTPProtocol

public struct SenderOptions: Sendable {
    public var host: String
    public var port: Int
    public var maxConnect: Int
    public var events: Int
    public var period: Double
    public var mode: SenderMode
    public var scope: MaxConnectScope
    public var eventSize: Int
    public var localIVO: String
    public var reportInterval: Double
    public var connectTimeout: Double
    public var ackTimeout: Double
    public var drainTimeout: Double
    public var maxFrameSize: Int

    public init(configuration c: BenchConfiguration) {
        host = c.host
        port = c.port
        maxConnect = c.maxConnect
        events = c.events
        period = c.period
        mode = c.mode
        scope = c.maxConnectScope
        eventSize = c.eventSize
        localIVO = c.localIVO
        reportInterval = c.reportInterval
        connectTimeout = c.connectTimeout
        ackTimeout = c.ackTimeout
        drainTimeout = c.drainTimeout
        maxFrameSize = c.maxFrameSize
    }
}

/// Why a sender connection was given up (reported, never fatal).
public enum SenderConnectionError: Error, CustomStringConvertible {
    case ackTimeout(seconds: Double)
    case unexpectedReply(String)
    case closedBeforeReply
    case nak(reason: String)
    /// The TCP connect itself failed (refused, timed out, ...).
    case connectFailed(Error)

    public var description: String {
        switch self {
        case .ackTimeout(let s): return "no ack within \(Fixed.format(s, decimals: 1))s"
        case .unexpectedReply(let what): return "unexpected reply: \(what)"
        case .closedBeforeReply: return "receiver closed the connection before replying"
        case .nak(let reason): return "nak: \(reason)"
        case .connectFailed(let error): return ErrorText.describe(error)
        }
    }
}

/// Streams scheduled VOEvents to a receiver over at most `maxConnect` connections and
/// times each ack round trip. All dispatch decisions live in `SenderDispatchState`;
/// this class runs them on NIO.
public final class VTPSender: @unchecked Sendable {
    // Everything below `lock` is guarded by it.
    private let lock = NIOLock()
    private var state: SenderDispatchState
    private var handlers: [ConnectionID: SenderConnectionHandler] = [:]
    /// Channels still connecting: closed by `finish()` so no connect outlives the run.
    private var connectingChannels: [ConnectionID: Channel] = [:]
    private var intervalRoundTrips = LatencyRecorder()
    private var totalRoundTrips = LatencyRecorder()
    private var clock = ClockOffsetEstimator()
    private var lastError: String?
    private var intervalErrors = 0
    private var stopped = false

    public let options: SenderOptions
    public let builder: TestEventBuilder
    private let group: EventLoopGroup
    private let controlLoop: EventLoop
    private let output: @Sendable (String) -> Void
    private let startMonotonic: Int64
    private let finishedPromise: EventLoopPromise<SenderSummary>
    private var generated: UInt64 = 0
    private var reportTask: RepeatedTask?

    public init(
        options: SenderOptions, group: EventLoopGroup, runID: String = TestEventBuilder.makeRunID(),
        output: @escaping @Sendable (String) -> Void = LineOutput.print
    ) {
        self.options = options
        self.group = group
        self.output = output
        controlLoop = group.next()
        builder = TestEventBuilder(localIVO: options.localIVO, runID: runID, eventSize: options.eventSize)
        let intervalNanos = options.events > 0 ? DurationRule.nanoseconds(options.period / Double(options.events)) : 0
        startMonotonic = Self.monotonicNanos()
        state = SenderDispatchState(
            mode: options.mode, scope: options.scope, maxConnect: options.maxConnect,
            totalEvents: options.events, intervalNanos: intervalNanos, startWallNanos: WallClock.nowNanos())
        finishedPromise = controlLoop.makePromise(of: SenderSummary.self)
    }

    static func monotonicNanos() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }

    /// Completes with the summary once every event is acked/nak'd, the drain timeout
    /// expires, or `stop()` is called.
    public var finished: EventLoopFuture<SenderSummary> { finishedPromise.futureResult }

    public func start() -> EventLoopFuture<SenderSummary> {
        controlLoop.execute {
            // Never 0: a zero-delay repeated task would spin the control loop.
            let interval = TimeAmount.nanoseconds(
                max(DurationRule.nanoseconds(self.options.reportInterval), DurationRule.nanoseconds(DurationRule.minimumReportInterval)))
            self.reportTask = self.controlLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                self.report()
            }
            if self.options.events == 0 {
                self.finish()
            } else {
                self.tick()
            }
        }
        return finished
    }

    /// Stops sending; events not yet acked or nak'd count as failed.
    public func stop() {
        controlLoop.execute { self.finish() }
    }

    // MARK: generator

    private func tick() {
        let now = Self.monotonicNanos()
        let elapsed = now - startMonotonic
        let interval = state.intervalNanos
        let total = UInt64(options.events)
        let due = interval == 0 ? total : min(total, UInt64(elapsed / interval) + 1)
        generated = due
        let actions = lock.withLock { stopped ? [] : state.eventsDue(due, now: now) }
        execute(actions)
        if due < total {
            let nextDue = startMonotonic + Int64(due) * interval
            // Batch at high rates: the embedded timestamps stay exact either way.
            let wake = max(nextDue, now + 200_000)
            controlLoop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(UInt64(wake))) { self.tick() }
        } else if options.drainTimeout >= 0 {
            controlLoop.scheduleTask(in: .nanoseconds(DurationRule.nanoseconds(options.drainTimeout))) {
                if !self.lock.withLock({ self.stopped }) {
                    self.output("vtp-sender: drain timeout (\(self.options.drainTimeout)s) expired; giving up on the backlog")
                    self.finish()
                }
            }
        }
    }

    // MARK: callbacks from connections (any event loop)

    func connected(_ id: ConnectionID, handler: SenderConnectionHandler) {
        let (known, actions): (Bool, [SenderDispatchState.Action]) = lock.withLock {
            connectingChannels.removeValue(forKey: id)
            guard !stopped, state.connections[id] != nil else { return (false, []) }
            handlers[id] = handler
            return (true, state.connected(id, now: Self.monotonicNanos()))
        }
        if !known { handler.close() }
        execute(actions)
    }

    func written(_ id: ConnectionID) {
        execute(lock.withLock { state.written(id, now: Self.monotonicNanos()) })
    }

    /// The current clock-offset estimate, embedded in outgoing events.
    var clockEstimate: (offsetNanos: Int64, errorNanos: Int64)? {
        lock.withLock { clock.estimate.map { ($0.offsetNanos, $0.errorBoundNanos) } }
    }

    func replied(
        _ id: ConnectionID, accepted: Bool, roundTripNanos: Int64, nakReason: String?, clockSample: ClockSample? = nil
    ) {
        let actions = lock.withLock {
            intervalRoundTrips.record(nanos: roundTripNanos)
            if let clockSample { clock.add(clockSample) }
            if let nakReason { lastError = "nak: \(nakReason)" }
            return state.replied(id, accepted: accepted, now: Self.monotonicNanos())
        }
        execute(actions)
    }

    func failed(_ id: ConnectionID, error: Error) {
        let actions = lock.withLock {
            connectingChannels.removeValue(forKey: id)
            // After finish() the closes it issued surface here: not errors of the run.
            guard !stopped, state.connections[id] != nil else { return [SenderDispatchState.Action]() }
            intervalErrors += 1
            lastError = Self.describe(error)
            return state.failed(id, cause: Self.classify(error), now: Self.monotonicNanos())
        }
        execute(actions)
    }

    /// The cause a failure is counted under in reports and the summary.
    static func classify(_ error: Error) -> ConnectionFailure {
        switch error {
        case let e as SenderConnectionError:
            switch e {
            case .ackTimeout: return .ackTimeout
            case .unexpectedReply: return .badReply
            case .closedBeforeReply, .nak: return .closedBeforeAck
            case .connectFailed(let underlying): return classifyConnect(underlying)
            }
        case is VTPFramingError, is ByteToMessageDecoderError: return .badReply
        case let io as IOError where [ECONNRESET, EPIPE].contains(io.errnoCode): return .closedBeforeAck
        case ChannelError.eof, ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed: return .closedBeforeAck
        default: return .ioError
        }
    }

    private static func classifyConnect(_ error: Error) -> ConnectionFailure {
        switch error {
        case let e as NIOConnectionError:
            if let first = e.connectionErrors.first { return classifyConnect(first.error) }
            return .connectError
        case let io as IOError where io.errnoCode == ECONNREFUSED: return .refused
        case ChannelError.connectTimeout: return .connectTimeout
        default: return .connectError
        }
    }

    func peerClosed(_ id: ConnectionID) {
        let idle = lock.withLock { state.connections[id]?.state == .idle }
        guard idle else { return failed(id, error: SenderConnectionError.closedBeforeReply) }
        execute(lock.withLock {
            handlers.removeValue(forKey: id)
            return state.peerClosed(id, now: Self.monotonicNanos())
        })
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? SenderConnectionError { return e.description }
        return ErrorText.describe(error)
    }

    // MARK: actions

    private func execute(_ actions: [SenderDispatchState.Action]) {
        for action in actions {
            switch action {
            case .connect(let id): connect(id)
            case .send(let id, let event):
                guard let handler = lock.withLock({ handlers[id] }) else { continue }
                handler.send(event)
            case .close(let id):
                lock.withLock { handlers.removeValue(forKey: id) }?.close()
            case .wakeUp(let at):
                controlLoop.scheduleTask(deadline: NIODeadline.uptimeNanoseconds(UInt64(max(0, at)))) {
                    self.execute(self.lock.withLock { self.stopped ? [] : self.state.wakeUp(now: Self.monotonicNanos()) })
                }
            case .finished:
                controlLoop.execute { self.finish() }
            }
        }
    }

    private func connect(_ id: ConnectionID) {
        let options = options
        let ackTimeout = TimeAmount.nanoseconds(DurationRule.nanoseconds(options.ackTimeout))
        ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(DurationRule.nanoseconds(options.connectTimeout)))
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                self.lock.withLock { self.connectingChannels[id] = channel }
                return channel.eventLoop.makeCompletedFuture {
                    let handler = SenderConnectionHandler(id: id, sender: self, ackTimeout: ackTimeout)
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: options.maxFrameSize)))
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .connect(host: options.host, port: options.port)
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    channel.pipeline.handler(type: SenderConnectionHandler.self).whenComplete { lookup in
                        switch lookup {
                        case .success(let handler): self.connected(id, handler: handler)
                        case .failure(let error):
                            channel.close(promise: nil)
                            self.failed(id, error: error)
                        }
                    }
                case .failure(let error):
                    self.failed(id, error: SenderConnectionError.connectFailed(error))
                }
            }
    }

    // MARK: reporting

    private func report() {
        let line: String = lock.withLock {
            let rtt = intervalRoundTrips.summary
            totalRoundTrips.merge(intervalRoundTrips)
            intervalRoundTrips.reset()
            let elapsed = Double(Self.monotonicNanos() - startMonotonic) / 1e9
            var text = "[\(Fixed.format(elapsed, decimals: 1))s] sent \(state.sent) acked \(state.acked)"
                + " nak'd \(state.nakked) backlog \(state.backlog) open \(state.openConnections)"
                + " errors \(state.errors)" + SenderSummaryText.causes(state.errorsByCause)
            text += rtt.count > 0
                ? " | ack round trip min/avg/p99 \(Fixed.milliseconds(rtt.min))/\(Fixed.milliseconds(rtt.mean))/\(Fixed.milliseconds(rtt.p99))"
                : " | ack round trip -"
            if let estimate = clock.estimate {
                text += " | clock offset \(Fixed.signedMilliseconds(Double(estimate.offsetNanos) / 1e9))"
                    + " ±\(Fixed.milliseconds(Double(estimate.errorBoundNanos) / 1e9))"
            }
            if intervalErrors > 0, let lastError { text += " | last error: \(lastError)" }
            intervalErrors = 0
            return text
        }
        output(line)
    }

    public func summary() -> SenderSummary {
        lock.withLock {
            var rtt = totalRoundTrips
            rtt.merge(intervalRoundTrips)
            return SenderSummary(
                events: options.events, sent: state.sent, acked: state.acked, nakked: state.nakked,
                failed: state.unfinished, maxBacklog: state.maxBacklog, backlogEnd: state.backlog,
                connectionsOpened: state.connectionsOpened,
                durationSeconds: Double(Self.monotonicNanos() - startMonotonic) / 1e9,
                ackRoundTrip: rtt.summary, retries: state.resent, errors: state.errors,
                errorsByCause: Dictionary(uniqueKeysWithValues: state.errorsByCause.map { ($0.key.rawValue, $0.value) }),
                mode: options.mode.rawValue, maxConnect: options.maxConnect,
                maxConnectScope: options.scope.rawValue,
                clockOffset: clock.estimate.map { ClockOffsetSummary($0, samples: clock.samples) })
        }
    }

    private func finish() {
        let actions: [SenderDispatchState.Action] = lock.withLock {
            guard !stopped else { return [] }
            stopped = true
            return state.stop()
        }
        reportTask?.cancel()
        reportTask = nil
        for action in actions {
            if case .close(let id) = action { lock.withLock { handlers.removeValue(forKey: id) }?.close() }
        }
        // Connects still under way would otherwise run on until their connect timeout.
        let connecting = lock.withLock {
            defer { connectingChannels.removeAll() }
            return Array(connectingChannels.values)
        }
        for channel in connecting { channel.close(promise: nil) }
        finishedPromise.succeed(summary())
    }
}

/// One sender connection: writes the events it is given, one at a time, and reports
/// each ack/nak with its round trip. State is touched only on the channel's loop.
final class SenderConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private struct InFlight {
        var ivorn: String
        var writtenAtNanos: Int64
        var writtenAtWallNanos: Int64
        var timeout: Scheduled<Void>
    }

    let id: ConnectionID
    private let sender: VTPSender
    private let ackTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var inFlight: InFlight?
    private var reportedFailure = false
    /// Only the `setup` scope (per-event) needs to know when a write completed.
    private let notifyWrites: Bool

    init(id: ConnectionID, sender: VTPSender, ackTimeout: TimeAmount) {
        self.id = id
        self.sender = sender
        self.ackTimeout = ackTimeout
        notifyWrites = sender.options.scope == .setup && sender.options.mode == .perEvent
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Thread-safe: hops to the channel's loop.
    func send(_ event: PendingEvent) {
        guard let loop = context?.eventLoop else { return }
        if loop.inEventLoop { write(event) } else { loop.execute { self.write(event) } }
    }

    func close() {
        guard let context else { return }
        let loop = context.eventLoop
        if loop.inEventLoop {
            reportedFailure = true
            context.close(promise: nil)
        } else {
            loop.execute { self.close() }
        }
    }

    private func write(_ event: PendingEvent) {
        guard let context else {
            sender.failed(id, error: SenderConnectionError.closedBeforeReply)
            return
        }
        var buffer = context.channel.allocator.buffer(capacity: sender.builder.eventSize + 800)
        sender.builder.writeFramedDocument(
            sequence: event.sequence, sentNanos: event.scheduledNanos, clockOffset: sender.clockEstimate, into: &buffer)
        let timeout = context.eventLoop.scheduleTask(in: ackTimeout) { [weak self] in
            guard let self else { return }
            self.fail(SenderConnectionError.ackTimeout(seconds: Double(self.ackTimeout.nanoseconds) / 1e9))
        }
        inFlight = InFlight(
            ivorn: sender.builder.ivorn(sequence: event.sequence), writtenAtNanos: VTPSender.monotonicNanos(),
            writtenAtWallNanos: WallClock.nowNanos(), timeout: timeout)
        guard notifyWrites else {
            // A failed write surfaces through errorCaught/channelInactive.
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            return
        }
        let id = id
        let sender = sender
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { result in
            switch result {
            case .success: sender.written(id)
            case .failure(let error): self.fail(error)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let receivedAt = VTPSender.monotonicNanos()
        let message: VTPMessage
        do {
            message = try VTPMessage.parse(frame)
        } catch {
            fail(SenderConnectionError.unexpectedReply("unparseable (\(error))"))
            return
        }
        guard case .transport(let transport) = message else {
            fail(SenderConnectionError.unexpectedReply("a VOEvent instead of an ack"))
            return
        }
        switch transport.role {
        case .ack, .nak:
            guard let inFlight, inFlight.ivorn == transport.origin else {
                fail(SenderConnectionError.unexpectedReply("\(transport.role.rawValue) for \(transport.origin), which is not in flight"))
                return
            }
            inFlight.timeout.cancel()
            self.inFlight = nil
            var sample: ClockSample?
            if let t1 = transport.integerParam(TransportMessage.receivedNanosParam),
                let t2 = transport.integerParam(TransportMessage.repliedNanosParam)
            {
                sample = ClockSample(sent: inFlight.writtenAtWallNanos, received: t1, replied: t2, ackRead: WallClock.nowNanos())
            }
            sender.replied(
                id, accepted: transport.role == .ack, roundTripNanos: receivedAt - inFlight.writtenAtNanos,
                nakReason: transport.role == .nak ? (transport.result ?? "no reason given") : nil, clockSample: sample)
        case .iamalive:
            // Keep-alive from the peer: answer with a copy naming us, as VTP asks.
            let reply = TransportMessage(
                role: .iamalive, origin: transport.origin, response: sender.options.localIVO,
                timestamp: ISO8601Time.formatSeconds(nanos: WallClock.nowNanos()))
            context.writeAndFlush(wrapOutboundOut(reply.framed(allocator: context.channel.allocator)), promise: nil)
        case .authenticate:
            break  // no authentication scheme is in use; VTP lets us ignore it
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inFlight?.timeout.cancel()
        if !reportedFailure {
            reportedFailure = true
            sender.peerClosed(id)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
    }

    private func fail(_ error: Error) {
        inFlight?.timeout.cancel()
        inFlight = nil
        if !reportedFailure {
            reportedFailure = true
            sender.failed(id, error: error)
        }
        context?.close(promise: nil)
    }
}
