import ArgumentParser
import BenchConfig
import CommandLineKit
import LiveMetrics
import NIOCore
import NIOPosix
import ResultsStore
import VTPEngine
import WireCheck  // capture: --capture-interface

@main
struct ReceiverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-receiver",
        abstract: "Receive VOEvents over VTP, ack each one, and report one-way latency.",
        discussion: """
            Latency = receiver's wall clock after parsing - the event's embedded send time, so the \
            two hosts' clocks must be synchronised (NTP/PTP). Every --report-interval it prints \
            `Received N events; Latency min/max/avg s (min/max/avg)` (the 2012 benchmark's line), \
            then min/avg/max, percentiles and events/s; an idle receiver says so once instead. \
            SIGINT/SIGTERM print the final summary and write --summary-json before exiting.
            With --subscribe it does not listen: it subscribes to each broker (VTP's subscriber role), \
            acks every event, answers iamalive and authenticate, reconnects with back-off, and counts \
            events arriving through several brokers as duplicates by ivorn.
            Durations take units (500ms, 2s, 1m); a bare number is seconds.
            Exit status: 0 when stopped (by a stop condition or a signal), 2 when it cannot listen, \
            capture or write its files, 64 for bad flags, config or output paths.
            """,
        version: VTPBenchVersion.string)

    @OptionGroup var settings: ReceiverSettings
    @OptionGroup var metrics: MetricsOptions
    @Option(
        name: .customLong("subscribe"),
        help: ArgumentHelp(
            "Subscribe to this broker instead of listening (repeatable): a long-lived connection, reopened with back-off.",
            valueName: "host:port"))
    var subscribe: [String] = []
    @Option(parsing: .unconditional, help: "Stop after receiving this many events.") var stopAfterEvents: Int?
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp("Stop after this long, e.g. 30s, 10m; a bare number is seconds.", valueName: "duration"))
    var stopAfterSeconds: String?
    @Option(
        parsing: .unconditional,
        help: ArgumentHelp(
            "Leave events received within this long of the first event out of the statistics, e.g. 2s; a bare number is seconds.",
            valueName: "duration"))
    var warmupSeconds: String?
    @Option(name: .customLong("summary-json"), help: "Write the final summary as JSON to this file.")
    var summaryJSON: String?
    @Option(name: .customLong("events-csv"), help: "Write one CSV row per event (seq, ivorn, sent_ns, received_ns, latency_s, warmup), each before its ack.")
    var eventsCSV: String?
    // MARK: capture
    @Option(name: .customLong("capture-interface"), help: "Also capture this interface (e.g. lo) on the receiver's port and report wire latency beside app latency (needs root or CAP_NET_RAW).")
    var captureInterface: String?
    @Option(name: .customLong("wire-events-csv"), help: "With --capture-interface: one CSV row per event (ivorn, sent_ns, wire_ns, app_ns, wire/app latency, app - wire).")
    var wireEventsCSV: String?
    @OptionGroup(title: "Stored runs") var store: StoreOptions

    /// Flags over the config file. No validate(): ArgumentParser runs it before it reports
    /// unknown flags, which would then be answered with a complaint about another flag.
    func resolved() throws -> (BenchConfiguration, ReceiverOptions) {
        if wireEventsCSV != nil && captureInterface == nil {
            throw ValidationError("--wire-events-csv needs --capture-interface")
        }
        if captureInterface != nil && !subscribe.isEmpty {
            throw ValidationError("--capture-interface watches the port the receiver listens on; it does not go with --subscribe")
        }
        if let stopAfterEvents, stopAfterEvents < 1 {
            throw ValidationError("--stop-after-events must be at least 1 (got \(stopAfterEvents))")
        }
        let c = try settings.configuration()
        var options = ReceiverOptions(configuration: c)
        options.stopAfterEvents = stopAfterEvents
        options.stopAfterSeconds = try Self.seconds(stopAfterSeconds, flag: "--stop-after-seconds", rule: .positive)
        options.warmupSeconds = try Self.seconds(warmupSeconds, flag: "--warmup-seconds", rule: .nonNegative) ?? 0
        options.eventsCSVPath = eventsCSV
        do {
            options.subscriptions = try subscribe.map { try HostAndPort.parse($0, flag: "--subscribe") }
        } catch let error as HostAndPort.Invalid {
            throw ValidationError(error.description)
        }
        return (c, options)
    }

    /// The same rules as the config file's durations (`DurationRule`).
    static func seconds(_ text: String?, flag: String, rule: DurationRule) throws -> Double? {
        guard let text else { return nil }
        guard let seconds = rule.seconds(from: text) else {
            throw ValidationError("\(flag) must be \(rule.expected), or with a unit: 500ms, 2s, 1m (got \(text))")
        }
        return seconds
    }

    /// What shaped the run, for the summary JSON.
    func settingsJSON(_ c: BenchConfiguration, _ options: ReceiverOptions, port: Int) -> [String: Any] {
        var settings: [String: Any] = [
            "host": c.host, "port": port, "receiver_ivo": c.receiverIVO, "report_interval": c.reportInterval,
            "idle_timeout": c.idleTimeout, "max_frame_size": c.maxFrameSize, "warmup_seconds": options.warmupSeconds,
        ]
        settings["stop_after_events"] = options.stopAfterEvents
        settings["stop_after_seconds"] = options.stopAfterSeconds
        settings["capture_interface"] = captureInterface
        if !options.subscriptions.isEmpty { settings["subscribe"] = options.subscriptions.map(\.description) }
        return settings
    }

    func run() async throws {
        let (c, options) = try resolved()
        let metricsAddress = try metrics.parsed()
        do {
            try OutputPaths.check([
                ("--summary-json", summaryJSON), ("--events-csv", eventsCSV), ("--wire-events-csv", wireEventsCSV),
            ])
        } catch {
            LineOutput.printError("vtp-receiver: \(error)")
            throw ExitStatus.usage
        }
        let metadata = RunMetadata()
        // Every connection is a descriptor: take all the kernel allows before the first accept.
        if case .raised(let from, let to)? = FileDescriptorLimit.raiseToHardLimit() {
            LineOutput.printError("vtp-receiver: raised the open-file limit from \(from) to \(to)")
        }
        let recorder = store.recorder(
            tool: "vtp-receiver", metadata: metadata, config: settingsJSON(c, options, port: c.port),
            warn: { LineOutput.printError("vtp-receiver: \($0)") })
        _ = try? await recorder?.ready.get()
        Diagnostics.bootstrap()
        let logger = Diagnostics.logger("vtp-receiver")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let receiver: VTPReceiver
        let bound: SocketAddress?  // nil: subscribed, not listening
        let wire: LiveWireMonitor?  // capture: opened before binding so no event is missed
        var metricsServer: MetricsServer?
        func cannotRun(_ error: any Error) async -> ExitCode {
            LineOutput.printError("vtp-receiver: \(UserMessage.describe(error))")
            // The attempt is recorded too: that it could not listen is a result.
            (try? await recorder?.finish(summary: ["error": UserMessage.describe(error)]).get())?.print(tool: "vtp-receiver")
            try? await group.shutdownGracefully()
            return ExitStatus.runFailed
        }
        do {
            wire = try captureInterface.map { try LiveWireMonitor(interface: $0, keepsPairs: wireEventsCSV != nil) }
            receiver = try VTPReceiver(
                options: options, group: group, errorOutput: { logger.warning("\($0)") }, observer: wire?.observer,
                onInterval: recorder?.intervalSink)
            // Before binding: a metrics port in use stops the run before any sender connects.
            if let metricsAddress {
                do {
                    metricsServer = try await MetricsServer.start(
                        at: metricsAddress,
                        exporter: MetricsExporter(declaring: ReceiverMetrics.exported, on: group.next()) { [receiver] in
                            receiver.metricsSnapshot()
                        })
                } catch {
                    receiver.stop()  // never started: ends it so nothing is left pending
                    _ = try? await receiver.done.get()
                    throw error
                }
            }
            if options.subscriptions.isEmpty {
                bound = try await receiver.start().get()  // a failed start also ends `done`
            } else {
                LineOutput.print("vtp-receiver: subscribing to " + options.subscriptions.map(\.description).joined(separator: ", "))
                try await receiver.startSubscriptions().get()
                bound = nil
            }
        } catch {
            throw await cannotRun(error)
        }
        do {
            try wire?.start(port: bound?.port ?? c.port)
        } catch {
            receiver.stop()
            _ = try? await receiver.done.get()
            throw await cannotRun(error)
        }
        if let bound { LineOutput.print("vtp-receiver: listening on \(bound.ipAddress ?? c.host):\(bound.port ?? c.port)") }
        if let metricsServer { LineOutput.print("vtp-receiver: metrics at \(metricsServer.url)") }
        if let wire {
            LineOutput.print("vtp-receiver: capturing on \(wire.interface) (\(wire.linkTypeName), \(wire.precision) timestamps)")
            if let note = wire.precisionNote { LineOutput.print("vtp-receiver: note: \(note)") }
        }
        let signals = TerminationSignals { name in
            LineOutput.printError("vtp-receiver: \(name): stopping")
            receiver.stop()
        }
        let summary: ReceiverSummary
        do {
            summary = try await receiver.done.get()
        } catch {
            LineOutput.printError("vtp-receiver: \(UserMessage.describe(error))")
            throw ExitStatus.runFailed
        }
        signals.cancel()
        for line in ReceiverSummaryText.lines(summary) { LineOutput.print(line) }
        let wireSummary = wire?.stop()
        wireSummary?.lines.forEach { LineOutput.print($0) }
        if let error = wire?.captureError { LineOutput.printError("vtp-receiver: \(error)") }
        // Every file is attempted, each failure one line; the exit status says one failed.
        var writeFailed = false
        if let wire, let wireEventsCSV {
            do {
                try WirePairsCSV.write(wire.pairs, to: wireEventsCSV)
            } catch {
                LineOutput.printError("vtp-receiver: \(UserMessage.describe(error))")
                writeFailed = true
            }
        }
        let settings = settingsJSON(c, options, port: bound?.port ?? c.port)
        let full = ReceiverSummaryWithWire(receiver: summary, wire: wireSummary)
        if let summaryJSON {
            do {
                try SummaryJSON.write(full, metadata: metadata, settings: settings, to: summaryJSON)
            } catch {
                LineOutput.printError("vtp-receiver: \(error)")
                writeFailed = true
            }
        }
        if let recorder {
            let object = try? SummaryJSON.object(full, metadata: metadata, settings: settings)
            (try? await recorder.finish(summary: object, config: settings).get())?.print(tool: "vtp-receiver")
        }
        await metricsServer?.stop()
        try? await group.shutdownGracefully()
        if writeFailed { throw ExitStatus.runFailed }
    }
}
