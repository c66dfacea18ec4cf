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
            Several receivers: repeat --target HOST:PORT (in order of preference). --failover ordered \
            (the default) sends to the first healthy target and, when it refuses, resets or does not \
            ack within --ack-timeout, moves to the next and resends every event written but not acked \
            there; --failover all sends every event to every target (delivered when any acks it).
            Exit status: 0 when every event was acked, 1 otherwise, 2 when the receiver could not be \
            reached, 64 on bad input.
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

    func run() throws {
        try OneLineFailure.reporting(tool: "vtp-sender") { try send() }
    }

    private func send() throws {
        let configuration = try resolvedConfiguration()
        let metricsAddress = try metrics.parsed()
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
        for line in SenderSummaryText.lines(summary) { LineOutput.print(line) }
        let settings = sender.settings(for: summary)
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
