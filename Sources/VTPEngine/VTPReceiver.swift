import AcceptGuard
import BenchConfig
import CommandLineKit
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
    /// `--subscribe`: brokers to subscribe to instead of listening.
    public var subscriptions: [HostAndPort] = []

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
    /// `start()` without subscriptions to start, or `start(listening:)` of a subscriber.
    case wrongStart

    public var description: String {
        switch self {
        case .alreadyStarted: return "the receiver was already started"
        case .noLocalAddress: return "the listening socket has no address"
        case .foreignEventLoop: return "a connection landed on an event loop outside the receiver's group"
        case .wrongStart: return "a receiver listens (start) or subscribes (startSubscriptions), as its options say"
        }
    }
}

/// Accepts VTP connections, acks every valid event, naks the rest, and measures
/// latency = (time after parsing) − (the event's embedded send timestamp). With
/// `options.subscriptions` it subscribes to those brokers instead of listening
/// (`BrokerSubscription`): the same statistics, plus duplicates by ivorn across brokers.
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
    private let onInterval: (@Sendable (ReportInterval) -> Void)?
    private let donePromise: EventLoopPromise<ReceiverSummary>

    /// The home loop's state.
    private struct Home: Sendable {
        enum Phase: Sendable { case created, binding, running, stopping, stopped }
        var phase = Phase.created
        var stopWhenBound = false
        var statistics = ReceiverStatistics()
        var serverChannel: Channel?
        var subscriptions: [BrokerSubscription] = []
        var brokerDuplicates: BrokerDuplicates
        var reportTask: RepeatedTask?
        var events = 0
        /// Wall clock at the start of the current report interval.
        var intervalStartNanos = WallClock.nowNanos()
    }

    /// - Parameters:
    ///   - observer: called for every event, on its connection's event loop.
    ///   - onInterval: called with each report interval in which something happened (and the
    ///     last, partial one at stop), on the home loop; it must return at once (the results
    ///     store only posts it to its own loop).
    public init(
        options: ReceiverOptions, group: EventLoopGroup,
        output: @escaping @Sendable (String) -> Void = LineOutput.print,
        errorOutput: @escaping @Sendable (String) -> Void = LineOutput.printError,
        observer: (@Sendable (ReceivedEvent) -> Void)? = nil,
        onInterval: (@Sendable (ReportInterval) -> Void)? = nil
    ) throws {
        self.options = options
        self.group = group
        self.output = output
        self.errorOutput = errorOutput
        self.observer = observer
        self.onInterval = onInterval
        let homeLoop = group.next()
        home = .makeBoxSendingValue(
            Home(brokerDuplicates: BrokerDuplicates(brokers: options.subscriptions.count)), eventLoop: homeLoop)
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
        guard options.subscriptions.isEmpty else { return home.eventLoop.makeFailedFuture(ReceiverError.wrongStart) }
        return home.eventLoop.flatSubmit { self.startOnHome() }
    }

    /// Subscribes to `options.subscriptions`: each broker's connection is opened, and reopened
    /// with back-off whenever it fails, until the receiver stops.
    public func startSubscriptions() -> EventLoopFuture<Void> {
        guard !options.subscriptions.isEmpty else { return home.eventLoop.makeFailedFuture(ReceiverError.wrongStart) }
        return home.eventLoop.submit {
            guard self.home.value.phase == .created else { throw ReceiverError.alreadyStarted }
            let shared = self.connectionShared()
            let idleTimeout = TimeAmount.nanoseconds(DurationRule.nanoseconds(self.options.idleTimeout))
            let subscriptions = self.options.subscriptions.enumerated().map { index, broker in
                BrokerSubscription(
                    broker: broker, index: index, shared: shared, loopState: self.loops[index % self.loops.count],
                    maxFrameSize: self.options.maxFrameSize, idleTimeout: idleTimeout, output: self.output)
            }
            self.home.value.subscriptions = subscriptions
            for subscription in subscriptions { subscription.start() }
            self.running(on: nil)
        }
    }

    private func connectionShared() -> ReceiverIntake.Shared {
        ReceiverIntake.Shared(
            receiverIVO: options.receiverIVO, csv: csv, warmup: warmup, observer: observer, reportError: errorOutput,
            handOver: { [self] in handOver(from: $0) })
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
        let shared = connectionShared()
        let bootstrap = ServerBootstrap(group: home.eventLoop, childGroup: group)
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // TCP_NODELAY: NIO sets it on the listening socket and Linux's accepted sockets inherit
            // it; applying child options costs a generic pass per connection.
            #if !os(Linux)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            #endif
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

    /// Serving: listening on `channel`, or subscribed (nil).
    private func running(on channel: Channel?) {
        // At least 1 ms: a report timer of 0 would spin the home loop.
        let interval = TimeAmount.nanoseconds(max(DurationRule.nanoseconds(options.reportInterval), 1_000_000))
        let reportTask = home.eventLoop.scheduleRepeatedAsyncTask(initialDelay: interval, delay: interval) { _ in
            self.report()
        }
        let stopWhenBound = home.withValue { home in
            home.phase = .running
            home.intervalStartNanos = WallClock.nowNanos()
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
        collect().map { interval in
            let now = WallClock.nowNanos()
            let lines = self.home.value.statistics.report(adding: interval, nowNanos: now)
            for line in lines { self.output(line) }
            self.store(interval, endNanos: now)
        }
    }

    /// Hands an interval already folded into the statistics to `onInterval` (quiet ones are not stored).
    private func store(_ interval: ReceiverTally, endNanos: Int64) {
        let start = home.value.intervalStartNanos
        home.value.intervalStartNanos = endNanos
        guard let onInterval, !interval.isQuiet else { return }
        onInterval(home.value.statistics.storedInterval(interval, startNanos: start, endNanos: endNanos))
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

    /// Everything so far, for `--metrics`: the home loop's totals plus each loop's counts since
    /// the last report, read without taking them (a scrape leaves reports and their histograms
    /// alone). Asked from the home loop like `collect()`, so a report's shares are either still
    /// on their loops or already in the totals when the sum is made: never both, never neither.
    public func metricsSnapshot() -> EventLoopFuture<MetricsSnapshot> {
        home.eventLoop.flatSubmit {
            let shares = self.loops.map { box in box.eventLoop.submit { ReceiverCounts(box.value.tally) } }
            return EventLoopFuture.whenAllSucceed(shares, on: self.home.eventLoop).map { shares in
                let statistics = self.home.value.statistics
                var counts = ReceiverCounts(statistics.totals)
                for share in shares { counts.add(share) }
                return ReceiverMetrics.snapshot(counts, sequences: statistics.sequences)
            }
        }
    }

    /// Events each loop counted since the last report (tests: a scrape must leave them there).
    func loopShares() -> EventLoopFuture<[Int]> {
        EventLoopFuture.whenAllSucceed(loops.map { box in box.eventLoop.submit { box.value.tally.received } }, on: home.eventLoop)
    }

    private func receive(_ handOver: ReceiverLoopState.HandOver) {
        guard handOver.events > 0 else { return }
        let limitReached = home.withValue { home in
            home.statistics.record(sequences: handOver.sequences)
            for event in handOver.brokerEvents { home.brokerDuplicates.record(ivorn: event.ivorn, broker: event.broker) }
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
        // Subscriptions first, so none reconnects while the connections close.
        let subscriptions = home.value.subscriptions
        let subscriptionsStopped = EventLoopFuture.andAllComplete(subscriptions.map { $0.stop() }, on: home.eventLoop)
        serverClosed
            .and(subscriptionsStopped)
            .flatMap { _ in self.closeConnections() }
            .flatMap { self.collect() }
            .flatMap { last in
                self.home.value.statistics.absorb(last)
                self.store(last, endNanos: WallClock.nowNanos())
                return EventLoopFuture.whenAllSucceed(subscriptions.map { $0.summary() }, on: self.home.eventLoop)
            }
            .flatMap { brokers in self.closeCSV().recover { _ in }.map { brokers } }
            .whenComplete { brokers in
                self.home.value.phase = .stopped
                var summary = self.home.value.statistics.summary()
                if !subscriptions.isEmpty, case .success(var brokers) = brokers {
                    for index in brokers.indices {
                        brokers[index].duplicates = self.home.value.brokerDuplicates.duplicates[index]
                    }
                    summary.subscriptions = brokers
                }
                self.donePromise.succeed(summary)
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
