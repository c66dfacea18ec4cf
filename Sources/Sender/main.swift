import ArgumentParser
import BenchConfig
import CommandLineKit
import LiveMetrics
import NIOCore
import NIOPosix
import Protocol
import ResultsStore
import VTPEngine

struct SenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-sender",
        abstract: "Stream timestamped VOEvents to a VTP receiver and report delivery and ack round trips.",
        discussion: """
            Generates --events events spread evenly over --period. Each event carries the moment it \
            was scheduled, so time spent queued in the sender counts as latency at the receiver. \
            Defaults come from --config (or ./config.json); every flag overrides its key. Durations \
            take units (500ms, 2s, 1m); a bare number is seconds.
            If no connection opens within --connect-timeout the run stops with one line naming the \
            cause; a receiver that was reached and went away is retried until --drain-timeout.
            With --broadcast HOST:PORT it is the broker instead (VTP's broker -> subscriber role): it \
            listens, waits for --wait-subscribers, and sends every event to every connected subscriber, \
            up to --window awaiting acks each; a subscriber silent for --iamalive-interval gets an \
            iamalive, and one that does not answer it, or leaves an ack overdue past --ack-timeout, is \
            dropped. An event counts as acked once every subscriber connected when it was sent acked it.
            Several receivers: repeat --target HOST:PORT (in order of preference). --failover ordered \
            (the default) sends to the first healthy target and, when it refuses, resets or does not \
            ack within --ack-timeout, moves to the next and resends every event written but not acked \
            there; --failover all sends every event to every target (delivered when any acks it).
            Exit status: 0 when every event was acked, 1 otherwise, 2 when the receiver could not be \
            reached (or --broadcast cannot listen), 64 on bad input.
            """,
        version: VTPBenchVersion.string)

    @OptionGroup var settings: SenderSettings
    @OptionGroup var metrics: MetricsOptions
    @Option(parsing: .unconditional, help: "Events per second: sets --period to events/rate (overrides --period).")
    var rate: String?
    @Option(name: .customLong("summary-json"), help: "Write the final summary as JSON to this file.")
    var summaryJSON: String?
    @Flag(help: "Print one event document exactly as it would be sent (sequence 0, timestamp now) and exit.")
    var printEvent = false
    @Option(
        name: .customLong("broadcast"),
        help: ArgumentHelp(
            "Be the broker instead: listen here for subscribers (port 0 picks a free one) and send them every event.",
            valueName: "host:port"))
    var broadcast: String?
    @Option(
        name: .customLong("wait-subscribers"), parsing: .unconditional,
        help: "With --broadcast: start the schedule once this many subscribers are connected (default 1; 0: at once).")
    var waitSubscribers: String?
    @Flag(help: "With --failover ordered: return to an earlier target once it accepts connections again.")
    var failback = false
    @OptionGroup(title: "Stored runs") var store: StoreOptions

    func resolvedConfiguration() throws -> BenchConfiguration {
        var c = try settings.configuration()
        if let rate {
            guard let perSecond = Double(rate), perSecond > 0, perSecond.isFinite else {
                throw ValidationError("--rate must be a positive number of events per second (got \(rate))")
            }
            let period = Double(c.events) / perSecond
            guard DurationRule.nonNegative.accepts(period) else {
                throw ValidationError(
                    "--rate \(rate) spreads \(c.events) events over \(period)s; the longest period is "
                        + "\(DurationRule.format(DurationRule.maximumSeconds))s (one week): raise --rate")
            }
            c.period = period
        }
        return c
    }

    /// `--broadcast` and `--wait-subscribers`, checked; nil without --broadcast.
    func broadcastSettings() throws -> (listen: HostAndPort, waitSubscribers: Int)? {
        guard let broadcast else {
            if waitSubscribers != nil { throw ValidationError("--wait-subscribers needs --broadcast") }
            return nil
        }
        let listen: HostAndPort
        do {
            listen = try HostAndPort.parse(broadcast, flag: "--broadcast", ports: 0...65535)
        } catch let error as HostAndPort.Invalid {
            throw ValidationError(error.description)
        }
        var wait = 1
        if let waitSubscribers {
            guard let n = Int(waitSubscribers), n >= 0 else {
                throw ValidationError("--wait-subscribers must be an integer of at least 0 (got \(waitSubscribers))")
            }
            wait = n
        }
        return (listen, wait)
    }

    func run() throws {
        try OneLineFailure.reporting(tool: "vtp-sender") { try send() }
    }

    private func send() throws {
        let configuration = try resolvedConfiguration()
        let metricsAddress = try metrics.parsed()
        let broadcastSettings = try broadcastSettings()
        if broadcastSettings != nil && metricsAddress != nil {
            throw ValidationError("--metrics does not go with --broadcast (the broker role exports no metrics yet)")
        }
        if broadcastSettings != nil && (!settings.target.isEmpty || failback) {
            throw ValidationError("--target and --failback choose receivers to connect to; --broadcast listens for subscribers")
        }
        if printEvent {
            let builder = TestEventBuilder(localIVO: configuration.localIVO, eventSize: configuration.eventSize)
            print(builder.document(sequence: 0, sentNanos: WallClock.nowNanos()), terminator: "")
            return
        }
        // Before connecting: a typo in a path must not cost the run.
        do {
            try OutputPaths.check([(flag: "--summary-json", path: summaryJSON)])
        } catch {
            throw OneLineFailure(error.description, status: ExitStatus.usage)
        }
        if let (listen, waitSubscribers) = broadcastSettings {
            return try broadcast(configuration, listen: listen, waitSubscribers: waitSubscribers)
        }
        // At most max_connect connections, and never more than events (per-event: one
        // each; persistent: one per unfinished event). The setup scope may exceed
        // max_connect while acks are awaited; this covers its set-ups at least.
        let connections = min(configuration.maxConnect, configuration.events)
        do {
            if case .raised(let from, let to) = try FileDescriptorLimit.ensure(connections: connections) {
                LineOutput.printError("vtp-sender: raised the open-file limit from \(from) to \(to) for \(connections) connections")
            }
        } catch let error as FileDescriptorLimit.TooLow {
            throw ValidationError(error.description)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        defer { try? group.syncShutdownGracefully() }
        let metadata = RunMetadata()
        let options = SenderOptions(configuration: configuration, failback: failback)
        let recorder = store.recorder(
            tool: "vtp-sender", metadata: metadata, config: VTPSender.plannedSettings(options),
            warn: { LineOutput.printError("vtp-sender: \($0)") })
        _ = try? recorder?.ready.wait()
        let sender = VTPSender(options: options, group: group, onInterval: recorder?.intervalSink)
        let metricsServer = try metricsAddress.map { address in
            let exporter = MetricsExporter(declaring: SenderMetrics.exported, on: group.next()) { sender.metricsSnapshot() }
            do {
                return try exporter.loop.makeFutureWithTask { try await MetricsServer.start(at: address, exporter: exporter) }.wait()
            } catch {
                sender.stop()  // never started: ends its run so nothing is left pending
                _ = try? sender.finished.wait()
                recorder?.finishAndWait(summary: ["error": UserMessage.describe(error)]).print(tool: "vtp-sender")
                throw OneLineFailure(UserMessage.describe(error), status: ExitStatus.runFailed)
            }
        }
        defer { if let metricsServer { try? group.next().makeFutureWithTask { await metricsServer.stop() }.wait() } }
        let signals = TerminationSignals { name in
            LineOutput.printError("vtp-sender: \(name): stopping")
            sender.stop()
        }
        defer { signals.cancel() }
        LineOutput.print(SenderSummaryText.startLine(configuration, eventSizeSent: sender.eventSizeSent, runID: sender.builder.runID))
        if let metricsServer { LineOutput.print("vtp-sender: metrics at \(metricsServer.url)") }
        let summary: SenderSummary
        do {
            summary = try sender.start().wait()
        } catch let error as SenderRunError {
            // The attempt is recorded too: that the receiver was unreachable is a result.
            recorder?.finishAndWait(summary: ["error": error.description], config: sender.settings()).print(tool: "vtp-sender")
            throw OneLineFailure(error.description, status: ExitStatus.runFailed)
        }
        try report(summary, metadata: metadata, settings: sender.settings(for: summary), recorder: recorder)
    }

    /// `--broadcast`: the broker role, reported as a sending run is.
    private func broadcast(_ configuration: BenchConfiguration, listen: HostAndPort, waitSubscribers: Int) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        defer { try? group.syncShutdownGracefully() }
        let metadata = RunMetadata()
        let options = SenderOptions(configuration: configuration)
        let broadcaster = VTPBroadcaster(options: options, listen: listen, waitSubscribers: waitSubscribers, group: group)
        let recorder = store.recorder(
            tool: "vtp-sender", metadata: metadata, config: broadcaster.settings(for: nil),
            warn: { LineOutput.printError("vtp-sender: \($0)") })
        _ = try? recorder?.ready.wait()
        let signals = TerminationSignals { name in
            LineOutput.printError("vtp-sender: \(name): stopping")
            broadcaster.stop()
        }
        defer { signals.cancel() }
        LineOutput.print(
            SenderSummaryText.broadcastStartLine(
                configuration, listen: listen, eventSizeSent: broadcaster.eventSizeSent, runID: broadcaster.builder.runID))
        let summary: SenderSummary
        do {
            _ = try broadcaster.start().wait()  // a failed bind also fails `finished`
            summary = try broadcaster.finished.wait()
        } catch let error as TransportError {
            recorder?.finishAndWait(summary: ["error": error.description]).print(tool: "vtp-sender")
            throw OneLineFailure(error.description, status: ExitStatus.runFailed)
        }
        try report(summary, metadata: metadata, settings: broadcaster.settings(for: summary), recorder: recorder)
    }

    /// The summary's lines, JSON and stored run; the exit status it earns.
    private func report(_ summary: SenderSummary, metadata: RunMetadata, settings: [String: Any], recorder: RunRecorder?) throws {
        for line in SenderSummaryText.lines(summary) { LineOutput.print(line) }
        var writeFailure: OneLineFailure?
        if let summaryJSON {
            do {
                try SummaryJSON.write(summary, metadata: metadata, settings: settings, to: summaryJSON)
            } catch {
                writeFailure = OneLineFailure(UserMessage.describe(error), status: ExitStatus.runFailed)
            }
        }
        recorder?.finishAndWait(
            summary: try? SummaryJSON.object(summary, metadata: metadata, settings: settings), config: settings
        ).print(tool: "vtp-sender")
        if let writeFailure { throw writeFailure }
        if summary.acked < summary.events { throw ExitStatus.measurementFailed }
    }
}

SenderCommand.main()
