import ArgumentParser
import CDelayLink
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
            (and the namespaces, if it created them).
            Example: vtp-netem --create-namespaces --namespace-a sender --namespace-b receiver --delay-ms 250
            then: ip netns exec sender ping 10.201.0.2
            """)

    @Option(help: "Namespace of end A.") var namespaceA = "vtpnet-a"
    @Option(help: "Namespace of end B.") var namespaceB = "vtpnet-b"
    @Option(help: "Address of end A (point-to-point, inside namespace A).") var addressA = "10.201.0.1"
    @Option(help: "Address of end B (point-to-point, inside namespace B).") var addressB = "10.201.0.2"
    @Flag(help: "Create both namespaces (they must not exist) and delete them at exit.")
    var createNamespaces = false

    @Option(help: "One-way delay in ms, both directions.") var delayMs: Double = 0
    @Option(name: .customLong("delay-ab-ms"), help: "One-way delay A→B in ms (overrides --delay-ms).")
    var delayABMs: Double?
    @Option(name: .customLong("delay-ba-ms"), help: "One-way delay B→A in ms (overrides --delay-ms).")
    var delayBAMs: Double?
    @Option(help: "Uniform jitter ± ms added to each packet's delay.") var jitterMs: Double = 0
    @Flag(help: "Let jitter reorder packets (default: release times kept in arrival order).")
    var allowReorder = false
    @Option(help: "Random loss in percent, each direction.") var lossPercent: Double = 0
    @Option(help: "Rate limit in Mbit/s, each direction (default unlimited).") var rateMbit: Double?
    @Option(help: "Packets held per direction before new ones are dropped.") var queueLimit = 200_000
    @Option(help: "txqueuelen of the TUN devices (the default 500 drops bursts).") var txqueuelen = 5000
    @Option(help: "MTU of the link.") var mtu = 1500
    @Flag(help: "Do not use the virtio-net header / GSO (every segment forwarded separately; slower).")
    var noOffload = false
    @Option(help: "SCHED_FIFO priority for the forwarding thread (0 = normal scheduling).")
    var realtimePriority: Int32 = 10
    @Option(help: "Seed for jitter and loss.") var seed: UInt64 = 1
    @Option(help: "Seconds between report lines (0 = only at exit).") var reportInterval: Double = 0
    @Option(help: "Stop by itself after this many seconds (0 = run until SIGINT/SIGTERM).")
    var duration: Double = 0
    @Option(help: "Write the final report as JSON here.") var summaryJson: String?

    func validate() throws {
        if delayMs < 0 || (delayABMs ?? 0) < 0 || (delayBAMs ?? 0) < 0 { throw ValidationError("delays must be ≥ 0 ms") }
        if jitterMs < 0 { throw ValidationError("--jitter-ms must be ≥ 0") }
        if !(0...100).contains(lossPercent) { throw ValidationError("--loss-percent must be between 0 and 100") }
        if let rate = rateMbit, !(rate > 0) { throw ValidationError("--rate-mbit must be > 0") }
        if txqueuelen < 1 { throw ValidationError("--txqueuelen must be ≥ 1") }
        if reportInterval < 0 || duration < 0 { throw ValidationError("--report-interval and --duration must be ≥ 0") }
    }

    func profile(delayMs: Double) -> DirectionProfile {
        DirectionProfile(
            delayNanos: Int64(delayMs * 1e6), jitterNanos: Int64(jitterMs * 1e6), allowReorder: allowReorder,
            lossProbability: lossPercent / 100, rateBytesPerSecond: rateMbit.map { $0 * 1e6 / 8 },
            queueLimitPackets: queueLimit)
    }

    func run() throws {
        guard geteuid() == 0 else {
            throw ExitMessage("vtp-netem: needs root (it creates TUN devices and network namespaces); run it with sudo")
        }
        let stopFd = vtp_termination_pipe()
        guard stopFd >= 0 else { throw ExitMessage("vtp-netem: cannot install signal handlers") }
        let settings = ForwarderSettings(
            aToB: profile(delayMs: delayABMs ?? delayMs), bToA: profile(delayMs: delayBAMs ?? delayMs), seed: seed,
            reportIntervalNanos: reportInterval > 0 ? Int64(reportInterval * 1e9) : nil,
            durationNanos: duration > 0 ? Int64(duration * 1e9) : nil,
            realtimePriority: realtimePriority > 0 ? realtimePriority : nil)
        do {
            try settings.aToB.validate(direction: "A→B")
            try settings.bToA.validate(direction: "B→A")
        } catch { throw ExitMessage("vtp-netem: \(error)") }

        let link: EmulatedLink
        do {
            link = try EmulatedLink(
                endA: LinkEnd(namespace: namespaceA, address: addressA),
                endB: LinkEnd(namespace: namespaceB, address: addressB), createNamespaces: createNamespaces,
                vnetHeader: !noOffload, txQueueLength: txqueuelen, mtu: mtu)
        } catch { throw ExitMessage("vtp-netem: \(error)") }
        defer { link.tearDown() }

        let forwarder = DelayLinkForwarder(a: link.a, b: link.b, settings: settings)
        say(
            "vtp-netem: ready \(namespaceA) \(addressA) (\(link.a.name)) <-> \(namespaceB) \(addressB) (\(link.b.name)),"
                + " delay a→b \(Self.ms(settings.aToB.delayNanos)) b→a \(Self.ms(settings.bToA.delayNanos)) ms")
        let report: LinkReport
        do {
            report = try forwarder.run(stopFd: stopFd, log: say)
        } catch { throw ExitMessage("vtp-netem: \(error)") }
        let totals = forwarder.totals
        say(totals.aToB.line(label: "vtp-netem: total a→b"))
        say(totals.bToA.line(label: "vtp-netem: total b→a"))
        if let path = summaryJson {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            do {
                try encoder.encode(report).write(to: URL(fileURLWithPath: path))
            } catch { throw ExitMessage("vtp-netem: cannot write \(path): \(error.localizedDescription)") }
        }
    }

    static func ms(_ nanos: Int64) -> String { String(Double(nanos) / 1e6) }
}

/// A message for the user and exit status 1, without a stack of error wrapping.
struct ExitMessage: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Writes a line straight to fd 1, so it is not held in a buffer when stdout is a pipe.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

Netem.main()
