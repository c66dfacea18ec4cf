import ArgumentParser
import Foundation
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
            Upstream is client → server, downstream is server → client; --latency applies to each
            direction given by --direction (default both). Faults beyond the flags (slow_close,
            timeout, reset_peer, slicer, limit_data, stall, connect_delay) go in --toxic JSON, the
            config file, or the control endpoint. See docs/proxy.md.
            """)

    @Option(help: "Address to listen on, HOST:PORT (port 0 picks a free one).")
    var listen: String?

    @Option(help: "Address to forward to, HOST:PORT.")
    var upstream: String?

    @Option(help: "How traffic is read: vtp, pg or raw.")
    var `protocol`: String = "raw"

    @Option(help: "JSON-lines log of events/queries ('-' for stdout).")
    var log: String?

    @Option(help: "Name of this proxy on the control endpoint.")
    var name: String = "proxy"

    @Option(help: "Added latency per direction, e.g. 50ms.")
    var latency: String?

    @Option(help: "Uniform jitter (±) on the latency, e.g. 5ms.")
    var jitter: String?

    @Option(help: "Bandwidth limit per direction, e.g. 1mbit, 500kbit, 64kbps.")
    var bandwidth: String?

    @Option(help: "Which direction(s) the latency/bandwidth flags apply to: upstream, downstream or both.")
    var direction: String = "both"

    @Option(help: "Probability (0…1) that a connection gets the flag-given toxics.")
    var toxicity: Double = 1

    @Option(help: "Delay before the upstream connect: a duration, or 'rtt' for one round trip of the latencies.")
    var connectDelay: String?

    @Option(help: "Probability per chunk of a loss-like stall (the stream holds for --stall-duration).")
    var stallProbability: Double?

    @Option(help: "Length of a stall.")
    var stallDuration: String = "200ms"

    @Option(
        help: ArgumentHelp(
            "Extra toxic as JSON (repeatable), e.g. '{\"type\":\"slicer\",\"stream\":\"downstream\",\"attributes\":{\"average_size\":64}}'.",
            valueName: "json"))
    var toxic: [String] = []

    @Option(help: "PostgreSQL: refuse startup packets longer than this many bytes.")
    var maxStartupLength: Int = 10_000

    @Option(help: "PostgreSQL: close a client that has not sent its whole startup packet within this long.")
    var startupTimeout: String = "10s"

    @Option(help: "PostgreSQL: refuse new clients while this many have not finished their startup packet.")
    var maxPendingStartups: Int = ProxySpec.defaultMaxPendingStartups

    @Option(help: "HTTP JSON control endpoint (loopback), HOST:PORT.")
    var control: String?

    @Option(help: "Config file with many listeners (JSON: {\"control\", \"proxies\": [...]}).")
    var config: String?

    @Option(help: "Event-loop threads (default: one per core).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if config == nil, listen == nil || upstream == nil {
            throw ValidationError("give --listen and --upstream (or --config FILE)")
        }
        if (listen == nil) != (upstream == nil) {
            throw ValidationError("--listen and --upstream go together")
        }
        guard ProxyProtocol(rawValue: `protocol`) != nil else {
            throw ValidationError("--protocol must be vtp, pg or raw (got \"\(`protocol`)\")")
        }
        guard ["upstream", "downstream", "both"].contains(direction) else {
            throw ValidationError("--direction must be upstream, downstream or both (got \"\(direction)\")")
        }
        guard (0...1).contains(toxicity) else { throw ValidationError("--toxicity must be in 0…1") }
        if let stallProbability, !(0...1).contains(stallProbability) {
            throw ValidationError("--stall-probability must be in 0…1")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be ≥ 1") }
        guard maxPendingStartups >= 1 else { throw ValidationError("--max-pending-startups must be ≥ 1") }
    }

    /// A duration flag in milliseconds; the error names the flag.
    private func milliseconds(_ flag: String, _ text: String) throws -> Double {
        do {
            return Double(try Units.parseDuration(text)) / 1e6
        } catch {
            throw ValidationError("\(flag): \(error)")
        }
    }

    /// Checks a toxic built from flags now, so a value out of range is a usage error that
    /// names the flag rather than a failure at start-up.
    private func checked(_ toxic: Toxic, flags: String) throws -> Toxic {
        do {
            return try toxic.validated()
        } catch {
            throw ValidationError("\(flags): \(error)")
        }
    }

    func commandLineSpec() throws -> ProxySpec? {
        guard let listen, let upstream else { return nil }
        let directions: [StreamDirection] =
            direction == "both" ? [.upstream, .downstream] : [StreamDirection(rawValue: direction)!]
        var toxics: [Toxic] = []
        let latencyMs = try milliseconds("--latency", latency ?? "0ms")
        let jitterMs = try milliseconds("--jitter", jitter ?? "0ms")
        let stallMs = try milliseconds("--stall-duration", stallDuration)
        let startupTimeoutNanos: Int64
        do {
            startupTimeoutNanos = try Units.parseDuration(startupTimeout)
        } catch {
            throw ValidationError("--startup-timeout: \(error)")
        }
        guard startupTimeoutNanos > 0, startupTimeoutNanos <= 3_600_000_000_000 else {
            throw ValidationError("--startup-timeout must be more than 0 and at most 1 hour (got \(startupTimeout))")
        }
        for stream in directions {
            if latency != nil || jitter != nil {
                toxics.append(
                    try checked(
                        Toxic(
                            name: "latency_\(stream.rawValue)", type: .latency, stream: stream, toxicity: toxicity,
                            attributes: ["latency": latencyMs, "jitter": jitterMs]),
                        flags: "--latency/--jitter"))
            }
            if let bandwidth {
                let rate: Double
                do {
                    rate = try Units.parseBandwidth(bandwidth) / 1000
                } catch {
                    throw ValidationError("--bandwidth: \(error)")
                }
                toxics.append(
                    try checked(
                        Toxic(
                            name: "bandwidth_\(stream.rawValue)", type: .bandwidth, stream: stream, toxicity: toxicity,
                            attributes: ["rate": rate]),
                        flags: "--bandwidth"))
            }
            if let stallProbability {
                toxics.append(
                    try checked(
                        Toxic(
                            name: "stall_\(stream.rawValue)", type: .stall, stream: stream,
                            attributes: ["probability": stallProbability, "duration": stallMs]),
                        flags: "--stall-probability/--stall-duration"))
            }
        }
        if let connectDelay {
            toxics.append(
                try checked(
                    Toxic(
                        name: "connect_delay", type: .connectDelay, stream: .upstream, toxicity: toxicity,
                        attributes: connectDelay == "rtt" ? [:] : ["delay": try milliseconds("--connect-delay", connectDelay)]),
                    flags: "--connect-delay"))
        }
        for text in toxic {
            let decoded: Toxic
            do {
                decoded = try JSONDecoder().decode(Toxic.self, from: Data(text.utf8))
            } catch {
                throw ValidationError("--toxic \(text): not a toxic (\(error))")
            }
            toxics.append(try checked(decoded, flags: "--toxic \(text)"))
        }
        let spec = ProxySpec(
            name: name, listen: try HostPort(parsing: listen), upstream: try HostPort(parsing: upstream),
            protocol: ProxyProtocol(rawValue: `protocol`)!, log: log, toxics: toxics,
            maxStartupLength: maxStartupLength, startupTimeoutNanos: startupTimeoutNanos,
            maxPendingStartups: maxPendingStartups)
        do {
            try spec.validate()
        } catch {
            throw ValidationError("\(error)")
        }
        return spec
    }

    func run() async throws {
        var specs: [ProxySpec] = []
        var controlAddress: HostPort? = nil
        do {
            if let config {
                let file = try ProxyFileConfig.load(path: config)
                specs += file.proxies
                controlAddress = file.control
            }
            if let spec = try commandLineSpec() { specs.append(spec) }
            if let control { controlAddress = try HostPort(parsing: control) }
        } catch let error as ProxyError {
            throw ValidationError(error.description)
        }
        let runtime: ProxyRuntime
        do {
            runtime = try await ProxyRuntime.start(specs: specs, control: controlAddress, threads: threads)
        } catch let error as ProxyError {
            FileHandle.standardError.write(Data("vtp-proxy: \(error)\n".utf8))
            throw ExitCode(1)
        }
        for listener in runtime.listeners {
            let toxics = listener.toxics.map { "\($0.name)" }.joined(separator: ",")
            say(
                "vtp-proxy: [\(listener.spec.name)] listening on \(listener.boundAddress ?? listener.spec.listen)"
                    + " -> \(listener.spec.upstream) (\(listener.spec.protocol.rawValue))"
                    + (toxics.isEmpty ? "" : " toxics: \(toxics)")
                    + (listener.spec.log.map { " log: \($0)" } ?? ""))
        }
        if let address = controlAddress, !["127.", "::1", "localhost"].contains(where: { address.host.hasPrefix($0) }) {
            FileHandle.standardError.write(
                Data("vtp-proxy: warning: the control endpoint on \(address) has no authentication; keep it on loopback\n".utf8))
        }
        if let control = runtime.control, let address = controlAddress {
            say("vtp-proxy: control on http://\(address.host):\(control.boundPort ?? address.port)/proxies")
        }
        await waitForTerminationSignal()
        say("vtp-proxy: shutting down")
        await runtime.shutdown()
    }
}

/// SIGINT/SIGTERM end the proxy cleanly: logs flushed, connections closed.
func waitForTerminationSignal() async {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let queue = DispatchQueue(label: "vtp-proxy.signals")
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        let fired = NSLock()
        nonisolated(unsafe) var resumed = false
        for number in [SIGINT, SIGTERM] {
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                fired.lock()
                defer { fired.unlock() }
                guard !resumed else { return }
                resumed = true
                continuation.resume()
            }
            source.resume()
            signalSources.append(source)
        }
    }
}

/// Kept alive for the life of the process (a released source stops delivering).
nonisolated(unsafe) var signalSources: [DispatchSourceSignal] = []

/// stdout may be a pipe (block-buffered): write each line through at once.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
