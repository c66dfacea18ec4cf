import AcceptGuard
import BenchConfig
import LatencyStats
import LiveMetrics
import NIOCore
import NIOPosix
import Protocol

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

public enum ReceiverError: Error, CustomStringConvertible {
    case alreadyStarted
    case noLocalAddress
    case foreignEventLoop

    public var description: String {
        switch self {
        case .alreadyStarted: return "the receiver was already started"
        case .noLocalAddress: return "the listening socket has no address"
        case .foreignEventLoop: return "a connection landed on an event loop outside the receiver's group"
        }
    }
}

/// Accepts VTP connections, acks every valid event, naks the rest, and measures
/// latency = (time after parsing) − (the event's embedded send timestamp).
///
/// Each event loop of `group` owns its connections' statistics (`ReceiverLoopState`), touched
/// only on that loop. The home loop, one of them, owns the listening channel, the report timer,
/// the merged `ReceiverStatistics` with every sequence number, and stopping: the other loops
/// hand it their sequence numbers once per loop turn, and their tallies when it asks (at each
/// report and at stop). No lock is taken per event.
public final class VTPReceiver: Sendable {
    public let options: ReceiverOptions
    private let group: EventLoopGroup
    private let home: NIOLoopBoundBox<Home>
    private let loops: [NIOLoopBoundBox<ReceiverLoopState>]
    private let warmup: WarmupWindow
    private let csv: EventsCSVWriter?
    private let output: @Sendable (String) -> Void
    private let errorOutput: @Sendable (String) -> Void
    private let observer: (@Sendable (ReceivedEvent) -> Void)?
    private let donePromise: EventLoopPromise<ReceiverSummary>

    /// The home loop's state.
    private struct Home: Sendable {
        enum Phase: Sendable { case created, binding, running, stopping, stopped }
        var phase = Phase.created
        var stopWhenBound = false
        var statistics = ReceiverStatistics()
        /// Taken from the loops for `--metrics` since the last report; the next report adds it.
        var unreported = ReceiverTally()
        var serverChannel: Channel?
        var reportTask: RepeatedTask?
        var events = 0
    }

    /// - Parameter observer: called for every event, on its connection's event loop.
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
        let homeLoop = group.next()
        home = .makeBoxSendingValue(Home(), eventLoop: homeLoop)
        loops = group.makeIterator().map { .makeBoxSendingValue(ReceiverLoopState(), eventLoop: $0) }
        warmup = WarmupWindow(seconds: options.warmupSeconds)
        csv = try options.eventsCSVPath.map { try EventsCSVWriter(path: $0, reportFailure: errorOutput) }
        donePromise = homeLoop.makePromise(of: ReceiverSummary.self)
    }

    /// Completes with the final summary when a stop condition is met or `stop()` is called.
    public var done: EventLoopFuture<ReceiverSummary> { donePromise.futureResult }

    /// Binds and starts serving; completes with the bound address (port 0 picks a free port),
    /// or fails with `TransportError.cannotBind` (and `done` fails with it too).
    public func start() -> EventLoopFuture<SocketAddress> {
        home.eventLoop.flatSubmit { self.startOnHome() }
    }

    /// Stops listening, closes connections, completes `done`. Idempotent; callable from anywhere.
    public func stop() {
        home.eventLoop.execute { self.stopOnHome() }
    }

    // MARK: on the home loop

    private func startOnHome() -> EventLoopFuture<SocketAddress> {
        guard home.value.phase == .created else { return home.eventLoop.makeFailedFuture(ReceiverError.alreadyStarted) }
        home.value.phase = .binding
        let options = options
        let loops = Dictionary(uniqueKeysWithValues: loops.map { (ObjectIdentifier($0.eventLoop), $0) })
        let idleTimeout = TimeAmount.nanoseconds(DurationRule.nanoseconds(options.idleTimeout))
        let shared = ReceiverConnectionHandler.Shared(
            receiverIVO: options.receiverIVO, csv: csv, warmup: warmup, observer: observer, reportError: errorOutput,
            handOver: { [self] in handOver(from: $0) })
        let bootstrap = ServerBootstrap(group: home.eventLoop, childGroup: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .serverChannelInitializer { [errorOutput] channel in
                channel.eventLoop.makeCompletedFuture {
                    try AcceptGuard.install(on: channel, name: "", report: errorOutput)  // the logger names the tool
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let loop = loops[ObjectIdentifier(channel.eventLoop)] else { throw ReceiverError.foreignEventLoop }
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(ByteToMessageHandler(VTPFrameDecoder(maximumFrameSize: options.maxFrameSize)))
                    // After the decoder, so only whole frames count as reading: a peer trickling a
                    // frame a byte at a time (slowloris) is as idle as a silent one.
                    if idleTimeout > .zero { try sync.addHandler(IdleStateHandler(readTimeout: idleTimeout)) }
                    try sync.addHandler(ReceiverConnectionHandler(shared: shared, loop: loop))
                }
            }
        return bootstrap.bind(host: options.host, port: options.port).hop(to: home.eventLoop)
            .flatMapError { error in
                let failure = TransportError.cannotBind(
                    host: options.host, port: options.port, reason: ErrorText.describe(error))
                self.home.value.phase = .stopped
                self.closeCSV().whenComplete { _ in self.donePromise.fail(failure) }
                return self.home.eventLoop.makeFailedFuture(failure)
            }
            .flatMapThrowing { channel in
                guard let address = channel.localAddress else {
                    channel.close(promise: nil)
                    throw ReceiverError.noLocalAddress
                }
                self.running(on: channel)
                return address
            }
    }

    private func running(on channel: Channel) {
        // At least 1 ms: a report timer of 0 would spin the home loop.
        let interval = TimeAmount.nanoseconds(max(DurationRule.nanoseconds(options.reportInterval), 1_000_000))
        let reportTask = home.eventLoop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { _ in
            self.report()
        }
        let stopWhenBound = home.withValue { home in
            home.phase = .running
            home.serverChannel = channel
            home.reportTask = reportTask
            return home.stopWhenBound
        }
        if let seconds = options.stopAfterSeconds {
            home.eventLoop.scheduleTask(in: .nanoseconds(DurationRule.nanoseconds(seconds))) { self.stopOnHome() }
        }
        if stopWhenBound { stopOnHome() }
    }

    private func report() -> EventLoopFuture<Void> {
        collect().map { latest in
            var interval = self.home.value.unreported.take()
            interval.merge(latest)
            let lines = self.home.value.statistics.report(adding: interval, nowNanos: WallClock.nowNanos())
            for line in lines { self.output(line) }
        }
    }

    /// Takes every loop's share since the last call, with the sequence numbers not yet handed over.
    private func collect() -> EventLoopFuture<ReceiverTally> {
        let shares = loops.map { box in
            box.eventLoop.submit { box.withValue { state in (state.tally.take(), state.takeHandOver()) } }
        }
        return EventLoopFuture.whenAllSucceed(shares, on: home.eventLoop).map { shares in
            var merged = ReceiverTally()
            for (tally, handOver) in shares {
                self.receive(handOver)
                merged.merge(tally)
            }
            return merged
        }
    }

    /// Everything so far, for `--metrics`: the loops' shares are taken now (kept for the next
    /// report), so a scrape never waits for a report and never counts an event twice.
    public func metricsSnapshot() -> EventLoopFuture<MetricsSnapshot> {
        home.eventLoop.flatSubmit {
            self.collect().map { latest in
                self.home.withValue { home in
                    home.unreported.merge(latest)
                    return ReceiverMetrics.snapshot(
                        totals: home.statistics.totals, unreported: home.unreported, sequences: home.statistics.sequences)
                }
            }
        }
    }

    private func receive(_ handOver: ReceiverLoopState.HandOver) {
        guard handOver.events > 0 else { return }
        let limitReached = home.withValue { home in
            home.statistics.record(sequences: handOver.sequences)
            home.events += handOver.events
            return options.stopAfterEvents.map { home.events >= $0 } ?? false
        }
        if limitReached { stopOnHome() }
    }

    private func stopOnHome() {
        switch home.value.phase {
        case .created:
            home.value.phase = .stopped
            closeCSV().whenComplete { _ in self.donePromise.succeed(self.home.value.statistics.summary()) }
            return
        case .binding:
            home.value.stopWhenBound = true
            return
        case .running:
            break
        case .stopping, .stopped:
            return
        }
        home.value.phase = .stopping
        home.value.reportTask?.cancel()
        let serverClosed =
            home.value.serverChannel.map { $0.close().recover { _ in } } ?? home.eventLoop.makeSucceededVoidFuture()
        serverClosed
            .flatMap { self.closeConnections() }
            .flatMap { self.collect() }
            .flatMap { last in
                self.home.value.statistics.absorb(self.home.value.unreported.take())
                self.home.value.statistics.absorb(last)
                return self.closeCSV()
            }
            .whenComplete { _ in
                self.home.value.phase = .stopped
                self.donePromise.succeed(self.home.value.statistics.summary())
            }
    }

    private func closeConnections() -> EventLoopFuture<Void> {
        let closed = loops.map { box in
            box.eventLoop.flatSubmit {
                EventLoopFuture.andAllComplete(box.value.connections.values.map { $0.close() }, on: box.eventLoop)
            }
        }
        return EventLoopFuture.andAllComplete(closed, on: home.eventLoop)
    }

    private func closeCSV() -> EventLoopFuture<Void> {
        csv?.close(on: home.eventLoop) ?? home.eventLoop.makeSucceededVoidFuture()
    }

    // MARK: on a connection's loop

    /// Hands a loop's pending sequence numbers to the home loop.
    private func handOver(from box: NIOLoopBoundBox<ReceiverLoopState>) {
        let handOver = box.value.takeHandOver()
        guard handOver.events > 0 else { return }
        if home.eventLoop.inEventLoop {
            receive(handOver)
        } else {
            home.eventLoop.execute { self.receive(handOver) }
        }
    }
}
