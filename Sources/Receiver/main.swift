import ArgumentParser
import BenchConfig
import NIOCore
import NIOPosix
import VTPTransport
import WireCheck  // capture: --capture-interface

struct ReceiverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-receiver",
        abstract: "Receive VOEvents over VTP, ack each one, and report one-way latency.",
        discussion: """
            Latency = receiver's wall clock after parsing - the event's embedded send time, so the \
            two hosts' clocks must be synchronised (NTP/PTP). Every --report-interval seconds it \
            prints `Received N events; Latency min/max/avg s (min/max/avg)` and percentiles. \
            SIGINT/SIGTERM print the final summary and write --summary-json before exiting.
            """)

    @Option(help: "JSON configuration file (default: ./config.json if present, else built-in defaults).")
    var config: String?
    @Option(help: "Address to listen on. [config: host]") var host: String?
    @Option(help: "Port to listen on; 0 picks a free port and prints it. [config: port]") var port: Int?
    @Option(help: "Seconds between report lines. [config: report_interval]") var reportInterval: Double?
    @Option(name: .customLong("receiver-ivo"), help: "This receiver's IVO, sent as Response in acks. [config: receiver_ivo]")
    var receiverIVO: String?
    @Option(help: "Close connections silent for this many seconds; 0 = never. [config: idle_timeout]")
    var idleTimeout: Double?
    @Option(help: "Largest accepted frame in bytes. [config: max_frame_size]") var maxFrameSize: Int?
    @Option(help: "Stop after receiving this many events.") var stopAfterEvents: Int?
    @Option(help: "Stop after this many seconds.") var stopAfterSeconds: Double?
    @Option(help: "Leave events of the first S seconds (from the first event) out of the statistics.")
    var warmupSeconds: Double = 0
    @Option(name: .customLong("summary-json"), help: "Write the final summary as JSON to this file.")
    var summaryJSON: String?
    @Option(name: .customLong("events-csv"), help: "Write one CSV row per event (seq, ivorn, sent_ns, received_ns, latency_s).")
    var eventsCSV: String?
    // MARK: capture
    @Option(name: .customLong("capture-interface"), help: "Also capture this interface (e.g. lo) on the receiver's port and report wire latency beside app latency (needs root or CAP_NET_RAW).")
    var captureInterface: String?
    @Option(name: .customLong("wire-events-csv"), help: "With --capture-interface: one CSV row per event (ivorn, sent_ns, wire_ns, app_ns, wire/app latency, app - wire).")
    var wireEventsCSV: String?

    func validate() throws {
        if wireEventsCSV != nil && captureInterface == nil {
            throw ValidationError("--wire-events-csv needs --capture-interface")
        }
        if let stopAfterEvents, stopAfterEvents < 1 { throw ValidationError("--stop-after-events must be at least 1") }
        // The same limits as the config's durations (DurationRule): finite, at most a week.
        if let stopAfterSeconds, !DurationRule.positive.accepts(stopAfterSeconds) {
            throw ValidationError("--stop-after-seconds must be \(DurationRule.positive.expected) (got \(stopAfterSeconds))")
        }
        if !DurationRule.nonNegative.accepts(warmupSeconds) {
            throw ValidationError("--warmup-seconds must be \(DurationRule.nonNegative.expected) (got \(warmupSeconds))")
        }
    }

    func run() throws {
        var c: BenchConfiguration
        do {
            c = try BenchConfiguration.resolve(path: config)
            if let host { c.host = host }
            if let port { c.port = port }
            if let reportInterval { c.reportInterval = reportInterval }
            if let receiverIVO { c.receiverIVO = receiverIVO }
            if let idleTimeout { c.idleTimeout = idleTimeout }
            if let maxFrameSize { c.maxFrameSize = maxFrameSize }
            try c.validate(source: "settings (config file + flags)")
        } catch let error as ConfigError {
            throw ValidationError(error.description)
        }
        var options = ReceiverOptions(configuration: c)
        options.stopAfterEvents = stopAfterEvents
        options.stopAfterSeconds = stopAfterSeconds
        options.warmupSeconds = warmupSeconds
        options.eventsCSVPath = eventsCSV

        Diagnostics.bootstrap()
        let logger = Diagnostics.logger("vtp-receiver")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        defer { try? group.syncShutdownGracefully() }
        let receiver: VTPReceiver
        let address: String
        let wire: LiveWireMonitor?  // capture: opened before binding so no event is missed
        do {
            wire = try captureInterface.map { try LiveWireMonitor(interface: $0, keepsPairs: wireEventsCSV != nil) }
            receiver = try VTPReceiver(
                options: options, group: group, errorOutput: { logger.warning("\($0)") }, observer: wire?.observer)
            let bound = try receiver.start()
            address = "\(bound.ipAddress ?? c.host):\(bound.port ?? c.port)"
            try wire?.start(port: bound.port ?? c.port)
        } catch {
            LineOutput.printError("vtp-receiver: \(error)")
            throw ExitCode(1)
        }
        LineOutput.print("vtp-receiver: listening on \(address)")
        if let wire {
            LineOutput.print("vtp-receiver: capturing on \(wire.interface) (\(wire.linkTypeName), \(wire.precision) timestamps)")
            if let note = wire.precisionNote { LineOutput.print("vtp-receiver: note: \(note)") }
        }
        let signals = SignalWatcher { name in
            LineOutput.printError("vtp-receiver: \(name): stopping")
            receiver.stop()
        }
        defer { signals.cancel() }
        let summary = try receiver.done.wait()
        for line in ReceiverSummaryText.lines(summary) { LineOutput.print(line) }
        let wireSummary = wire?.stop()
        wireSummary?.lines.forEach { LineOutput.print($0) }
        if let error = wire?.captureError { LineOutput.printError("vtp-receiver: \(error)") }
        if let wire, let wireEventsCSV {
            do {
                try WirePairsCSV.write(wire.pairs, to: wireEventsCSV)
            } catch {
                LineOutput.printError("vtp-receiver: \(error)")
                throw ExitCode(1)
            }
        }
        if let summaryJSON {
            do {
                try SummaryFile.write(ReceiverSummaryWithWire(receiver: summary, wire: wireSummary), to: summaryJSON)
            } catch {
                LineOutput.printError("vtp-receiver: \(error)")
                throw ExitCode(1)
            }
        }
    }
}

ReceiverCommand.main()
