import AcceptGuard
import BenchConfig
import CommandLineKit
import LatencyStats
import NIOCore
import NIOPosix
import Protocol
import Synchronization

/// `vtp-sender --broadcast HOST:PORT`: listens for subscribers and streams the scheduled events
/// to every one (`BroadcastState`). A thread-safe handle: the run is a `BroadcastEngine` owned
/// by one event loop (the control loop); subscriber handlers on other loops post it messages.
public final class VTPBroadcaster: Sendable {
    public let options: SenderOptions
    public let listen: HostAndPort
    public let waitSubscribers: Int
    public let builder: TestEventBuilder
    private let group: EventLoopGroup
    private let engine: NIOLoopBoundBox<BroadcastEngine>
    private let promise: EventLoopPromise<SenderSummary>
    private let nextID = Atomic<Int>(0)

    public init(
        options: SenderOptions, listen: HostAndPort, waitSubscribers: Int, group: EventLoopGroup,
        runID: String = TestEventBuilder.makeRunID(), output: @escaping @Sendable (String) -> Void = LineOutput.print
    ) {
        self.options = options
        self.listen = listen
        self.waitSubscribers = waitSubscribers
        self.group = group
        let loop = group.next()
        builder = TestEventBuilder(localIVO: options.localIVO, runID: runID, eventSize: options.eventSize)
        promise = loop.makePromise(of: SenderSummary.self)
        engine = .makeBoxSendingValue(
            BroadcastEngine(
                options: options, waitSubscribers: waitSubscribers, builder: builder, loop: loop, promise: promise,
                output: output),
            eventLoop: loop)
    }

    /// The size of an event document as sent (see `VTPSender.eventSizeSent`).
    public var eventSizeSent: Int { builder.document(sequence: 0, sentNanos: WallClock.nowNanos()).utf8.count }

    /// Completes with the summary once every event is settled, the drain timeout expires, or
    /// `stop()` is called.
    public var finished: EventLoopFuture<SenderSummary> { promise.futureResult }

    /// Listens; completes with the bound address (port 0 picks a free one), or fails with
    /// `TransportError.cannotBind`. The schedule starts once `waitSubscribers` are connected.
    public func start() -> EventLoopFuture<SocketAddress> {
        let (engine, builder, listen) = (engine, builder, listen)
        let mailbox = BroadcastMailbox(engine: engine)
        let maxFrameSize = options.maxFrameSize
        let bind = ServerBootstrap(group: engine.eventLoop, childGroup: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try AcceptGuard.install(on: channel, name: "vtp-sender --broadcast", report: StandardStreams.err)
                }
            }
            .childChannelInitializer { [self] channel in
                let id = ConnectionID(nextID.wrappingAdd(1, ordering: .relaxed).oldValue)
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: maxFrameSize)))
                    try sync.addHandler(BroadcastConnectionHandler(id: id, mailbox: mailbox, builder: builder))
                }
            }
            .bind(host: listen.host, port: listen.port)
        return bind.hop(to: engine.eventLoop)
            .flatMapErrorThrowing { error in
                let failure = TransportError.cannotBind(host: listen.host, port: listen.port, reason: ErrorText.describe(error))
                engine.value.finish(failure: failure)
                throw failure
            }
            .flatMapThrowing { channel in
                guard let address = channel.localAddress else {
                    channel.close(promise: nil)
                    throw ReceiverError.noLocalAddress
                }
                engine.value.listening(on: channel)
                return address
            }
    }

    /// Stops: events not settled count as failed, events never scheduled as not sent.
    public func stop() {
        let engine = engine
        engine.eventLoop.execute { engine.value.finish() }
    }

    /// The `settings` of the summary JSON: the sender's, without what only connecting senders use.
    public func settings(for summary: SenderSummary?) -> [String: Any] {
        var settings = VTPSender.plannedSettings(options)
        for key in ["host", "port", "max_connect", "max_connect_scope", "connect_timeout_s"] { settings[key] = nil }
        settings.merge([
            "broadcast": listen.description, "wait_subscribers": waitSubscribers, "mode": "broadcast",
            "iamalive_interval_s": options.iamaliveInterval, "event_size": summary?.eventBytes?.max ?? eventSizeSent,
            "event_run_id": builder.runID,
        ]) { $1 }
        return settings
    }
}

/// One broadcast run: the state, the subscribers' handlers, the schedule, statistics and timers.
final class BroadcastEngine {
    enum Message: Sendable {
        case subscribed(ConnectionID, peer: String, NIOLoopBound<BroadcastConnectionHandler>)
        case replies(ConnectionID, [Reply])
        /// The subscriber answered an iamalive (or said something else proving it alive).
        case heard(ConnectionID, iamaliveAnswer: Bool)
        case closed(ConnectionID)
        /// The sizes of the event documents a handler wrote.
        case wrote(ClosedRange<Int>)
    }

    struct Reply: Sendable {
        /// `UInt64.max` for an ivorn that is none of ours.
        var sequence: UInt64
        var accepted: Bool
        var receivedAtNanos: Int64
        var nakReason: String?
    }

    private let options: SenderOptions
    private let builder: TestEventBuilder
    private let loop: EventLoop
    private let promise: EventLoopPromise<SenderSummary>
    private let output: @Sendable (String) -> Void

    private var state: BroadcastState
    private var handlers: [ConnectionID: NIOLoopBound<BroadcastConnectionHandler>] = [:]
    private var serverChannel: Channel?
    private let startMonotonic = VTPSender.monotonicNanos()
    /// When the schedule started (the subscribers awaited were there).
    private var scheduleStart: (monotonic: Int64, wall: Int64)?
    private let schedule: EventSchedule
    private var progress = AckProgress()
    private var eventBytes: SenderSummary.ByteRange?
    private var lastError: String?
    private var reports = 0
    private enum Timer { case tick, report, drain, check }
    private var timers: [Timer: Scheduled<Void>] = [:]
    private var stopped = false

    init(
        options: SenderOptions, waitSubscribers: Int, builder: TestEventBuilder, loop: EventLoop,
        promise: EventLoopPromise<SenderSummary>, output: @escaping @Sendable (String) -> Void
    ) {
        self.options = options
        self.builder = builder
        self.loop = loop
        self.promise = promise
        self.output = output
        schedule = EventSchedule(options)
        state = BroadcastState(
            window: options.window, ackTimeoutNanos: DurationRule.nanoseconds(options.ackTimeout),
            iamaliveIntervalNanos: DurationRule.nanoseconds(options.iamaliveInterval), waitSubscribers: waitSubscribers,
            totalEvents: options.events)
        progress.restart(atNanos: startMonotonic, acked: 0)
    }

    private var now: Int64 { VTPSender.monotonicNanos() }

    func listening(on channel: Channel) {
        guard !stopped else { return channel.close(promise: nil) }
        serverChannel = channel
        let address = channel.localAddress
        output(
            "vtp-sender: broadcasting on \(address?.ipAddress ?? "?"):\(address?.port ?? 0); "
                + "waiting for \(state.waitSubscribers) subscribers")
        scheduleReport()
        // Often enough to notice a missed iamalive or an overdue ack within a quarter of its limit.
        let limit = min(DurationRule.nanoseconds(options.iamaliveInterval), DurationRule.nanoseconds(options.ackTimeout))
        scheduleCheck(every: min(max(limit / 4, 10_000_000), 1_000_000_000))
        execute(state.begin())
    }

    // MARK: timers (all on the control loop)

    private func at(_ deadline: Int64, _ timer: Timer, _ body: @escaping (BroadcastEngine) -> Void) {
        timers[timer]?.cancel()
        timers[timer] = loop.assumeIsolated().scheduleTask(deadline: .uptimeNanoseconds(UInt64(max(0, deadline)))) {
            [self] in
            if !stopped { body(self) }
        }
    }

    private func scheduleReport() {
        let interval = max(
            DurationRule.nanoseconds(options.reportInterval), DurationRule.nanoseconds(DurationRule.minimumReportInterval))
        reports += 1
        at(startMonotonic + Int64(reports) * interval, .report) {
            $0.report()
            $0.scheduleReport()
        }
    }

    private func scheduleCheck(every interval: Int64) {
        at(now + interval, .check) {
            $0.execute($0.state.check(now: $0.now))
            $0.scheduleCheck(every: interval)
        }
    }

    /// Events due by now (from the schedule's start), then the next tick, or the drain timeout
    /// once all are due.
    private func tick() {
        guard let start = scheduleStart else { return }
        let now = now
        let due = schedule.dueCount(elapsedNanos: now - start.monotonic)
        execute(state.eventsDue(due, now: now))
        if due < schedule.totalEvents {
            // Batch at high rates: the embedded timestamps stay exact either way.
            at(max(start.monotonic &+ schedule.scheduledOffsetNanos(of: due), now + 200_000), .tick) { $0.tick() }
        } else {
            at(now + DurationRule.nanoseconds(options.drainTimeout), .drain) {
                $0.output("vtp-sender: drain timeout (\(Human.duration(seconds: $0.options.drainTimeout))) expired; giving up on the backlog")
                $0.finish()
            }
        }
    }

    // MARK: messages from subscribers

    func receive(_ message: Message) {
        guard !stopped else {
            if case .subscribed(_, _, let handler) = message { handler.run { $0.close() } }
            return
        }
        switch message {
        case .subscribed(let id, let peer, let handler):
            handlers[id] = handler
            output(
                "vtp-sender: subscriber \(peer) connected (\(state.connectedSubscribers + 1) connected, "
                    + "\(state.waitSubscribers) awaited)")
            execute(state.subscriberConnected(id, peer: peer, now: now))
        case .replies(let id, let replies):
            var actions: [BroadcastState.Action] = []
            let now = now
            for reply in replies {
                let (more, sentAt) = state.replied(id, sequence: reply.sequence, accepted: reply.accepted, now: now)
                actions += more
                if let sentAt { progress.record(roundTripNanos: reply.receivedAtNanos - sentAt) }
                if let reason = reply.nakReason { lastError = "nak: \(reason)" }
            }
            execute(actions)
        case .heard(let id, let iamaliveAnswer):
            state.heardFrom(id, iamaliveAnswer: iamaliveAnswer, now: now)
        case .wrote(let sizes):
            eventBytes = SenderSummary.ByteRange(
                min: min(eventBytes?.min ?? .max, sizes.lowerBound), max: max(eventBytes?.max ?? 0, sizes.upperBound))
        case .closed(let id):
            handlers[id] = nil
            if let peer = state.subscribers[id]?.peer, state.subscribers[id]?.connected == true {
                output("vtp-sender: subscriber \(peer) left")
            }
            execute(state.closed(id))
        }
    }

    // MARK: actions

    private func execute(_ actions: [BroadcastState.Action]) {
        for action in actions {
            switch action {
            case .send(let id, let sequences):
                guard let start = scheduleStart else { continue }
                let events = sequences.map { (sequence: $0, scheduledNanos: start.wall &+ schedule.scheduledOffsetNanos(of: $0)) }
                handlers[id]?.run { $0.send(events) }
            case .iamalive(let id):
                let localIVO = options.localIVO
                handlers[id]?.run { $0.sendIamalive(localIVO: localIVO) }
            case .close(let id):
                if let peer = state.subscribers[id]?.peer, let reason = state.subscribers[id]?.dropReason {
                    output("vtp-sender: dropped subscriber \(peer): \(reason.rawValue)")
                }
                handlers.removeValue(forKey: id)?.run { $0.close() }
            case .startSchedule:
                scheduleStart = (now, WallClock.nowNanos())
                progress.restart(atNanos: now, acked: state.acked)
                output("vtp-sender: \(state.connectedSubscribers) subscribers connected; the schedule starts")
                if options.events > 0 { tick() }
            case .finished:
                finish()
            }
        }
    }

    // MARK: reporting

    private func report() {
        let now = now
        var text = "[\(Human.duration(seconds: Double(now - startMonotonic) / 1e9))] sent \(state.sent)"
            + " acked \(state.acked) nak'd \(state.nakked) backlog \(state.backlog)"
            + " subscribers \(state.connectedSubscribers) (dropped \(state.droppedSubscribers))"
            + " | " + progress.reportText(acked: state.acked, nowNanos: now, ackedBy: "acked by all")
        if !state.started { text += " | waiting for \(state.waitSubscribers) subscribers" }
        if let lastError { text += " | last error: \(lastError)" }
        lastError = nil
        output(text)
    }

    private func summary() -> SenderSummary {
        let subscribers = state.subscribers.sorted { $0.key.raw < $1.key.raw }.map { _, s in
            BroadcastSubscriberSummary(
                peer: s.peer, sent: s.sent, acked: s.acked, nakked: s.nakked, dropped: s.dropReason != nil,
                dropReason: s.dropReason?.rawValue)
        }
        var summary = SenderSummary(
            events: options.events, sent: state.sent, acked: state.acked, nakked: state.nakked,
            failed: state.scheduled - state.acked - state.nakked, notSent: options.events - state.scheduled,
            maxBacklog: state.maxBacklog, backlogEnd: state.backlog, connectionsOpened: subscribers.count,
            durationSeconds: Double(now - (scheduleStart?.monotonic ?? startMonotonic)) / 1e9,
            ackRoundTripStatistics: progress.overall, retries: 0, errors: 0, errorsByCause: nil,
            mode: "broadcast", maxConnect: options.maxConnect, maxConnectScope: options.maxConnectScope.rawValue,
            window: options.window, clockOffset: nil, eventBytes: eventBytes)
        summary.subscribers = subscribers
        summary.subscribersDropped = state.droppedSubscribers
        return summary
    }

    /// Ends the run: closes the listener and every subscriber, completes `finished`.
    func finish(failure: Error? = nil) {
        guard !stopped else { return }
        for action in state.stop() { if case .close(let id) = action { handlers[id]?.run { $0.close() } } }
        stopped = true
        for timer in timers.values { timer.cancel() }
        timers = [:]
        handlers = [:]
        serverChannel?.close(promise: nil)
        if let failure { promise.fail(failure) } else { promise.succeed(summary()) }
    }
}

/// One subscriber's connection, owned by its channel's loop: writes the events the engine gives
/// it (a batch with one flush), sends iamalives, and posts a read's acks and naks together,
/// iamalive answers and its close to the engine.
final class BroadcastConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let id: ConnectionID
    private let mailbox: BroadcastMailbox
    private let builder: TestEventBuilder
    private var context: ChannelHandlerContext?
    private var replies: [BroadcastEngine.Reply] = []
    /// The engine closed it, or heard of its close: say nothing more.
    private var reported = false

    init(id: ConnectionID, mailbox: BroadcastMailbox, builder: TestEventBuilder) {
        self.id = id
        self.mailbox = mailbox
        self.builder = builder
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelActive(context: ChannelHandlerContext) {
        let peer = context.channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown peer"
        mailbox.post(.subscribed(id, peer: peer, NIOLoopBound(self, eventLoop: context.eventLoop)))
        context.fireChannelActive()
    }

    func close() {
        reported = true
        context?.close(promise: nil)
    }

    /// Writes `events` in order with one flush.
    func send(_ events: [(sequence: UInt64, scheduledNanos: Int64)]) {
        guard let context else { return }
        var buffer = context.channel.allocator.buffer(capacity: (builder.eventSize + 800) * events.count)
        var sizes: ClosedRange<Int>?
        for event in events {
            let start = buffer.writerIndex
            builder.writeFramedDocument(sequence: event.sequence, sentNanos: event.scheduledNanos, into: &buffer)
            let bytes = buffer.writerIndex - start - VTPFraming.headerSize
            sizes = min(sizes?.lowerBound ?? bytes, bytes)...max(sizes?.upperBound ?? bytes, bytes)
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
        if let sizes { mailbox.post(.wrote(sizes)) }
    }

    func sendIamalive(localIVO: String) {
        guard let context else { return }
        context.writeAndFlush(
            wrapOutboundOut(TransportMessage.iamalive(localIVO: localIVO).framed(allocator: context.channel.allocator)),
            promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let receivedAt = VTPSender.monotonicNanos()
        // As Comet's broadcaster: what is not an ack, nak or iamalive is ignored.
        guard case .transport(let transport)? = try? VTPMessage.parse(unwrapInboundIn(data)) else { return }
        switch transport.role {
        case .ack, .nak:
            replies.append(
                BroadcastEngine.Reply(
                    sequence: builder.sequence(ofIVORN: transport.origin) ?? .max, accepted: transport.role == .ack,
                    receivedAtNanos: receivedAt,
                    nakReason: transport.role == .nak ? (transport.result ?? "no reason given") : nil))
        case .iamalive:
            mailbox.post(.heard(id, iamaliveAnswer: true))
        case .authenticate:
            mailbox.post(.heard(id, iamaliveAnswer: false))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if !replies.isEmpty, !reported {
            mailbox.post(.replies(id, replies))
            replies.removeAll(keepingCapacity: true)
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !reported {
            reported = true
            if !replies.isEmpty { mailbox.post(.replies(id, replies)) }
            mailbox.post(.closed(id))
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
