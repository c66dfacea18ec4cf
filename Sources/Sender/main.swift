import ArgumentParser
import BenchConfig
import Dispatch
import Foundation
import LatencyStats
import NIOCore
import NIOPosix
import VTPProtocol
import VTPTransport

struct SenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-sender",
        abstract: "Stream timestamped VOEvents to a VTP receiver and report delivery and ack round trips.",
        discussion: """
            Generates --events events spread evenly over --period seconds. Each event carries the \
            moment it was scheduled, so time spent queued in the sender counts as latency at the \
            receiver. Defaults come from --config (or ./config.json); every flag overrides its key.
            Exit status: 0 when every event was acked, 1 otherwise, 64 on bad input.
            """)

    @Option(help: "JSON configuration file (default: ./config.json if present, else built-in defaults).")
    var config: String?
    @Option(help: "Receiver host. [config: host]") var host: String?
    @Option(help: "Receiver port. [config: port]") var port: Int?
    @Option(help: "Maximum simultaneous TCP connections. [config: max_connect]") var maxConnect: Int?
    @Option(help: "What --max-connect limits: connection (whole connections, default) or setup (connection set-ups only, as the 2012 benchmark). [config: max_connect_scope]")
    var maxConnectScope: String?
    @Option(help: "Number of events to send. [config: events]") var events: Int?
    @Option(help: "Seconds over which the events are spread evenly; 0 sends them all at once. [config: period]")
    var period: Double?
    @Option(help: "Events per second: sets --period to events/rate (overrides --period).") var rate: Double?
    @Option(help: "per-event (connect, send, await ack, close) or persistent (long-lived connections). [config: mode]")
    var mode: String?
    @Option(help: "Size of each event document in bytes (padded). [config: event_size]") var eventSize: Int?
    @Option(help: "Seconds between report lines. [config: report_interval]") var reportInterval: Double?
    @Option(name: .customLong("local-ivo"), help: "IVO identifier the event ivorns are built from. [config: local_ivo]")
    var localIVO: String?
    @Option(help: "Seconds to wait for a TCP connection. [config: connect_timeout]") var connectTimeout: Double?
    @Option(help: "Seconds to wait for an event's ack before retrying it. [config: ack_timeout]") var ackTimeout: Double?
    @Option(help: "Seconds to keep delivering the backlog after the last event is scheduled. [config: drain_timeout]")
    var drainTimeout: Double?
    @Option(name: .customLong("summary-json"), help: "Write the final summary as JSON to this file.")
    var summaryJSON: String?
    @Flag(help: "Print one event document exactly as it would be sent (sequence 0, timestamp now) and exit.")
    var printEvent = false

    func resolvedConfiguration() throws -> BenchConfiguration {
        var c = try BenchConfiguration.resolve(path: config)
        if let host { c.host = host }
        if let port { c.port = port }
        if let maxConnect { c.maxConnect = maxConnect }
        if let events { c.events = events }
        if let period { c.period = period }
        if let eventSize { c.eventSize = eventSize }
        if let reportInterval { c.reportInterval = reportInterval }
        if let localIVO { c.localIVO = localIVO }
        if let connectTimeout { c.connectTimeout = connectTimeout }
        if let ackTimeout { c.ackTimeout = ackTimeout }
        if let drainTimeout { c.drainTimeout = drainTimeout }
        if let mode {
            guard let m = SenderMode(rawValue: mode) else {
                throw ValidationError("--mode must be per-event or persistent (got \"\(mode)\")")
            }
            c.mode = m
        }
        if let maxConnectScope {
            guard let s = MaxConnectScope(rawValue: maxConnectScope) else {
                throw ValidationError("--max-connect-scope must be connection or setup (got \"\(maxConnectScope)\")")
            }
            c.maxConnectScope = s
        }
        if let rate {
            guard rate > 0, rate.isFinite else { throw ValidationError("--rate must be a positive number of events per second") }
            let period = Double(c.events) / rate
            guard DurationRule.nonNegative.accepts(period) else {
                throw ValidationError(
                    "--rate \(rate) spreads \(c.events) events over \(period)s; the longest period is "
                        + "\(DurationRule.format(DurationRule.maximumSeconds))s (one week): raise --rate")
            }
            c.period = period
        }
        try c.validate(source: "settings (config file + flags)")
        return c
    }

    func run() throws {
        let configuration: BenchConfiguration
        do {
            configuration = try resolvedConfiguration()
        } catch let error as ConfigError {
            throw ValidationError(error.description)
        }
        if printEvent {
            let builder = TestEventBuilder(localIVO: configuration.localIVO, eventSize: configuration.eventSize)
            print(builder.document(sequence: 0, sentNanos: WallClock.nowNanos()), terminator: "")
            return
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
        let sender = VTPSender(options: SenderOptions(configuration: configuration), group: group)
        let signals = SignalWatcher { name in
            LineOutput.printError("vtp-sender: \(name): stopping")
            sender.stop()
        }
        defer { signals.cancel() }
        LineOutput.print(
            "vtp-sender: \(configuration.events) events over \(Fixed.format(configuration.period, decimals: 3))s to "
                + "\(configuration.host):\(configuration.port), mode \(configuration.mode.rawValue), "
                + "max_connect \(configuration.maxConnect) (scope \(configuration.maxConnectScope.rawValue)), "
                + "\(configuration.eventSize)-byte events, run \(sender.builder.runID)")
        let summary = try sender.start().wait()
        for line in SenderSummaryText.lines(summary) { LineOutput.print(line) }
        if let summaryJSON {
            do {
                try SummaryFile.write(summary, to: summaryJSON)
            } catch {
                LineOutput.printError("vtp-sender: \(error)")
                throw ExitCode(1)
            }
        }
        if summary.acked < summary.events { throw ExitCode(1) }
    }
}

SenderCommand.main()
