import ArgumentParser
import CommandLineKit
import DelayLink
import Foundation

struct Netem: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-netem",
        abstract: "Userspace delay link between two network namespaces (for kernels without netem).",
        discussion: """
            Opens two TUN devices, moves one into each namespace with point-to-point addresses and \
            forwards packets between them, holding each for the one-way delay. Stops on SIGINT/SIGTERM \
            (or after --duration), prints how accurately packets were released, and removes the devices \
            (and the namespaces, if it created them). Delays take units (250ms, 0.25s; a bare number is \
            ms), --duration and --report-interval too (a bare number is seconds).
            Exit status: 0 done, 2 the link could not be set up or run, 64 bad flags or paths.
            Example: vtp-netem --create-namespaces --namespace-a sender --namespace-b receiver --delay-ms 250
            then: ip netns exec sender ping 10.201.0.2
            """,
        version: VTPBenchVersion.string)

    @Option(help: "Namespace of end A.") var namespaceA = "vtpnet-a"
    @Option(help: "Namespace of end B.") var namespaceB = "vtpnet-b"
    @Option(help: "Address of end A (point-to-point, inside namespace A).") var addressA = "10.201.0.1"
    @Option(help: "Address of end B (point-to-point, inside namespace B).") var addressB = "10.201.0.2"
    @Flag(help: "Create both namespaces (they must not exist) and delete them at exit.")
    var createNamespaces = false

    @Option(parsing: .unconditional, help: "One-way delay, both directions (bare number = ms).", transform: milliseconds)
    var delayMs: Double = 0
    @Option(
        name: .customLong("delay-ab-ms"), parsing: .unconditional,
        help: "One-way delay A→B (bare number = ms; overrides --delay-ms).", transform: milliseconds)
    var delayABMs: Double?
    @Option(
        name: .customLong("delay-ba-ms"), parsing: .unconditional,
        help: "One-way delay B→A (bare number = ms; overrides --delay-ms).", transform: milliseconds)
    var delayBAMs: Double?
    @Option(
        parsing: .unconditional, help: "Uniform jitter ± added to each packet's delay (bare number = ms).",
        transform: milliseconds)
    var jitterMs: Double = 0
    @Flag(help: "Let jitter reorder packets (default: release times kept in arrival order).")
    var allowReorder = false
    @Option(parsing: .unconditional, help: "Random loss in percent, each direction.") var lossPercent: Double = 0
    @Option(parsing: .unconditional, help: "Rate limit in Mbit/s, each direction (default unlimited).")
    var rateMbit: Double?
    @Option(parsing: .unconditional, help: "Packets held per direction before new ones are dropped.")
    var queueLimit = 200_000
    @Option(parsing: .unconditional, help: "txqueuelen of the TUN devices (the default 500 drops bursts).")
    var txqueuelen = 5000
    @Option(parsing: .unconditional, help: "MTU of the link.") var mtu = 1500
    @Flag(help: "Do not use the virtio-net header / GSO (every segment forwarded separately; slower).")
    var noOffload = false
    @Option(parsing: .unconditional, help: "SCHED_FIFO priority for the forwarding thread (0 = normal scheduling).")
    var realtimePriority: Int32 = 10
    @Option(help: "Seed for jitter and loss.") var seed: UInt64 = 1
    @Option(
        parsing: .unconditional, help: "Time between report lines (bare number = seconds; 0 = only at exit).",
        transform: seconds)
    var reportInterval: Double = 0
    @Option(
        parsing: .unconditional,
        help: "Stop by itself after this long (bare number = seconds; 0 = run until SIGINT/SIGTERM).",
        transform: seconds)
    var duration: Double = 0
    @Option(help: "Write the final report as JSON here (checked before the link is set up).") var summaryJson: String?

    func validate() throws {
        if !(0...100).contains(lossPercent) {
            throw ValidationError("--loss-percent must be between 0 and 100 (got \(lossPercent))")
        }
        if let rate = rateMbit, !(rate > 0 && rate.isFinite) {
            throw ValidationError("--rate-mbit must be a positive number (got \(rate))")
        }
        if queueLimit < 1 { throw ValidationError("--queue-limit must be at least 1 packet (got \(queueLimit))") }
        if txqueuelen < 1 { throw ValidationError("--txqueuelen must be at least 1 (got \(txqueuelen))") }
        if !(68...65_535).contains(mtu) { throw ValidationError("--mtu must be between 68 and 65535 (got \(mtu))") }
        if !(0...99).contains(realtimePriority) {
            throw ValidationError("--realtime-priority must be between 0 and 99 (got \(realtimePriority))")
        }
    }

    func profile(delayMs: Double) -> DirectionProfile {
        DirectionProfile(
            delayNanos: nanos(seconds: delayMs / 1000), jitterNanos: nanos(seconds: jitterMs / 1000),
            allowReorder: allowReorder, lossProbability: lossPercent / 100,
            rateBytesPerSecond: rateMbit.map { $0 * 1e6 / 8 }, queueLimitPackets: queueLimit)
    }

    /// What shaped the run, in the summary's `settings`.
    var settingsObject: [String: Any] {
        [
            "delay_ab_ms": delayABMs ?? delayMs, "delay_ba_ms": delayBAMs ?? delayMs, "jitter_ms": jitterMs,
            "allow_reorder": allowReorder, "loss_percent": lossPercent, "rate_mbit": rateMbit.map { $0 as Any } ?? NSNull(),
            "queue_limit": queueLimit, "mtu": mtu, "offload": !noOffload, "seed": seed,
        ]
    }

    func run() throws {
        try OneLineFailure.reporting(tool: "vtp-netem") { try runLink() }
    }

    private func runLink() throws {
        do {
            try OutputPaths.check([("--summary-json", summaryJson)])
        } catch { throw OneLineFailure(error.description, status: ExitStatus.usage) }
        guard geteuid() == 0 else {
            throw OneLineFailure(
                "needs root (it creates TUN devices and network namespaces); run it with sudo", status: ExitStatus.runFailed)
        }
        let settings = ForwarderSettings(
            aToB: profile(delayMs: delayABMs ?? delayMs), bToA: profile(delayMs: delayBAMs ?? delayMs), seed: seed,
            reportIntervalNanos: reportInterval > 0 ? nanos(seconds: reportInterval) : nil,
            durationNanos: duration > 0 ? nanos(seconds: duration) : nil,
            realtimePriority: realtimePriority > 0 ? realtimePriority : nil)
        do {
            try settings.aToB.validate(direction: "A→B")
            try settings.bToA.validate(direction: "B→A")
        } catch { throw OneLineFailure(error.description, status: ExitStatus.usage) }

        // The first SIGINT/SIGTERM wakes the forwarder through this pipe; it then reports and
        // tears down. A second one exits at once (the devices vanish with the process).
        var stopPipe: [Int32] = [0, 0]
        guard pipe(&stopPipe) == 0 else {
            throw OneLineFailure("cannot create a pipe: \(String(cString: strerror(errno)))", status: ExitStatus.runFailed)
        }
        let wakeFd = stopPipe[1]
        let signals = TerminationSignals(queueLabel: "vtp-netem.signals") { _ in
            var byte: UInt8 = 1
            _ = write(wakeFd, &byte, 1)
        }
        defer { signals.cancel() }
        let startedAt = Date()

        let link: EmulatedLink
        do {
            link = try EmulatedLink(
                endA: LinkEnd(namespace: namespaceA, address: addressA),
                endB: LinkEnd(namespace: namespaceB, address: addressB), createNamespaces: createNamespaces,
                vnetHeader: !noOffload, txQueueLength: txqueuelen, mtu: mtu)
        } catch {
            throw OneLineFailure(error.description, status: error.isUserInput ? ExitStatus.usage : ExitStatus.runFailed)
        }
        defer { link.tearDown() }

        let forwarder = DelayLinkForwarder(a: link.a, b: link.b, settings: settings)
        say(
            "vtp-netem: ready \(namespaceA) \(addressA) (\(link.a.name)) <-> \(namespaceB) \(addressB) (\(link.b.name)),"
                + " delay a→b \(Human.duration(seconds: Double(settings.aToB.delayNanos) / 1e9))"
                + " b→a \(Human.duration(seconds: Double(settings.bToA.delayNanos) / 1e9))")
        let report: LinkReport
        do {
            report = try forwarder.run(stopFd: stopPipe[0], log: say)
        } catch { throw OneLineFailure(error.description, status: ExitStatus.runFailed) }
        let totals = forwarder.totals
        say(totals.aToB.line(label: "vtp-netem: total a→b"))
        say(totals.bToA.line(label: "vtp-netem: total b→a"))
        if let path = summaryJson {
            do {
                try SummaryJSON.write(
                    report, metadata: RunMetadata(startedAt: startedAt), settings: settingsObject, to: path)
            } catch { throw OneLineFailure(error.description, status: ExitStatus.runFailed) }
        }
    }
}

/// Checked: the kit bounds durations to a week, so nanoseconds always fit.
func nanos(seconds: Double) -> Int64 {
    let value = (seconds * 1e9).rounded()
    return value.isFinite && value >= 0 && value < 9e18 ? Int64(value) : 0
}

/// Duration flags: `2s`, `500ms`, `1m`; a bare number is seconds.
@Sendable func seconds(_ text: String) throws -> Double {
    try Durations.parseSeconds(text, bareUnit: .seconds)
}

/// Delay flags: `250`, `250ms`, `0.25s`; a bare number is milliseconds.
@Sendable func milliseconds(_ text: String) throws -> Double {
    try Durations.parseSeconds(text, bareUnit: .milliseconds) * 1000
}

extension DelayLinkError {
    /// Settings and names the user gave, as opposed to the system refusing.
    var isUserInput: Bool {
        switch self {
        case .invalidSetting, .namespaceExists: return true
        case .system, .command: return false
        }
    }
}

/// Writes a line straight to fd 1, so it is not held in a buffer when stdout is a pipe.
func say(_ line: String) {
    StandardStreams.out(line)
}

Netem.main()
