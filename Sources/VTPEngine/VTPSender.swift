#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import BenchConfig
import CommandLineKit
import LatencyStats
import LiveMetrics
import NIOCore
import NIOPosix
import Protocol

/// The sender's settings: the configuration it runs with, read through (`options.maxConnect`).
@dynamicMemberLookup
public struct SenderOptions: Sendable {
    public var configuration: BenchConfiguration
    /// `--failback`: return to an earlier target once it accepts connections again.
    public var failback: Bool

    public init(configuration: BenchConfiguration, failback: Bool = false) {
        self.configuration = configuration
        self.failback = failback
    }

    public subscript<Value>(dynamicMember path: WritableKeyPath<BenchConfiguration, Value>) -> Value {
        get { configuration[keyPath: path] }
        set { configuration[keyPath: path] = newValue }
    }
}

/// Why a sender connection was given up (reported, never fatal).
public enum SenderConnectionError: Error, CustomStringConvertible {
    case ackTimeout(seconds: Double)
    case unexpectedReply(String)
    case closedBeforeReply
    case nak(reason: String)
    /// The TCP connect itself failed (refused, timed out, unknown host, ...).
    case connectFailed(Error)

    public var description: String {
        switch self {
        case .ackTimeout(let s): return "no ack within \(Human.duration(seconds: s))"
        case .unexpectedReply(let what): return "unexpected reply: \(what)"
        case .closedBeforeReply: return "receiver closed the connection before replying"
        case .nak(let reason): return "nak: \(reason)"
        case .connectFailed(let error): return ErrorText.describe(error)
        }
    }
}

/// Why a run could not be carried out at all (exit status 2).
public enum SenderRunError: Error, CustomStringConvertible, Equatable {
    /// No connection ever opened within `connect_timeout`; `cause` is the last failure.
    case unreachable(host: String, port: Int, waitedSeconds: Double, cause: String)
    /// Several targets, none of which ever accepted a connection.
    case noTargetReachable(targets: [String], waitedSeconds: Double, cause: String)

    public var description: String {
        switch self {
        case .unreachable(let host, let port, let waited, let cause):
            let address = SenderTarget(host: host, port: port).description
            return "no connection to \(address) within \(Human.duration(seconds: waited)): \(cause)"
        case .noTargetReachable(let targets, let waited, let cause):
            return "no connection to any of \(targets.joined(separator: ", ")) within \(Human.duration(seconds: waited)): \(cause)"
        }
    }
}

/// Streams scheduled VOEvents to a receiver over at most `maxConnect` connections and times
/// each ack round trip. This is a thread-safe handle: the run itself is a `SenderEngine` owned
/// by one event loop (the control loop) and reached only by running on that loop.
public final class VTPSender: Sendable {
    public let options: SenderOptions
    public let builder: TestEventBuilder
    /// One engine; with `--failover all`, one per target (see `AllTargetsCoordinator`).
    private let engines: [NIOLoopBoundBox<SenderEngine>]
    private let coordinator: NIOLoopBoundBox<AllTargetsCoordinator>?
    private let promise: EventLoopPromise<SenderSummary>

    /// - Parameter onInterval: called with each report interval (and the last, partial one), on
    ///   the control loop; it must return at once (the results store only posts it to its own loop).
    public init(
        options: SenderOptions, group: EventLoopGroup, runID: String = TestEventBuilder.makeRunID(),
        output: @escaping @Sendable (String) -> Void = LineOutput.print,
        onInterval: (@Sendable (ReportInterval) -> Void)? = nil
    ) {
        self.options = options
        let loop = group.next()
        let builder = TestEventBuilder(localIVO: options.localIVO, runID: runID, eventSize: options.eventSize)
        self.builder = builder
        let promise = loop.makePromise(of: SenderSummary.self)
        self.promise = promise
        let targets = options.configuration.senderTargets
        guard options.failover == .all, targets.count > 1 else {
            coordinator = nil
            engines = [
                NIOLoopBoundBox.makeBoxSendingValue(
                    SenderEngine(
                        options: options, builder: builder, group: group, loop: loop, promise: promise, output: output,
                        onInterval: onInterval),
                    eventLoop: loop)
            ]
            return
        }
        let coordinator = NIOLoopBoundBox.makeBoxSendingValue(AllTargetsCoordinator(events: options.events), eventLoop: loop)
        var lanes: [EventLoopFuture<SenderSummary>] = []
        engines = targets.enumerated().map { index, target in
            var lane = options
            lane.configuration.targets = [target]
            let promise = loop.makePromise(of: SenderSummary.self)
            lanes.append(promise.futureResult)
            return NIOLoopBoundBox.makeBoxSendingValue(
                SenderEngine(
                    options: lane, builder: builder, group: group, loop: loop, promise: promise, output: output,
                    // Stored intervals: the first target's (a store takes one stream per run).
                    onInterval: index == 0 ? onInterval : nil, coordinator: coordinator),
                eventLoop: loop)
        }
        self.coordinator = coordinator
        let engines = engines
        EventLoopFuture.whenAllComplete(lanes, on: loop).whenSuccess { results in
            let all = coordinator.value
            all.lanes = []  // the run is over: no reference cycle remains
            let summaries = results.compactMap { try? $0.get() }
            var roundTrips = LatencyRecorder()
            for engine in engines { roundTrips.merge(engine.value.allRoundTrips) }
            if engines.allSatisfy({ $0.value.wasUnreachable }) {
                promise.fail(
                    SenderRunError.noTargetReachable(
                        targets: targets.map(\.description), waitedSeconds: options.connectTimeout,
                        cause: engines.last?.value.lastFailure ?? "connect timed out"))
            } else {
                promise.succeed(all.summary(summaries, roundTrips: roundTrips))
            }
        }
    }

    static func monotonicNanos() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds) }

    /// Completes with the summary once every event is acked/nak'd, the drain timeout
    /// expires, or `stop()` is called; fails with `SenderRunError` when no connection
    /// ever opened within the connect timeout.
    public var finished: EventLoopFuture<SenderSummary> { promise.futureResult }

    public func start() -> EventLoopFuture<SenderSummary> {
        let (engines, coordinator) = (engines, coordinator)
        engines[0].eventLoop.execute {
            coordinator?.value.lanes = engines
            for engine in engines { engine.value.start(mailbox: SenderMailbox(engine: engine)) }
        }
        return finished
    }

    /// Stops sending: scheduled events not yet acked or nak'd count as failed, events never
    /// scheduled as not sent.
    public func stop() {
        let engines = engines
        engines[0].eventLoop.execute { for engine in engines { engine.value.finish() } }
    }

    /// What `--metrics` exports, read on the control loop.
    public func metricsSnapshot() -> EventLoopFuture<MetricsSnapshot> {
        let engines = engines
        return engines[0].eventLoop.submit { AllTargetsSummary.combine(engines.map { $0.value.metricsSnapshot() }) }
    }

    /// The size of an event document as sent: `event_size`, or the unpadded event when that
    /// is larger (the first events; later ones grow by their sequence digits and clock offset).
    public var eventSizeSent: Int {
        builder.document(sequence: 0, sentNanos: WallClock.nowNanos()).utf8.count
    }

    /// The `settings` of the summary JSON: what shaped the run.
    public func settings(for summary: SenderSummary? = nil) -> [String: Any] {
        var settings = Self.plannedSettings(options)
        settings["event_size"] = summary?.eventBytes?.max ?? eventSizeSent
        settings["event_run_id"] = builder.runID
        return settings
    }

    /// The settings known before a sender exists (without the event size sent and the run id).
    public static func plannedSettings(_ options: SenderOptions) -> [String: Any] {
        let c = options.configuration
        var settings: [String: Any] = [
            "host": c.host, "port": c.port, "events": c.events, "period_s": c.period, "mode": c.mode.rawValue,
            "max_connect": c.maxConnect, "max_connect_scope": c.maxConnectScope.rawValue, "window": c.window,
            "event_size_requested": c.eventSize, "connect_timeout_s": c.connectTimeout, "ack_timeout_s": c.ackTimeout,
            "drain_timeout_s": c.drainTimeout, "targets": c.senderTargets.map(\.description),
            "failover": c.failover.rawValue, "failback": options.failback,
        ]
        // Events per second as scheduled; all at once has no rate.
        settings["rate"] = c.period > 0 ? Double(c.events) / c.period : nil
        if c.burst > 0 {
            settings["burst"] = c.burst
            settings["burst_every_s"] = c.burstEvery
            settings["rate"] = Double(c.burst) / c.burstEvery
        }
        return settings
    }
}

/// One run: the dispatch state machine, the connections' handlers, statistics and timers.
/// Owned by the control loop (it lives in a `NIOLoopBoundBox`); handlers on other loops post
/// it messages, and it reaches a handler by running on that handler's channel loop.
final class SenderEngine {
    enum Message: Sendable {
        /// From the channel initializer: the connection's channel and handler, before connect.
        case channelCreated(ConnectionID, Channel, NIOLoopBound<SenderConnectionHandler>)
        case connected(ConnectionID)
        case written(ConnectionID)
        /// The acks and naks one read brought, in the order they were read.
        case replies(ConnectionID, [Reply])
        case failed(ConnectionID, Error)
        case peerClosed(ConnectionID)
        /// `--failback`: whether a bare connection to this target opened.
        case probed(target: Int, accepted: Bool)
    }

    struct Reply: Sendable {
        var sequence: UInt64
        var accepted: Bool
        var roundTripNanos: Int64
        var nakReason: String?
        var clockSample: ClockSample?
        var documentBytes: Int
    }

    private let options: SenderOptions
    private let builder: TestEventBuilder
    private let group: EventLoopGroup
    private let loop: EventLoop
    private let promise: EventLoopPromise<SenderSummary>
    private let output: @Sendable (String) -> Void
    private let onInterval: (@Sendable (ReportInterval) -> Void)?

    private var state: SenderDispatchState
    /// Which target each connection goes to, and when to move on: see `FailoverPolicy`.
    private var policy: FailoverPolicy
    private var targetOf: [ConnectionID: Int] = [:]
    private var seenBefore = 0
    /// `--failover all`: this engine serves one of the targets; the others share this.
    private let coordinator: NIOLoopBoundBox<AllTargetsCoordinator>?
    /// No connection ever opened within the connect timeout (`--failover all` goes on without it).
    private(set) var wasUnreachable = false
    private var mailbox: SenderMailbox?
    private var startMonotonic: Int64 = 0
    private var handlers: [ConnectionID: NIOLoopBound<SenderConnectionHandler>] = [:]
    /// Channels still connecting: closed by `finish()` so no connect outlives the run.
    private var connecting: [ConnectionID: Channel] = [:]
    private var progress = AckProgress()
    private var roundTripBuckets = ExponentialBuckets()  // --metrics
    private var clock = ClockOffsetEstimator()
    private var lastError: String?
    private var intervalErrors = 0
    /// Where the stored interval began: wall clock and the counters then.
    private var lastStored = (wallNanos: Int64(0), acked: 0, nakked: 0)
    private var reports = 0
    private var eventBytes: SenderSummary.ByteRange?
    private var bursts: BurstTracker?
    /// One pending timer per purpose: a new one replaces (and cancels) the previous.
    private enum Timer { case tick, report, drain, connectDeadline, wakeUp, failoverWakeUp }
    private var timers: [Timer: Scheduled<Void>] = [:]
    private var started = false
    private var stopped = false

    init(
        options: SenderOptions, builder: TestEventBuilder, group: EventLoopGroup, loop: EventLoop,
        promise: EventLoopPromise<SenderSummary>, output: @escaping @Sendable (String) -> Void,
        onInterval: (@Sendable (ReportInterval) -> Void)? = nil,
        coordinator: NIOLoopBoundBox<AllTargetsCoordinator>? = nil
    ) {
        self.coordinator = coordinator
        self.options = options
        self.builder = builder
        self.group = group
        self.loop = loop
        self.promise = promise
        self.output = output
        self.onInterval = onInterval
        state = Self.dispatchState(options, startWallNanos: WallClock.nowNanos())
        policy = Self.failoverPolicy(options, startNanos: VTPSender.monotonicNanos())
    }

    private static func failoverPolicy(_ options: SenderOptions, startNanos: Int64) -> FailoverPolicy {
        FailoverPolicy(
            targets: options.configuration.senderTargets, mode: options.failover, failback: options.failback, startNanos: startNanos)
    }

    private static func dispatchState(_ options: SenderOptions, startWallNanos: Int64) -> SenderDispatchState {
        let schedule = EventSchedule(options)
        return SenderDispatchState(
            mode: options.mode, scope: options.maxConnectScope, maxConnect: options.maxConnect,
            totalEvents: options.events, intervalNanos: schedule.intervalNanos, startWallNanos: startWallNanos,
            window: options.window, burstSize: schedule.burstSize)
    }

    private var now: Int64 { VTPSender.monotonicNanos() }

    func start(mailbox: SenderMailbox) {
        guard !started, !stopped else { return }
        started = true
        self.mailbox = mailbox
        startMonotonic = now
        progress.restart(atNanos: startMonotonic, acked: 0)
        let startWall = WallClock.nowNanos()
        lastStored = (startWall, 0, 0)
        state = Self.dispatchState(options, startWallNanos: startWall)
        policy = Self.failoverPolicy(options, startNanos: startMonotonic)
        if options.burst > 0 {
            bursts = BurstTracker(burstSize: options.burst, intervalNanos: state.intervalNanos, totalEvents: options.events)
        }
        scheduleReport()
        // Fail fast: a receiver never reached by then is unreachable, not slow.
        after(.nanoseconds(DurationRule.nanoseconds(options.connectTimeout)), .connectDeadline) {
            $0.execute($0.state.connectDeadlineReached())
        }
        if options.events == 0 { finish() } else { tick() }
    }

    // MARK: timers (all on the control loop)

    private func after(_ delay: TimeAmount, _ timer: Timer, _ body: @escaping (SenderEngine) -> Void) {
        at(.now() + delay, timer, body)
    }

    private func at(_ deadline: NIODeadline, _ timer: Timer, _ body: @escaping (SenderEngine) -> Void) {
        timers[timer]?.cancel()
        timers[timer] = loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            if !stopped { body(self) }
        }
    }

    private func scheduleReport() {
        // Never below the minimum: a zero-delay timer would spin the control loop.
        let interval = max(
            DurationRule.nanoseconds(options.reportInterval), DurationRule.nanoseconds(DurationRule.minimumReportInterval))
        reports += 1
        // Deadlines from the start, so report times do not drift.
        at(.uptimeNanoseconds(UInt64(max(0, startMonotonic + Int64(reports) * interval))), .report) {
            $0.report()
            $0.scheduleReport()
        }
    }

    // MARK: generator

    private func tick() {
        let now = now
        let total = UInt64(options.events)
        let due = state.dueCount(elapsedNanos: now - startMonotonic)
        execute(state.eventsDue(due, now: now))
        if due < total {
            let nextDue = startMonotonic &+ state.scheduledOffsetNanos(of: due)
            // Batch at high rates: the embedded timestamps stay exact either way.
            at(.uptimeNanoseconds(UInt64(max(nextDue, now + 200_000))), .tick) { $0.tick() }
        } else {
            after(.nanoseconds(DurationRule.nanoseconds(options.drainTimeout)), .drain) {
                $0.output("vtp-sender: drain timeout (\(Human.duration(seconds: $0.options.drainTimeout))) expired; giving up on the backlog")
                $0.finish()
            }
        }
    }

    // MARK: messages from connections

    func receive(_ message: Message) {
        switch message {
        case .channelCreated(let id, let channel, let handler):
            guard !stopped, state.connections[id] != nil else { return channel.close(promise: nil) }
            connecting[id] = channel
            handlers[id] = handler
        case .connected(let id):
            connecting.removeValue(forKey: id)
            guard !stopped, state.connections[id] != nil else { return close(id) }
            execute(state.connected(id, now: now))
        case .written(let id):
            execute(state.written(id, now: now))
        case .replies(let id, let replies):
            guard !stopped else { return }
            let now = now
            let sinceStart = WallClock.nowNanos() - state.startWallNanos
            var actions: [SenderDispatchState.Action] = []
            for reply in replies {
                bursts?.replied(sequence: reply.sequence, accepted: reply.accepted, offsetNanos: sinceStart)
                progress.record(roundTripNanos: reply.roundTripNanos)
                roundTripBuckets.record(nanos: reply.roundTripNanos)
                if let sample = reply.clockSample { clock.add(sample) }
                eventBytes = SenderSummary.ByteRange(
                    min: min(eventBytes?.min ?? .max, reply.documentBytes), max: max(eventBytes?.max ?? 0, reply.documentBytes))
                // A nak saying the event was seen before (a resend after a failover): delivered.
                let delivered = reply.accepted || FailoverPolicy.isSeenBefore(nakReason: reply.nakReason)
                if let reason = reply.nakReason, !delivered { lastError = "nak: \(reason)" }
                if !reply.accepted && delivered { seenBefore += 1 }
                if let target = targetOf[id] {
                    if delivered { executePolicy(policy.acked(target: target, now: now)) } else { policy.nakked(target: target) }
                }
                coordinator?.value.record(sequence: reply.sequence, delivered: delivered)
                actions += state.replied(id, sequence: reply.sequence, accepted: delivered, now: now)
            }
            // One execute: the events these replies free go out together, one write per connection.
            execute(actions)
            coordinator?.value.check()
        case .failed(let id, let error):
            failed(id, error)
        case .peerClosed(let id):
            guard state.connections[id]?.state == .idle else { return failed(id, SenderConnectionError.closedBeforeReply) }
            handlers.removeValue(forKey: id)
            targetOf.removeValue(forKey: id)
            execute(state.peerClosed(id, now: now))
        case .probed(let target, let accepted):
            guard !stopped else { return }
            executePolicy(policy.probed(target: target, accepted: accepted, now: now))
        }
    }

    private func failed(_ id: ConnectionID, _ error: Error) {
        connecting.removeValue(forKey: id)
        // After finish() the closes it issued surface here: not errors of the run.
        guard !stopped, state.connections[id] != nil else { return }
        intervalErrors += 1
        lastError = ErrorText.describe(error)
        let cause = Self.classify(error)
        guard policy.targets.count > 1, let target = targetOf[id] else {
            if let target = targetOf[id] { _ = policy.failed(target: target, cause: FailoverCause(cause), now: now) }
            execute(state.failed(id, cause: cause, now: now))
            coordinator?.value.check()
            return
        }
        let now = now
        let decisions = policy.failed(target: target, cause: FailoverCause(cause), now: now)
        if decisions.contains(where: \.isFailover) {
            // The failover closes this connection with the others to its target.
        } else if target == policy.current {
            // The target in use, with nowhere better to go: retry it after the back-off.
            execute(state.failed(id, cause: cause, now: now))
        } else {
            // A target already left (failback): its events go to the one in use, at once.
            reroute([id], failure: cause, handedOn: false)
        }
        executePolicy(decisions, failure: cause)
    }

    // MARK: failover

    /// `failure`: the error that made the target fail, counted once with the failover.
    private func executePolicy(_ actions: [FailoverPolicy.Action], failure: ConnectionFailure? = nil) {
        for action in actions {
            switch action {
            case .failover(let from, let to, let notBefore):
                output("vtp-sender: \(policy.targets[from]) failed; sending to \(policy.targets[to])")
                state.restartBackoff(notBeforeNanos: notBefore)
                reroute(targetOf.filter { $0.value == from }.map(\.key), failure: failure, handedOn: true)
            case .failback(let from, let to):
                output("vtp-sender: \(policy.targets[to]) accepts connections again; sending to it")
                state.restartBackoff(notBeforeNanos: nil)
                execute(state.retire(targetOf.filter { $0.value == from }.map(\.key), now: now))
            case .probe(let target):
                probe(target)
            case .wakeUp(let at):
                self.at(.uptimeNanoseconds(UInt64(max(0, at))), .failoverWakeUp) {
                    $0.executePolicy($0.policy.wakeUp(now: $0.now))
                }
            }
        }
    }

    /// Closes `ids` and queues their events for the target now in use; `handedOn`: the written
    /// ones are the failover's unacked events.
    private func reroute(_ ids: [ConnectionID], failure: ConnectionFailure?, handedOn: Bool) {
        let (actions, unacked) = state.reroute(ids, failure: failure, now: now)
        if handedOn { policy.requeued(unacked.map(\.sequence)) }
        execute(actions)
    }

    /// `--failback`: a bare TCP connection to an earlier target, closed at once.
    private func probe(_ target: Int) {
        guard let mailbox else { return }
        let address = policy.targets[target]
        ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(DurationRule.nanoseconds(options.connectTimeout)))
            .connect(host: address.host, port: address.port)
            .whenComplete { result in
                if case .success(let channel) = result { channel.close(promise: nil) }
                mailbox.post(.probed(target: target, accepted: (try? result.get()) != nil))
            }
    }

    /// The cause a failure is counted under in reports and the summary.
    static func classify(_ error: Error) -> ConnectionFailure {
        switch error {
        case let e as SenderConnectionError:
            switch e {
            case .ackTimeout: return .ackTimeout
            case .unexpectedReply: return .badReply
            case .closedBeforeReply, .nak: return .closedBeforeAck
            case .connectFailed(let underlying): return ErrorText.connectFailure(underlying)
            }
        case is VTPFramingError, is ByteToMessageDecoderError: return .badReply
        case let io as IOError where [ECONNRESET, EPIPE].contains(io.errnoCode): return .closedBeforeAck
        case ChannelError.eof, ChannelError.ioOnClosedChannel, ChannelError.alreadyClosed: return .closedBeforeAck
        default: return .ioError
        }
    }

    // MARK: actions

    private func execute(_ actions: [SenderDispatchState.Action]) {
        // Sends are gathered per connection and handed over once, after the other actions (or
        // before that connection's close): a window's events are written with one flush.
        var batches: [(id: ConnectionID, events: [PendingEvent])] = []
        for action in actions {
            switch action {
            case .connect(let id): connect(id)
            case .send(let id, let event):
                policy.sending(sequence: event.sequence, to: targetOf[id] ?? policy.current)
                if let index = batches.lastIndex(where: { $0.id == id }) {
                    batches[index].events.append(event)
                } else {
                    batches.append((id, [event]))
                }
            case .close(let id):
                if let index = batches.firstIndex(where: { $0.id == id }) { write(batches.remove(at: index)) }
                close(id)
            case .wakeUp(let at):
                // A later back-off supersedes an earlier one, which would find nothing to do.
                self.at(.uptimeNanoseconds(UInt64(max(0, at))), .wakeUp) { $0.execute($0.state.wakeUp(now: $0.now)) }
            case .finished: finish()
            case .unreachable where coordinator != nil:
                // One of several targets: the others go on; the run fails only if none was reached.
                wasUnreachable = true
                finish()
            case .unreachable:
                let cause = lastError ?? "connect timed out"
                let targets = policy.targets
                finish(
                    failure: targets.count == 1
                        ? SenderRunError.unreachable(
                            host: targets[0].host, port: targets[0].port, waitedSeconds: options.connectTimeout, cause: cause)
                        : SenderRunError.noTargetReachable(
                            targets: targets.map(\.description), waitedSeconds: options.connectTimeout, cause: cause))
            }
        }
        for batch in batches { write(batch) }
    }

    private func write(_ batch: (id: ConnectionID, events: [PendingEvent])) {
        let estimate = clock.estimate.map { (offsetNanos: $0.offsetNanos, errorNanos: $0.errorBoundNanos) }
        handlers[batch.id]?.run { $0.send(batch.events, clockOffset: estimate) }
    }

    private func close(_ id: ConnectionID) {
        targetOf.removeValue(forKey: id)
        let channel = connecting.removeValue(forKey: id)
        if let handler = handlers.removeValue(forKey: id) {
            handler.run { $0.close() }
        } else {
            channel?.close(promise: nil)
        }
    }

    /// Each target's address when its host is an IP literal: connecting to it skips the resolver
    /// and Happy Eyeballs (getaddrinfo per connection was a quarter of per-event mode's CPU).
    private lazy var literalAddresses: [SocketAddress?] = policy.targets.map { try? SocketAddress(ipAddress: $0.host, port: $0.port) }

    private func connect(_ id: ConnectionID) {
        guard let mailbox else { return }
        let (options, builder) = (options, builder)
        let ackTimeout = TimeAmount.nanoseconds(DurationRule.nanoseconds(options.ackTimeout))
        // Only the `setup` scope (per-event) needs to know when a write completed.
        let notifyWrites = options.maxConnectScope == .setup && options.mode == .perEvent
        let window = state.window
        let target = policy.current
        targetOf[id] = target
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(DurationRule.nanoseconds(options.connectTimeout)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // No socket options: SO_REUSEADDR does nothing for a connect without bind
                    // (a setsockopt per connection for nothing), and NIO already sets TCP_NODELAY.
                    let handler = SenderConnectionHandler(
                        id: id, mailbox: mailbox, builder: builder, ackTimeout: ackTimeout, window: window,
                        notifyWrites: notifyWrites, maximumFrameSize: options.maxFrameSize)
                    try channel.pipeline.syncOperations.addHandler(handler)
                    mailbox.post(.channelCreated(id, channel, NIOLoopBound(handler, eventLoop: channel.eventLoop)))
                }
            }
        let (host, port) = (policy.targets[target].host, policy.targets[target].port)
        let connected = literalAddresses[target].map { bootstrap.connect(to: $0) } ?? bootstrap.connect(host: host, port: port)
        connected.whenComplete { result in
            switch result {
            case .success: mailbox.post(.connected(id))
            case .failure(let error): mailbox.post(.failed(id, SenderConnectionError.connectFailed(error)))
            }
        }
    }

    // MARK: reporting

    func metricsSnapshot() -> MetricsSnapshot { SenderMetrics.snapshot(state, roundTrips: roundTripBuckets) }

    private func report() {
        let now = now
        storeInterval()
        var text = "[\(Human.duration(seconds: Double(now - startMonotonic) / 1e9))] sent \(state.sent)"
            + " acked \(state.acked) nak'd \(state.nakked) backlog \(state.backlog) open \(state.openConnections)"
            + " errors \(state.errors)" + SenderSummaryText.causes(state.errorsByCause)
            + (policy.targets.count > 1 || coordinator != nil ? " | to \(policy.currentTarget)" : "")
            + " | " + progress.reportText(acked: state.acked, nowNanos: now)
        if let estimate = clock.estimate {
            text += " | clock offset " + SenderSummaryText.clockOffset(ClockOffsetSummary(estimate, samples: clock.samples))
        }
        if intervalErrors > 0, let lastError { text += " | last error: \(lastError)" }
        intervalErrors = 0
        output(text)
    }

    /// Hands the interval since the last one to `onInterval`: acks and their round trips, naks,
    /// errors, and the backlog and open connections now.
    private func storeInterval() {
        let wall = WallClock.nowNanos()
        defer { lastStored = (wall, state.acked, state.nakked) }
        guard let onInterval else { return }
        onInterval(
            ReportInterval(
                startNanos: lastStored.wallNanos, endNanos: wall, events: state.acked - lastStored.acked,
                latency: progress.currentInterval, naks: state.nakked - lastStored.nakked, errors: intervalErrors,
                backlog: state.backlog, openConnections: state.openConnections))
    }

    /// Every ack round trip of the run so far.
    var allRoundTrips: LatencyRecorder { progress.all }

    /// `--failover all`: this engine's target failed and has not acked since.
    var targetIsFailing: Bool { !stopped && policy.health[0].failed }

    /// The last connection failure, for "unreachable".
    var lastFailure: String? { lastError }

    private func summary() -> SenderSummary {
        let rtt = allRoundTrips
        var summary = SenderSummary(
            events: options.events, sent: state.sent, acked: state.acked, nakked: state.nakked,
            failed: state.scheduledUnfinished, notSent: state.notScheduled, maxBacklog: state.maxBacklog,
            backlogEnd: state.backlog, connectionsOpened: state.connectionsOpened,
            durationSeconds: Double(now - startMonotonic) / 1e9,
            ackRoundTripStatistics: rtt.count > 0 ? rtt.summary : nil, retries: state.resent, errors: state.errors,
            errorsByCause: Dictionary(uniqueKeysWithValues: state.errorsByCause.map { ($0.key.rawValue, $0.value) }),
            mode: options.mode.rawValue, maxConnect: options.maxConnect, maxConnectScope: options.maxConnectScope.rawValue,
            window: options.window, bursts: bursts?.summary, clockOffset: clock.estimate.map { ClockOffsetSummary($0, samples: clock.samples) }, eventBytes: eventBytes)
        summary.failovers = policy.failovers
        summary.failbacks = policy.failbacks
        // Scheduled events no target acked: the unfinished and the nak'd (seen-before naks are acked).
        summary.lost = state.scheduledUnfinished + state.nakked
        summary.duplicatesSent = state.resent
        summary.seenBefore = seenBefore
        summary.targets = policy.targetSummaries
        summary.failoverMode = policy.mode.rawValue
        return summary
    }

    /// Ends the run: closes every connection (and connect under way), completes `finished`.
    func finish(failure: SenderRunError? = nil) {
        guard !stopped else { return }
        for action in state.stop() { if case .close(let id) = action { close(id) } }
        storeInterval()
        stopped = true
        for timer in timers.values { timer.cancel() }
        timers = [:]
        for channel in connecting.values { channel.close(promise: nil) }
        for handler in handlers.values { handler.run { $0.close() } }
        connecting = [:]
        handlers = [:]
        mailbox = nil  // handlers' later messages find the run over; no reference cycle remains
        if let failure { promise.fail(failure) } else { promise.succeed(summary()) }
    }
}

extension NIOLoopBound {
    /// Runs `body` with the value on its loop: at once when already there.
    func run(_ body: @escaping @Sendable (Value) -> Void) {
        if eventLoop.inEventLoop {
            body(value)
        } else {
            eventLoop.execute { body(self.value) }
        }
    }
}

/// One sender connection, owned by its channel's loop (no other thread touches it): writes
/// the events the engine gives it (a window's worth with one flush), matches each ack/nak to its
/// event by ivorn, and posts a read's replies with their round trips, each failure and the close
/// to the engine.
final class SenderConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct InFlight {
        var sequence: UInt64
        var writtenAtNanos: Int64
        var writtenAtWallNanos: Int64
        var bytes: Int
    }

    let id: ConnectionID
    private let mailbox: SenderMailbox
    private let builder: TestEventBuilder
    private let ackTimeout: TimeAmount
    private let notifyWrites: Bool
    private var context: ChannelHandlerContext?
    /// Events written and awaiting replies, by ivorn; each with its own ack deadline.
    /// Keyed by sequence: an ack's Origin is read back to one (`sequence(ofIVORN:)`), cheaper
    /// to hash than the ivorn and exactly as strict.
    private var window: AckWindow<UInt64, InFlight>
    /// One timer for the whole window, set for its earliest deadline.
    private var timeoutTimer: Scheduled<Void>?
    /// This read's replies, posted to the engine together when the read completes.
    private var replies: [SenderEngine.Reply] = []
    /// The engine has heard how this connection ended (or closed it): say nothing more.
    private var reported = false
    /// Frames the connection's bytes (no `ByteToMessageHandler`: see the decoder's extension).
    private var frames: NIOSingleStepByteToMessageProcessor<VTPFrameDecoder>
    /// Inside `frames.process`: a close it causes must not reenter the processor.
    private var processing = false

    init(
        id: ConnectionID, mailbox: SenderMailbox, builder: TestEventBuilder, ackTimeout: TimeAmount, window: Int,
        notifyWrites: Bool, maximumFrameSize: Int
    ) {
        frames = NIOSingleStepByteToMessageProcessor(VTPFrameDecoder(maximumFrameSize: maximumFrameSize))
        self.id = id
        self.mailbox = mailbox
        self.builder = builder
        self.ackTimeout = ackTimeout
        self.window = AckWindow(capacity: window)
        self.notifyWrites = notifyWrites
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// The engine closes the connection: no report of its end is wanted.
    func close() {
        reported = true
        stopWaiting()
        context?.close(promise: nil)
    }

    /// Writes `events` (in order) with one flush; each one's ack deadline starts now.
    func send(_ events: [PendingEvent], clockOffset: (offsetNanos: Int64, errorNanos: Int64)?) {
        guard let context else { return fail(SenderConnectionError.closedBeforeReply) }
        var buffer = context.channel.allocator.buffer(capacity: (builder.eventSize + 800) * events.count)
        var written: [(sequence: UInt64, bytes: Int)] = []
        written.reserveCapacity(events.count)
        for event in events {
            let start = buffer.writerIndex
            builder.writeFramedDocument(
                sequence: event.sequence, sentNanos: event.scheduledNanos, clockOffset: clockOffset, into: &buffer)
            written.append((event.sequence, buffer.writerIndex - start - VTPFraming.headerSize))
        }
        let (now, wall) = (VTPSender.monotonicNanos(), WallClock.nowNanos())
        let deadline = now + ackTimeout.nanoseconds
        for (sequence, bytes) in written {
            let inserted = window.insert(
                InFlight(sequence: sequence, writtenAtNanos: now, writtenAtWallNanos: wall, bytes: bytes),
                for: sequence, deadline: deadline)
            assert(inserted, "the dispatch state never gives a connection more than its window")
        }
        armTimeout()
        guard notifyWrites else {
            // A failed write surfaces through errorCaught/channelInactive.
            context.writeAndFlush(wrapOutboundOut(buffer), promise: nil)
            return
        }
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { [weak self] result in
            guard let self else { return }
            switch result {
            case .success: self.mailbox.post(.written(self.id))
            case .failure(let error): self.fail(error)
            }
        }
    }

    /// Sets the timer for the earliest deadline in the window, unless one is set: acks do not
    /// cancel it; when it fires it re-arms for whatever is then the earliest.
    private func armTimeout() {
        guard timeoutTimer == nil, let deadline = window.nextDeadline, let context else { return }
        timeoutTimer = context.eventLoop.assumeIsolated().scheduleTask(
            deadline: .uptimeNanoseconds(UInt64(max(0, deadline)))
        ) { [weak self] in
            guard let self else { return }
            self.timeoutTimer = nil
            if self.window.hasExpired(now: VTPSender.monotonicNanos()) {
                self.fail(SenderConnectionError.ackTimeout(seconds: Double(self.ackTimeout.nanoseconds) / 1e9))
            } else {
                self.armTimeout()
            }
        }
    }

    private func stopWaiting() {
        timeoutTimer?.cancel()
        timeoutTimer = nil
        _ = window.removeAll()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        processing = true
        defer { processing = false }
        do {
            try frames.process(buffer: unwrapInboundIn(data)) { frame in read(frame, context: context) }
        } catch {
            fail(error)
        }
    }

    private func read(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        let receivedAt = VTPSender.monotonicNanos()
        let message: VTPMessage
        do {
            // Plain acks are read without libxml2 (it was 60% of the sender's CPU per event).
            message = try VTPMessage.parsePlainFirst(frame)
        } catch {
            return fail(SenderConnectionError.unexpectedReply("unparseable (\(ErrorText.describe(error)))"))
        }
        guard case .transport(let transport) = message else {
            return fail(SenderConnectionError.unexpectedReply("a VOEvent instead of an ack"))
        }
        switch transport.role {
        case .ack, .nak:
            guard let sequence = builder.sequence(ofIVORN: transport.origin), let inFlight = window.remove(sequence) else {
                return fail(
                    SenderConnectionError.unexpectedReply(
                        "\(transport.role.rawValue) for \(transport.origin), which is not in flight"))
            }
            var sample: ClockSample?
            if let t1 = transport.integerParam(TransportMessage.receivedNanosParam),
                let t2 = transport.integerParam(TransportMessage.repliedNanosParam)
            {
                sample = ClockSample(sent: inFlight.writtenAtWallNanos, received: t1, replied: t2, ackRead: WallClock.nowNanos())
            }
            replies.append(
                SenderEngine.Reply(
                    sequence: inFlight.sequence, accepted: transport.role == .ack,
                    roundTripNanos: receivedAt - inFlight.writtenAtNanos,
                    nakReason: transport.role == .nak ? (transport.result ?? "no reason given") : nil,
                    clockSample: sample, documentBytes: inFlight.bytes))
        case .iamalive:
            // Keep-alive from the peer: answer with a copy naming us, as VTP asks.
            if let reply = transport.answer(from: builder.localIVO) {
                context.writeAndFlush(wrapOutboundOut(reply.framed(allocator: context.channel.allocator)), promise: nil)
            }
        case .authenticate:
            break  // no authentication scheme is in use; VTP lets us ignore it
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        postReplies()
        context.fireChannelReadComplete()
    }

    /// Hands the replies read so far to the engine (before any failure or close is reported,
    /// so events acked before it count as acked).
    private func postReplies() {
        guard !replies.isEmpty, !reported else { return }
        mailbox.post(.replies(id, replies))
        replies.removeAll(keepingCapacity: true)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !reported, !processing {
            // What a ByteToMessageHandler did at the end: whole frames left are read, a partial one fails.
            do {
                try frames.finishProcessing(seenEOF: true) { frame in read(frame, context: context) }
            } catch {
                fail(error)
            }
        }
        if !reported {
            postReplies()
            reported = true
            mailbox.post(.peerClosed(id))
        }
        stopWaiting()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(error)
    }

    private func fail(_ error: Error) {
        if !reported {
            postReplies()
            reported = true
            mailbox.post(.failed(id, error))
        }
        stopWaiting()
        context?.close(promise: nil)
    }
}
