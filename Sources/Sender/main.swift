import ArgumentParser
import BenchConfig
import CommandLineKit
import NIOCore
import NIOPosix
import Protocol
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
            Exit status: 0 when every event was acked, 1 otherwise, 2 when the receiver could not be \
            reached (or --broadcast cannot listen), 64 on bad input.
            """,
        version: VTPBenchVersion.string)

    @OptionGroup var settings: SenderSettings
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
        let broadcastSettings = try broadcastSettings()
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
        // At most max_connect connections, and never more than events (per-event: one
        // each; persistent: one per unfinished event). The setup scope may exceed
        // max_connect while acks are awaited; this covers its set-ups at least.
        let connections = min(configuration.maxConnect, configuration.events)
        if broadcastSettings == nil {
            do {
                if case .raised(let from, let to) = try FileDescriptorLimit.ensure(connections: connections) {
                    LineOutput.printError("vtp-sender: raised the open-file limit from \(from) to \(to) for \(connections) connections")
                }
            } catch let error as FileDescriptorLimit.TooLow {
                throw ValidationError(error.description)
            }
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        defer { try? group.syncShutdownGracefully() }
        let metadata = RunMetadata()
        let options = SenderOptions(configuration: configuration)
        // One run either way: how to stop it, its outcome, and the settings its summary records.
        let stop: @Sendable () -> Void
        let finished: () throws -> SenderSummary
        let settings: (SenderSummary) -> [String: Any]
        if let (listen, waitSubscribers) = broadcastSettings {
            let broadcaster = VTPBroadcaster(options: options, listen: listen, waitSubscribers: waitSubscribers, group: group)
            (stop, settings) = (broadcaster.stop, broadcaster.settings(for:))
            LineOutput.print(
                SenderSummaryText.broadcastStartLine(
                    configuration, listen: listen, eventSizeSent: broadcaster.eventSizeSent, runID: broadcaster.builder.runID))
            finished = {
                _ = try broadcaster.start().wait()  // a failed bind also fails `finished`
                return try broadcaster.finished.wait()
            }
        } else {
            let sender = VTPSender(options: options, group: group)
            (stop, settings) = (sender.stop, sender.settings(for:))
            LineOutput.print(SenderSummaryText.startLine(configuration, eventSizeSent: sender.eventSizeSent, runID: sender.builder.runID))
            finished = { try sender.start().wait() }
        }
        let signals = TerminationSignals { name in
            LineOutput.printError("vtp-sender: \(name): stopping")
            stop()
        }
        defer { signals.cancel() }
        let summary: SenderSummary
        do {
            summary = try finished()
        } catch let error as SenderRunError {
            throw OneLineFailure(error.description, status: ExitStatus.runFailed)
        } catch let error as TransportError {
            throw OneLineFailure(error.description, status: ExitStatus.runFailed)
        }
        for line in SenderSummaryText.lines(summary) { LineOutput.print(line) }
        if let summaryJSON {
            do {
                try SummaryJSON.write(summary, metadata: metadata, settings: settings(summary), to: summaryJSON)
            } catch {
                throw OneLineFailure(error.description, status: ExitStatus.runFailed)
            }
        }
        if summary.acked < summary.events { throw ExitStatus.measurementFailed }
    }
}

SenderCommand.main()
