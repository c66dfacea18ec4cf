import BenchConfig
import DelayLink
import Foundation
import LatencyStats
import VTPTransport

/// Runs lab cases: for each, two fresh namespaces ("sender", "receiver") joined by the delay
/// link, vtp-receiver in one, vtp-sender in the other, summaries collected, everything removed.
public final class LabRunner {
    public struct Paths: Sendable {
        public var sender: String
        public var receiver: String
        public var workDirectory: URL

        /// Finds the tools next to this executable (or in `binDirectory`).
        public static func locate(binDirectory: String?, workDirectory: URL) throws(LabError) -> Paths {
            let own = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
            // Absolute: the tools run with the work directory as their current directory.
            let directories = [binDirectory, own].compactMap { $0 }.map {
                URL(fileURLWithPath: $0).standardizedFileURL.path
            }
            func find(_ name: String) throws(LabError) -> String {
                for directory in directories {
                    let path = directory + "/" + name
                    if FileManager.default.isExecutableFile(atPath: path) { return path }
                }
                throw .missingExecutable(name, searched: directories)
            }
            return Paths(sender: try find("vtp-sender"), receiver: try find("vtp-receiver"), workDirectory: workDirectory)
        }
    }

    public static let senderAddress = "10.201.0.1"
    public static let receiverAddress = "10.201.0.2"
    static let port = "8098"

    let settings: LabSettings
    let paths: Paths
    let log: @Sendable (String) -> Void
    let useNetem: Bool
    private var runIndex = 0

    public init(
        settings: LabSettings, paths: Paths, link: LinkKind = .userspace, log: @escaping @Sendable (String) -> Void
    ) throws(LabError) {
        self.settings = settings
        self.paths = paths
        self.log = log
        switch link {
        case .userspace: useNetem = false
        case .auto: useNetem = NetemLabLink.kernelHasNetem()
        case .netem:
            guard NetemLabLink.kernelHasNetem() else {
                throw .setupFailed("this kernel has no netem qdisc (`tc qdisc add … netem` fails); use --link userspace")
            }
            useNetem = true
        }
        log("vtp-lab: delay link: " + (useNetem ? "tc netem on a veth pair" : "userspace (vtp-netem forwarder on TUN)"))
    }

    public func run(_ cases: [LabCase]) throws(LabError) -> [LabRow] {
        for name in NetworkNamespaces.removeStale(prefix: "vtplab") + NetworkNamespaces.removeStale(prefix: "vtpprobe") {
            log("vtp-lab: removed namespace \(name) left behind by a run that was killed")
        }
        var rows: [LabRow] = []
        for labCase in cases {
            if Interruption.shared.isInterrupted { throw .interrupted }
            rows.append(try run(labCase))
        }
        return rows
    }

    public func run(_ labCase: LabCase) throws(LabError) -> LabRow {
        runIndex += 1
        let tag = "vtplab-\(getpid())-\(runIndex)"
        let label = "delay \(labCase.delayMs) ms, max_connect \(labCase.maxConnect), \(labCase.mode.rawValue)"
            + (labCase.mode == .perEvent ? ", scope \(labCase.scope.rawValue)" : "")
        let file = { (suffix: String) in self.paths.workDirectory.appendingPathComponent("\(tag)-\(suffix)").path }
        let grace = settings.grace(for: labCase)
        log("vtp-lab: [\(runIndex)] \(label): \(settings.events) events over \(settings.duration) s (+\(Fixed.format(grace, decimals: 2)) s grace); logs \(file("*"))")

        let link: LabLink
        if useNetem {
            link = try NetemLabLink(tag: tag, delayMs: labCase.delayMs)
        } else {
            link = try UserspaceLabLink(tag: tag, delayMs: labCase.delayMs, lifetimeSeconds: settings.duration + grace + 120)
        }
        var children: [ChildProcess] = []
        defer {
            for child in children.reversed() {
                child.stop()
                Interruption.shared.untrack(child)
            }
            _ = try? link.stop()
        }
        func start(_ name: String, namespace: String, _ arguments: [String]) throws(LabError) -> ChildProcess {
            let child = try ChildProcess(
                name: name, namespace: namespace, arguments: arguments, logPath: file("\(name).log"),
                workDirectory: paths.workDirectory)
            children.append(child)
            Interruption.shared.track(child)
            return child
        }

        let receiverJSON = file("receiver.json")
        let senderJSON = file("sender.json")
        let receiver = try start(
            "receiver", namespace: link.receiverNamespace,
            [
                paths.receiver, "--host", Self.receiverAddress, "--port", Self.port, "--report-interval",
                String(settings.reportInterval), "--summary-json", receiverJSON, "--idle-timeout", "0",
            ])
        guard receiver.waitForOutput(containing: "listening on", timeout: 15) else {
            throw .processFailed("vtp-receiver did not start listening:\n\(receiver.output)")
        }
        if settings.capture {
            let capture = try start(
                "tcpdump", namespace: link.receiverNamespace,
                [
                    "tcpdump", "-i", link.receiverDevice, "-n", "-U", "--time-stamp-precision=nano", "-w",
                    file("receiver.pcap"), "tcp port \(Self.port)",
                ])
            if !capture.waitForOutput(containing: "listening on", timeout: 10) {
                log("vtp-lab: tcpdump did not start, continuing without a capture:\n\(capture.output)")
            }
        }
        let sender = try start(
            "sender", namespace: link.senderNamespace,
            [
                paths.sender, "--host", Self.receiverAddress, "--port", Self.port, "--max-connect",
                String(labCase.maxConnect), "--events", String(settings.events), "--period", String(settings.duration),
                "--mode", labCase.mode.rawValue, "--max-connect-scope", labCase.scope.rawValue, "--event-size",
                String(settings.eventSize), "--report-interval", String(settings.reportInterval), "--drain-timeout",
                String(grace), "--summary-json", senderJSON,
            ])
        if !sender.waitForExit(timeout: settings.duration + grace + 60) {
            log("vtp-lab: vtp-sender did not finish in time; stopping it")
            sender.stop()
        }
        if Interruption.shared.isInterrupted { throw .interrupted }
        // Events written just before the sender stopped are still crossing the link.
        Thread.sleep(forTimeInterval: labCase.delayMs / 1000 + 0.3)
        receiver.stop()
        for child in children where child !== receiver && child !== sender { child.stop() }

        guard let senderSummary = Self.decode(SenderSummary.self, path: senderJSON) else {
            throw .processFailed("vtp-sender wrote no summary (exit \(sender.exitStatus ?? -1)):\n\(sender.output)")
        }
        guard let receiverSummary = Self.decode(ReceiverSummary.self, path: receiverJSON) else {
            throw .processFailed("vtp-receiver wrote no summary:\n\(receiver.output)")
        }
        let linkError = try link.stop()
        let errorP50 = linkError?.p50 ?? 0
        let errorP99 = linkError?.p99 ?? 0
        let row = LabRow(
            labCase: labCase, events: senderSummary.events, sent: senderSummary.sent,
            received: receiverSummary.received, acked: senderSummary.acked, backlogEnd: senderSummary.backlogEnd,
            maxBacklog: senderSummary.maxBacklog, latency: receiverSummary.latency,
            ackRoundTripP50: senderSummary.ackRoundTrip.p50, linkErrorP50: errorP50, linkErrorP99: errorP99,
            duration: settings.duration, grace: grace)
        log(
            "vtp-lab: [\(runIndex)] sent \(row.sent) received \(row.received) backlog_end \(row.backlog_end)"
                + " latency min/avg/max/p99 "
                + [row.latency_s.min, row.latency_s.mean, row.latency_s.max, row.latency_s.p99].map {
                    Fixed.format($0, decimals: 4)
                }.joined(separator: "/") + " s; link release error p50/p99 "
                + Fixed.format(errorP50 * 1000, decimals: 3) + "/" + Fixed.format(errorP99 * 1000, decimals: 3) + " ms")
        return row
    }

    static func decode<T: Decodable>(_ type: T.Type, path: String) -> T? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(type, from: data)
    }
}
