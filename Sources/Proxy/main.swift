import ArgumentParser
import CommandLineKit
import Foundation
import LiveMetrics
import ProxyCore

@main
struct VTPProxy: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-proxy",
        abstract: "Event-driven TCP proxy that logs VTP events and SQL queries and injects latency and faults.",
        discussion: """
            Examples:
              vtp-proxy --listen 127.0.0.1:6432 --upstream 127.0.0.1:5432 --protocol pg --log queries.jsonl
              vtp-proxy --listen 127.0.0.1:8099 --upstream 127.0.0.1:8098 --protocol vtp --latency 50ms --jitter 5ms
              vtp-proxy --config proxies.json --control 127.0.0.1:8474
            Upstream is client → server, downstream is server → client; --latency applies to each \
            direction given by --direction (default both). Jitter: each chunk's delay is drawn \
            uniformly from [latency − jitter, latency + jitter] (never below 0) and never overtakes \
            the chunk before it. Durations take units (50ms, 1.5s, 250us); a bare number is ms.
            Faults beyond the flags (slow_close, timeout, reset_peer, slicer, limit_data, stall, \
            connect_delay) go in --toxic JSON, the config file, or the control endpoint. See docs/proxy.md.
            Exit status: 0 after SIGINT/SIGTERM, 2 when it cannot listen, 64 for bad flags or config.
            """,
        version: VTPBenchVersion.string)

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen: String?

    @Option(help: "Address to forward to, HOST:PORT.")
    var upstream: String?

    @Option(help: "How traffic is read.")
    var `protocol`: ProxyProtocol = .raw

    @Option(help: "JSON-lines log of events/queries ('-' for stdout).")
    var log: String?

    @Option(help: "Name of this proxy on the control endpoint.")
    var name: String = "proxy"

    @Option(help: "Added latency per direction, e.g. 50ms (a bare number is ms).")
    var latency: String?

    @Option(help: "Jitter on the latency, e.g. 5ms: each delay is uniform in latency ± jitter, at least 0.")
    var jitter: String?

    @Option(help: "Bandwidth limit per direction, e.g. 1mbit, 500kbit, 64kbps.")
    var bandwidth: String?

    @Option(help: "Which direction(s) the latency/bandwidth/stall flags apply to.")
    var direction: FlagDirections = .both

    @Option(parsing: .unconditional, help: "Probability (0…1) that a connection gets the flag-given toxics.")
    var toxicity: Double = 1

    @Option(help: "Delay before the upstream connect: a duration (bare number: ms), or 'rtt' for one round trip of the latencies.")
    var connectDelay: String?

    @Option(parsing: .unconditional, help: "Probability per chunk of a loss-like stall (the stream holds for --stall-duration).")
    var stallProbability: Double?

    @Option(help: "Length of a stall (bare number: ms).")
    var stallDuration: String = "200ms"

    @Option(
        help: ArgumentHelp(
            "Extra toxic as JSON (repeatable), e.g. '{\"type\":\"slicer\",\"stream\":\"downstream\",\"attributes\":{\"average_size\":64}}'.",
            valueName: "json"))
    var toxic: [String] = []

    @Option(parsing: .unconditional, help: "PostgreSQL: refuse startup packets longer than this many bytes.")
    var maxStartupLength: Int = 10_000

    @Option(help: "PostgreSQL: close a client that has not sent its whole startup packet within this long (bare number: ms).")
    var startupTimeout: String = "10s"

    @Option(parsing: .unconditional, help: "PostgreSQL: refuse new clients while this many have not finished their startup packet.")
    var maxPendingStartups: Int = ProxySpec.defaultMaxPendingStartups

    @Option(help: "HTTP JSON control endpoint, HOST:PORT (off loopback it needs a token).")
    var control: String?

    @Option(help: ArgumentHelp("Require \"Authorization: Bearer TOKEN\" on the control endpoint.", valueName: "token"))
    var controlToken: String?

    @Option(help: ArgumentHelp("Read the control token from the first line of this file.", valueName: "path"))
    var controlTokenFile: String?

    @OptionGroup var metrics: MetricsOptions

    @Option(help: "Config file with many listeners (JSON: {\"control\", \"proxies\": [...]}).")
    var config: String?

    @Option(parsing: .unconditional, help: "Event-loop threads (default: one per core).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    var commandLine: ProxyCommandLine {
        var line = ProxyCommandLine(threads: threads)
        line.listen = listen
        line.upstream = upstream
        line.protocol = `protocol`
        line.log = log
        line.name = name
        line.latency = latency
        line.jitter = jitter
        line.bandwidth = bandwidth
        line.direction = direction
        line.toxicity = toxicity
        line.connectDelay = connectDelay
        line.stallProbability = stallProbability
        line.stallDuration = stallDuration
        line.toxics = toxic
        line.maxStartupLength = maxStartupLength
        line.startupTimeout = startupTimeout
        line.maxPendingStartups = maxPendingStartups
        line.control = control
        line.controlToken = controlToken
        line.controlTokenFile = controlTokenFile
        line.config = config
        return line
    }

    // No validate(): ArgumentParser runs it before it reports unknown flags, so `--lisen`
    // would be answered with a complaint about --listen instead of its own name.
    func run() async throws {
        let plan: ProxyCommandLine.Plan
        do {
            plan = try commandLine.plan()
        } catch {
            throw ValidationError(error.description)
        }
        let metricsAddress = try metrics.parsed()
        let runtime: ProxyRuntime
        do {
            runtime = try await ProxyRuntime.start(
                specs: plan.specs, control: plan.control, controlToken: plan.controlToken, threads: plan.threads,
                warn: { warn($0) })
        } catch {
            warn("vtp-proxy: \(UserMessage.describe(error))")
            if case ProxyError.cannotListen = error { throw ExitStatus.runFailed }
            throw ExitStatus.usage
        }
        var metricsServer: MetricsServer?
        if let metricsAddress {
            do {
                metricsServer = try await MetricsServer.start(
                    at: metricsAddress,
                    exporter: MetricsExporter(declaring: [], on: runtime.group.next()) { runtime.metricsSnapshot() })
            } catch {
                warn("vtp-proxy: \(error)")
                await runtime.shutdown()
                throw ExitStatus.runFailed
            }
        }
        for line in runtime.readyLines(control: plan.control) { say(line) }
        if let metricsServer { say("vtp-proxy: metrics at \(metricsServer.url)") }
        let signal = await TerminationSignals.wait()
        say("vtp-proxy: \(signal), shutting down")
        await metricsServer?.stop()
        await runtime.shutdown()
        for line in runtime.summaryLines() { say(line) }
    }
}

extension ProxyProtocol: ExpressibleByArgument {}
extension FlagDirections: ExpressibleByArgument {}

/// stdout may be a pipe (block-buffered): write each line through at once.
func say(_ line: String) {
    StandardStreams.out(line)
}

func warn(_ line: String) {
    StandardStreams.err(line)
}
