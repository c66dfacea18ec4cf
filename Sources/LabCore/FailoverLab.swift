import BenchConfig
import CommandLineKit
import DelayLink
import Foundation

/// What happens to the first receiver.
public enum FailoverFault: String, Sendable, CaseIterable, Codable {
    /// SIGKILL: its connections are reset, new ones refused.
    case kill
    /// SIGSTOP: the kernel still accepts connections and data, nothing is answered (a hung
    /// broker); the sender can only notice by its ack timeout.
    case silence
}

/// `vtp-lab failover`: two receivers and a sender across the delay link; the first receiver
/// fails at `faultAt` seconds.
public struct FailoverLabSettings: Sendable, Equatable {
    public var delayMs: Double = 50
    public var rate: Double = 100
    public var duration: Double = 20
    public var faultAt: Double = 8
    public var fault: FailoverFault = .kill
    public var failover: FailoverMode = .ordered
    public var mode: SenderMode = .perEvent
    public var maxConnect = 30
    public var window = 1
    public var ackTimeout: Double = 2
    public var eventSize = 1024
    public var reportInterval: Double = 5
    /// How long the sender keeps delivering after the window; nil: ack timeout + 6 × delay + 20 s
    /// (it ends as soon as every event is acked: the time is only spent when a backlog remains).
    public var graceSeconds: Double?

    public init() {}

    public var events: Int {
        let events = (rate * duration).rounded()
        return events.isFinite && events >= 1 && events <= Double(LabSettings.maximumEvents) ? Int(events) : 0
    }

    public var grace: Double { graceSeconds ?? (ackTimeout + 6 * delayMs / 1000 + 20) }

    /// One line naming the first bad value.
    public func validate() throws(LabError) {
        let week = Durations.maximumSeconds
        guard rate.isFinite, rate > 0 else { throw .invalidInput("--rate must be a positive number of events per second (got \(rate))") }
        guard duration > 0, duration <= week else {
            throw .invalidInput("--duration must be more than 0 and at most one week (got \(duration))")
        }
        guard events >= 1 else {
            throw .invalidInput(
                "--rate × --duration must be 1 to \(LabSettings.maximumEvents) events (got \(rate * duration))")
        }
        guard faultAt >= 0, faultAt < duration else {
            throw .invalidInput("--at must be within the window, from 0 to below --duration \(duration) s (got \(faultAt))")
        }
        guard delayMs >= 0, delayMs <= 10_000 else { throw .invalidInput("--delay-ms must be from 0 to 10000 (got \(delayMs))") }
        guard (1...BenchConfiguration.maximumMaxConnect).contains(maxConnect) else {
            throw .invalidInput("--max-connect must be from 1 to \(BenchConfiguration.maximumMaxConnect) (got \(maxConnect))")
        }
        guard window >= 1 else { throw .invalidInput("--window must be at least 1 (got \(window))") }
        guard ackTimeout > 0, ackTimeout <= week else {
            throw .invalidInput("--ack-timeout must be more than 0 and at most one week (got \(ackTimeout))")
        }
        guard (graceSeconds ?? 0) >= 0, (graceSeconds ?? 0) <= week else {
            throw .invalidInput("--grace must be from 0 to one week (got \(graceSeconds ?? 0))")
        }
    }
}

/// The reconciled outcome: the sender's view per target beside what each receiver wrote.
public struct FailoverLabResult: Codable, Sendable, Equatable {
    public struct Target: Codable, Sendable, Equatable {
        public var target: String
        /// `kill at 8.00 s` for the first, nil for the second.
        public var fault: String?
        public var sent: Int
        public var acked: Int
        public var nakked: Int
        public var failed: Int
        /// Rows in this receiver's --events-csv, and of distinct events.
        public var csv_rows: Int
        public var csv_events: Int
    }

    /// A failover as the sender reported it.
    public struct Failover: Codable, Sendable, Equatable {
        public var from: String
        public var to: String
        public var detected_at_s: Double
        public var cause: String
        public var unacked_at_failure: Int
        public var resent: Int
        public var rto_s: Double?
    }

    public var events: Int
    public var fault: String
    /// Seconds after the sender started when the fault was injected.
    public var fault_at_s: Double
    public var targets: [Target]
    /// Distinct events in the union of both receivers' CSVs (reconciled by ivorn).
    public var delivered: Int
    /// Events in neither CSV (the first few, by sequence).
    public var missing: Int
    public var missing_first: [Int]
    /// CSV rows beyond one per event, both receivers together.
    public var received_twice: Int
    /// The sender's own figures.
    public var sender_acked: Int
    public var lost: Int?
    public var duplicates_sent: Int?
    public var failovers: [Failover]
    public var sender_exit: Int32?
}

/// The parts of the sender's summary the failover lab reads.
struct FailoverSenderSummaryFile: Decodable {
    struct Target: Decodable {
        var target: String
        var sent: Int
        var acked: Int
        var nakked: Int
        var failed: Int
    }

    var events: Int
    var acked: Int
    var lost: Int?
    var duplicates_sent: Int?
    var failovers: [FailoverLabResult.Failover]?
    var targets: [Target]?
}

public enum FailoverReconciliation {
    /// Sequence numbers of the benchmark's events in a receiver's --events-csv (first column).
    static func sequences(csv text: String) -> [Int] {
        text.split(separator: "\n").dropFirst().compactMap { line in
            line.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false).first.flatMap { Int($0) }
        }
    }

    /// Reconciles both receivers' CSVs with the sender's summary into one result.
    static func result(
        settings: FailoverLabSettings, targets: [String], csvs: [String], sender: FailoverSenderSummaryFile?,
        faultAt: Double, senderExit: Int32?
    ) -> FailoverLabResult {
        let perReceiver = csvs.map(sequences(csv:))
        let union = Set(perReceiver.joined())
        let expected = sender?.events ?? settings.events
        let missing = (0..<expected).filter { !union.contains($0) }
        let rows = zip(targets, perReceiver).enumerated().map { index, pair in
            let counts = sender?.targets?.first { $0.target == pair.0 }
            return FailoverLabResult.Target(
                target: pair.0,
                fault: index == 0 ? "\(settings.fault.rawValue) at \(Human.duration(seconds: faultAt))" : nil,
                sent: counts?.sent ?? 0, acked: counts?.acked ?? 0, nakked: counts?.nakked ?? 0, failed: counts?.failed ?? 0,
                csv_rows: pair.1.count, csv_events: Set(pair.1).count)
        }
        return FailoverLabResult(
            events: expected, fault: settings.fault.rawValue, fault_at_s: faultAt, targets: rows,
            delivered: union.count, missing: missing.count, missing_first: Array(missing.prefix(10)),
            received_twice: perReceiver.map(\.count).reduce(0, +) - union.count, sender_acked: sender?.acked ?? 0,
            lost: sender?.lost, duplicates_sent: sender?.duplicates_sent, failovers: sender?.failovers ?? [],
            sender_exit: senderExit)
    }

    /// One table: each target as the sender counted it beside its receiver's CSV, the failover
    /// (when detected, why, RTO), and a last row reconciled by ivorn over both receivers.
    public static func table(_ r: FailoverLabResult) -> String {
        var lines = [["target", "fault", "sent", "acked", "failed", "csv rows", "failover detected", "RTO"]]
        for target in r.targets {
            let failover = r.failovers.first { $0.from == target.target }
            lines.append([
                target.target, target.fault ?? "-", String(target.sent), String(target.acked), String(target.failed),
                String(target.csv_rows),
                failover.map {
                    "at \(Human.duration(seconds: $0.detected_at_s)) (\($0.cause)), \($0.unacked_at_failure) unacked, \($0.resent) resent"
                } ?? "-",
                failover.map { Human.duration(seconds: $0.rto_s) } ?? "-",
            ])
        }
        lines.append([
            "all, by ivorn", "-", "\(r.events) events", "\(r.sender_acked)", "lost \(r.lost.map(String.init) ?? "n/a")",
            "\(r.delivered) distinct",
            "missing \(r.missing), duplicates sent \(r.duplicates_sent.map(String.init) ?? "n/a"), received twice \(r.received_twice)",
            "",
        ])
        return LabReport.aligned(lines)
    }
}

/// Runs one failover case: fresh namespaces joined by the delay link, receivers on ports 8098
/// and 8099 in the receiver namespace, the sender (`--target` both) in the other; the first
/// receiver fails at `faultAt`; everything is removed afterwards, also on Ctrl-C.
public final class FailoverLabRunner {
    let settings: FailoverLabSettings
    let paths: LabRunner.Paths
    let useNetem: Bool
    let log: @Sendable (String) -> Void

    public static let ports = ["8098", "8099"]

    public init(
        settings: FailoverLabSettings, paths: LabRunner.Paths, link: LinkKind, log: @escaping @Sendable (String) -> Void
    ) throws(LabError) {
        self.settings = settings
        self.paths = paths
        self.log = log
        useNetem = link == .netem || (link == .auto && NetemLabLink.kernelHasNetem())
        if link == .netem && !NetemLabLink.kernelHasNetem() {
            throw .setupFailed("this kernel has no netem qdisc (`tc qdisc add … netem` fails); use --link userspace")
        }
        log(paths.line)
    }

    public func run() throws(LabError) -> FailoverLabResult {
        for name in NetworkNamespaces.removeStale(prefix: "vtplab") {
            log("vtp-lab: removed namespace \(name) left behind by a run that was killed")
        }
        let s = settings
        let tag = "vtplab-\(getpid())-failover"
        let file = { (suffix: String) in self.paths.workDirectory.appendingPathComponent("\(tag)-\(suffix)").path }
        log(
            "vtp-lab: failover: delay \(Human.duration(seconds: s.delayMs / 1000)), \(s.events) events at "
                + "\(Human.rate(s.rate, unit: "events")) over \(Human.duration(seconds: s.duration)), \(s.mode.rawValue)"
                + " max_connect \(s.maxConnect)" + (s.mode == .persistent ? " window \(s.window)" : "")
                + ", --failover \(s.failover.rawValue), ack timeout \(Human.duration(seconds: s.ackTimeout)); "
                + "\(s.fault.rawValue) the first receiver at \(Human.duration(seconds: s.faultAt)); logs \(file("*"))")
        let link: LabLink =
            useNetem
            ? try NetemLabLink(tag: tag, delayMs: s.delayMs)
            : try UserspaceLabLink(tag: tag, delayMs: s.delayMs, lifetimeSeconds: s.duration + s.grace + 180)
        let children = LabChildren(logPath: { file("\($0).log") }, workDirectory: paths.workDirectory)
        defer {
            children.stopAll()
            _ = try? link.stop()
        }

        var receivers: [ChildProcess] = []
        for (index, port) in Self.ports.enumerated() {
            let name = index == 0 ? "receiver-first" : "receiver-second"
            let receiver = try children.start(
                name, namespace: link.receiverNamespace,
                [
                    paths.receiver, "--host", LabRunner.receiverAddress, "--port", port, "--report-interval",
                    String(s.reportInterval), "--summary-json", file("\(name).json"), "--events-csv",
                    file("\(name)-events.csv"), "--idle-timeout", "0",
                ])
            guard receiver.waitForOutput(containing: "listening on", timeout: 15) else {
                if Interruption.shared.isInterrupted { throw .interrupted }
                throw .processFailed("vtp-receiver did not start listening; \(LabRunner.lastWords(of: receiver))")
            }
            receivers.append(receiver)
        }
        let targets = Self.ports.map { "\(LabRunner.receiverAddress):\($0)" }
        let senderJSON = file("sender.json")
        let sender = try children.start(
            "sender", namespace: link.senderNamespace,
            [
                paths.sender, "--target", targets[0], "--target", targets[1], "--failover", s.failover.rawValue,
                "--events", String(s.events), "--period", String(s.duration), "--mode", s.mode.rawValue,
                "--max-connect", String(s.maxConnect), "--event-size", String(s.eventSize), "--ack-timeout",
                String(s.ackTimeout), "--report-interval", String(s.reportInterval), "--drain-timeout", String(s.grace),
                "--summary-json", senderJSON,
            ] + (s.window > 1 ? ["--window", String(s.window)] : []))
        // The sender's clock starts as it prints its start line: the fault's moment (and the
        // summary's detected_at_s) count from there, within a poll.
        _ = sender.waitForOutput(containing: "vtp-sender: ", timeout: 15)
        let started = Date()
        // The fault, at its moment (unless the sender is already done or the user stopped the run).
        while Date().timeIntervalSince(started) < s.faultAt, sender.isRunning, !Interruption.shared.isInterrupted {
            Thread.sleep(forTimeInterval: 0.01)
        }
        let faultAt = Date().timeIntervalSince(started)
        if !Interruption.shared.isInterrupted {
            receivers[0].signal(s.fault == .kill ? SIGKILL : SIGSTOP)
            log("vtp-lab: \(s.fault == .kill ? "killed" : "silenced (SIGSTOP)") the first receiver at \(Human.duration(seconds: faultAt))")
        }
        if !sender.waitForExit(timeout: s.duration + s.grace + 60) {
            log("vtp-lab: vtp-sender did not finish in time; stopping it")
            sender.stop()
        }
        let interrupted = Interruption.shared.isInterrupted
        if !interrupted { Thread.sleep(forTimeInterval: s.delayMs / 1000 + 0.3) }  // acks still crossing
        // A silenced receiver is killed where it hung: continued, it would read what the kernel
        // buffered for it meanwhile and write rows for events the sender has long resent.
        if s.fault == .silence { receivers[0].signal(SIGKILL) }
        for receiver in receivers { receiver.stop() }
        let summary: FailoverSenderSummaryFile?
        switch SummaryFileReader.read(FailoverSenderSummaryFile.self, path: senderJSON) {
        case .success(let decoded): summary = decoded
        case .failure where interrupted: throw .interrupted
        case .failure(let failure):
            throw .processFailed(
                "vtp-sender's summary \(senderJSON): \(failure == .missing ? "not written" : "unreadable"); "
                    + LabRunner.lastWords(of: sender))
        }
        let csvs = ["receiver-first", "receiver-second"].map {
            (try? String(contentsOfFile: file("\($0)-events.csv"), encoding: .utf8)) ?? ""
        }
        _ = try link.stop()
        return FailoverReconciliation.result(
            settings: s, targets: targets, csvs: csvs, sender: summary, faultAt: faultAt, senderExit: sender.exitStatus)
    }
}
