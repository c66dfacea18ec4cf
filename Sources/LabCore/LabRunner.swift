import BenchConfig
import CommandLineKit
import DelayLink
import Foundation

/// Runs lab cases: for each, two fresh namespaces ("sender", "receiver") joined by the delay
/// link, vtp-receiver in one, vtp-sender in the other, summaries collected, everything removed.
/// Used from one thread; signals reach it through `Interruption.shared`.
public final class LabRunner {
    public struct Paths: Sendable, Equatable {
        public var sender: String
        public var receiver: String
        public var workDirectory: URL

        public static let tools = ["vtp-sender", "vtp-receiver"]

        /// The tools in `binDirectory` when given (only there: a wrong --bin-dir is an error, not
        /// a silent fall-back), otherwise next to this executable.
        public static func locate(binDirectory: String?, workDirectory: URL) throws(LabError) -> Paths {
            let directory: String
            if let binDirectory {
                directory = try checkedBinDirectory(binDirectory)
            } else {
                directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
            }
            func find(_ name: String) throws(LabError) -> String {
                let path = directory + "/" + name
                if FileManager.default.isExecutableFile(atPath: path) { return path }
                if let binDirectory {
                    throw .badBinDirectory(
                        binDirectory, reason: "no executable \(name) in it (build it with `swift build --product \(name)`)")
                }
                throw .missingExecutable(name, searched: [directory])
            }
            return Paths(sender: try find("vtp-sender"), receiver: try find("vtp-receiver"), workDirectory: workDirectory)
        }

        /// Absolute (the tools run with the work directory as their current directory).
        static func checkedBinDirectory(_ path: String) throws(LabError) -> String {
            guard !path.isEmpty else { throw .badBinDirectory("\"\"", reason: "empty path") }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw .badBinDirectory(path, reason: "no such directory")
            }
            guard isDirectory.boolValue else { throw .badBinDirectory(path, reason: "not a directory") }
            return URL(fileURLWithPath: path).standardizedFileURL.path
        }

        /// `vtp-lab: tools: vtp-sender /path/vtp-sender, vtp-receiver /path/vtp-receiver`
        public var line: String { "vtp-lab: tools: vtp-sender \(sender), vtp-receiver \(receiver)" }
    }

    public static let senderAddress = "10.201.0.1"
    public static let receiverAddress = "10.201.0.2"
    static let port = "8098"

    let settings: LabSettings
    let paths: Paths
    let log: @Sendable (String) -> Void
    let useNetem: Bool
    private var runIndex = 0
    /// The results-store flags each tool gets for a case (`--store … --tag …`; vtp-lab builds
    /// them: the case's tags, the user's, the sweep's id). None: the tools' own default.
    public var storeArguments: @Sendable (LabCase) -> [String] = { _ in [] }

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
        log(paths.line)
        log(
            "vtp-lab: delay link: "
                + (useNetem ? "tc netem on a veth pair" : "userspace (the vtp-netem forwarder, in this process, on TUN)"))
    }

    /// Runs the cases in order; `onRow` gets each row as soon as it is measured (so a caller can
    /// save it before the next case starts). On Ctrl-C the case running then yields a partial
    /// row (`complete` false) and no further case starts.
    public func run(_ cases: [LabCase], onRow: (LabRow) -> Void = { _ in }) throws(LabError) -> [LabRow] {
        for name in NetworkNamespaces.removeStale(prefix: "vtplab") + NetworkNamespaces.removeStale(prefix: "vtpprobe") {
            log("vtp-lab: removed namespace \(name) left behind by a run that was killed")
        }
        var rows: [LabRow] = []
        for labCase in cases {
            if Interruption.shared.isInterrupted { break }
            let row: LabRow
            do {
                row = try run(labCase)
            } catch .interrupted {
                break
            }
            rows.append(row)
            onRow(row)
        }
        return rows
    }

    public func run(_ labCase: LabCase) throws(LabError) -> LabRow {
        runIndex += 1
        let index = runIndex
        let tag = "vtplab-\(getpid())-\(index)"
        let label = "delay \(Human.duration(seconds: labCase.delayMs / 1000)), max_connect \(labCase.maxConnect), \(labCase.mode.rawValue)"
            + (labCase.mode == .perEvent ? ", scope \(labCase.scope.rawValue)" : ", window \(labCase.window)")
        let schedule = settings.bursts.map { b in
            "in bursts of \(b.size) every \(Human.duration(seconds: b.everySeconds))"
        } ?? "at \(Human.rate(settings.rate, unit: "events"))"
        let file = { (suffix: String) in self.paths.workDirectory.appendingPathComponent("\(tag)-\(suffix)").path }
        let grace = settings.grace(for: labCase)
        log(
            "vtp-lab: [\(index)] \(label): \(settings.events) events \(schedule)"
                + " over \(Human.duration(seconds: settings.duration)) (+\(Human.duration(seconds: grace)) grace);"
                + " logs \(file("*"))")

        let link: LabLink
        if useNetem {
            link = try NetemLabLink(tag: tag, delayMs: labCase.delayMs)
        } else {
            link = try UserspaceLabLink(tag: tag, delayMs: labCase.delayMs, lifetimeSeconds: settings.duration + grace + 120)
        }
        let children = LabChildren(logPath: { file("\($0).log") }, workDirectory: paths.workDirectory)
        defer {
            children.stopAll()
            _ = try? link.stop()
        }

        let receiverJSON = file("receiver.json")
        let receiverCSV = file("receiver-events.csv")
        let senderJSON = file("sender.json")
        let receiver = try children.start(
            "receiver", namespace: link.receiverNamespace,
            [
                paths.receiver, "--host", Self.receiverAddress, "--port", Self.port, "--report-interval",
                String(settings.reportInterval), "--summary-json", receiverJSON, "--events-csv", receiverCSV,
                "--idle-timeout", "0",
            ] + storeArguments(labCase))
        guard receiver.waitForOutput(containing: "listening on", timeout: 15) else {
            if Interruption.shared.isInterrupted { throw .interrupted }
            throw .processFailed("vtp-receiver did not start listening; \(Self.lastWords(of: receiver))")
        }
        if settings.capture {
            let capture = try children.start(
                "tcpdump", namespace: link.receiverNamespace,
                [
                    "tcpdump", "-i", link.receiverDevice, "-n", "-U", "--time-stamp-precision=nano", "-w",
                    file("receiver.pcap"), "tcp port \(Self.port)",
                ])
            if !capture.waitForOutput(containing: "listening on", timeout: 10) {
                log("vtp-lab: tcpdump did not start, continuing without a capture; \(Self.lastWords(of: capture))")
            }
        }
        var senderArguments = [
            paths.sender, "--host", Self.receiverAddress, "--port", Self.port, "--max-connect",
            String(labCase.maxConnect), "--events", String(settings.events), "--period", String(settings.duration),
            "--mode", labCase.mode.rawValue, "--max-connect-scope", labCase.scope.rawValue, "--event-size",
            String(settings.eventSize), "--report-interval", String(settings.reportInterval), "--drain-timeout",
            String(grace), "--summary-json", senderJSON,
        ] + storeArguments(labCase)
        // Only when they differ from the defaults: older senders lack these flags.
        if labCase.window > 1 { senderArguments += ["--window", String(labCase.window)] }
        if let bursts = settings.bursts {
            senderArguments += ["--burst", String(bursts.size), "--burst-every", String(bursts.everySeconds)]
        }
        let sender = try children.start("sender", namespace: link.senderNamespace, senderArguments)
        waitForSender(sender, index: index, expectedSeconds: settings.duration + grace)
        let interrupted = Interruption.shared.isInterrupted
        if !interrupted {
            // Events written just before the sender stopped are still crossing the link.
            Thread.sleep(forTimeInterval: labCase.delayMs / 1000 + 0.3)
        }
        receiver.stop()
        for child in children.all where child !== receiver && child !== sender { child.stop() }

        let senderSummary = try Self.summary(SenderSummaryFile.self, path: senderJSON, of: sender, interrupted: interrupted)
        let receiverSummary = try Self.summary(
            ReceiverSummaryFile.self, path: receiverJSON, of: receiver, interrupted: interrupted)
        let timeline = (try? String(contentsOfFile: receiverCSV, encoding: .utf8)).map { text in
            EventTimeline.build(
                events: senderSummary.events, intervalNanos: settings.intervalNanos,
                senderElapsedNanos: Self.nanos(senderSummary.duration_s), arrivals: ReceiverEventsCSV.arrivals(text),
                burstSize: settings.burstSize)
        }
        let linkError = try link.stop()
        let row = LabRow(
            labCase: labCase, rate: settings.offeredRate, duration: settings.duration, grace: grace,
            intervalNanos: settings.intervalNanos, sender: senderSummary,
            receiver: receiverSummary, timeline: timeline, linkError: linkError, complete: !interrupted,
            burstSize: settings.bursts?.size)
        log("vtp-lab: [\(index)] " + (row.complete ? "" : "partial (interrupted): ") + LabReport.line(row))
        for warning in row.warnings { log("vtp-lab: [\(index)] warning: \(warning)") }
        return row
    }

    /// Waits for the sender to finish, printing a progress line every report interval (the
    /// sender's latest report line, when it has one).
    private func waitForSender(_ sender: ChildProcess, index: Int, expectedSeconds: Double) {
        let started = Date()
        let limit = expectedSeconds + 60
        var nextProgress = settings.reportInterval
        while true {
            let remaining = limit - Date().timeIntervalSince(started)
            if remaining <= 0 {
                log("vtp-lab: [\(index)] vtp-sender did not finish in time; stopping it")
                sender.stop()
                return
            }
            let slice = min(remaining, max(0.05, nextProgress - Date().timeIntervalSince(started)))
            if sender.waitForExit(timeout: slice) { return }
            let elapsed = Date().timeIntervalSince(started)
            if elapsed >= nextProgress, !Interruption.shared.isInterrupted {
                nextProgress += settings.reportInterval
                var line = "vtp-lab: [\(index)] \(Human.duration(seconds: elapsed)) of ~\(Human.duration(seconds: expectedSeconds))"
                if let report = sender.lastLine(startingWith: "[") { line += "; vtp-sender \(report)" }
                log(line)
            }
        }
    }

    static func nanos(_ seconds: Double) -> Int64 {
        let nanos = (seconds * 1e9).rounded()
        return nanos.isFinite && nanos >= 0 && nanos < 9e18 ? Int64(nanos) : 0
    }

    /// A tool's summary file, or why there is none: `vtp-sender wrote no summary (exit 1); its
    /// log /tmp/…/sender.log ends: …`. Without one after Ctrl-C the case simply has no row.
    static func summary<T: Decodable>(
        _ type: T.Type, path: String, of child: ChildProcess, interrupted: Bool
    ) throws(LabError) -> T {
        switch SummaryFileReader.read(type, path: path) {
        case .success(let summary): return summary
        case .failure where interrupted: throw .interrupted
        case .failure(.missing):
            throw .processFailed(
                "vtp-\(child.name) wrote no summary (exit \(child.exitStatus.map(String.init) ?? "unknown"));"
                    + " \(lastWords(of: child))")
        case .failure(.unreadable(let reason)):
            throw .processFailed("vtp-\(child.name)'s summary \(path) is unreadable: \(reason)")
        }
    }

    /// The last line a tool wrote and where the rest is: error lines stay one line.
    static func lastWords(of child: ChildProcess) -> String {
        let last = child.output.split(whereSeparator: \.isNewline).last.map(String.init)
        return "its log \(child.logPath)" + (last.map { " ends: \($0)" } ?? " is empty")
    }
}
