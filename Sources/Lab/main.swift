import ArgumentParser
import BenchConfig
import CommandLineKit
import Foundation
import LabCore
import ResultsStore

extension LinkKind: ExpressibleByArgument {}

/// What every row means; shown by `--help` of both subcommands.
let rowsHelp = """
    Each row: sent (written at least once), received, backlog_end (waiting for a connection when \
    the sender stopped), in_flight (on a connection, unanswered), not_sent (never scheduled: \
    Ctrl-C), failed = in_flight + backlog_end; acked + nakked + in_flight + backlog_end + not_sent \
    = events. latency_s covers the events that arrived; latency_incl_queued_s counts every \
    generated event, one that had not arrived with its age when the sender stopped (so a lower \
    bound). kept_up: backlog_end <= max(1, 1% of events) and the median latency of the last third \
    of the events is at most that of the first third + max(10% of the delay, 5 ms). A warning is \
    printed when the delay link's own release error p99 exceeds 5% of the delay. \
    Exit status: 0 done, 2 a case could not be run (or Ctrl-C: the rows so far are printed and \
    written), 64 bad flags or paths.
    """

/// Options shared by `run` and `reproduce-2012`.
struct CommonOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Events per second.") var rate: Double = 46.3
    @Option(
        parsing: .unconditional,
        help: "The measurement window, over which events are generated (bare number = seconds; 30s, 2m).",
        transform: seconds)
    var duration: Double = 30
    @Option(parsing: .unconditional, help: "Event size in bytes.") var eventSize = 1024
    @Option(
        parsing: .unconditional,
        help: "How long the sender keeps delivering after the window (bare number = seconds; default 3 × delay + 0.5 s).",
        transform: seconds)
    var grace: Double?
    @Flag(help: "Capture the receiver side with tcpdump (one pcap per case, in the work directory).")
    var capture = false
    @Option(
        parsing: .unconditional,
        help: "Time between the tools' report lines (in their logs) and the lab's progress lines (bare number = seconds).",
        transform: seconds)
    var reportInterval: Double = 5
    @Option(help: "Directory holding vtp-sender and vtp-receiver (default: next to vtp-lab); it must hold both.")
    var binDir: String?
    @Option(help: "Where logs, summaries and captures go (default: a new /tmp/vtplab-PID directory).")
    var workDir: String?
    @Option(
        help: """
            Delay link: userspace (the vtp-netem forwarder, default: the same everywhere, its accuracy is \
            measured), netem (tc netem on a veth pair; needs sch_netem), auto (netem if the kernel has it).
            """)
    var link: LinkKind = .userspace
    @Option(help: "Write the rows as JSON here (checked before the first case; rewritten after every case).")
    var json: String?
    @Option(help: "Write the rows as CSV here (checked before the first case; rewritten after every case).")
    var csv: String?
    @OptionGroup(title: "Stored runs (each tool's run, tagged delay, max_connect, mode and sweep=<this run's id>)")
    var store: StoreOptions

    func settings(bursts: LabBursts? = nil) -> LabSettings {
        LabSettings(
            rate: rate, duration: duration, eventSize: eventSize, graceSeconds: grace, capture: capture,
            reportInterval: reportInterval, bursts: bursts)
    }

    /// What shaped the sweep, in every JSON row's `settings`.
    func settingsObject(_ settings: LabSettings) -> [String: Any] {
        var object: [String: Any] = [
            "rate_events_s": rate, "duration_s": duration, "events": settings.events, "event_size": eventSize,
            "grace_s": grace.map { $0 as Any } ?? NSNull(), "report_interval_s": reportInterval,
            "link": link.rawValue, "capture": capture,
        ]
        if let bursts = settings.bursts {
            object["burst"] = bursts.size
            object["burst_every_s"] = bursts.everySeconds
        }
        return object
    }
}

/// Duration flags: `2s`, `500ms`, `1m`; a bare number is seconds.
@Sendable func seconds(_ text: String) throws -> Double {
    try Durations.parseSeconds(text, bareUnit: .seconds)
}

/// Delay flags: `250`, `250ms`, `0.25s`; a bare number is milliseconds.
@Sendable func milliseconds(_ text: String) throws -> Double {
    try Durations.parseSeconds(text, bareUnit: .milliseconds) * 1000
}

struct Lab: ParsableCommand {
    static let subcommandTypes: [ParsableCommand.Type] = [Run.self, Reproduce2012.self, Failover.self]
    static let configuration = CommandConfiguration(
        commandName: "vtp-lab",
        abstract: "Two-host latency lab on one machine: namespaces joined by a delay link, vtp-sender → vtp-receiver.",
        version: VTPBenchVersion.string,
        subcommands: subcommandTypes)
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every combination of the given delays, MAX_CONNECT values, modes and scopes.",
        discussion: """
            Each case gets fresh network namespaces (sender, receiver) joined by the userspace delay \
            link (the delay applies to each direction), runs vtp-receiver and vtp-sender in them and \
            removes everything afterwards, also on Ctrl-C. Needs root.
            Example: vtp-lab run --delay-ms 250 --max-connect 1,30 --mode per-event --rate 46.3 --duration 30s --json lab.json
            Windows: vtp-lab run --delay-ms 250 --max-connect 1 --mode persistent --window 1,32
            Bursts (each burst's drain time and latency in a second table): vtp-lab run --delay-ms 50 \
            --mode persistent --max-connect 8 --window 1,64 --burst 10000 --burst-every 40s --duration 80s

            """ + rowsHelp)

    @Option(parsing: .unconditional, help: "One-way delays, comma-separated (bare number = ms; 50,250 or 50ms,0.25s).")
    var delayMs = "250"
    @Option(parsing: .unconditional, help: "MAX_CONNECT values, comma-separated.") var maxConnect = "30"
    @Option(help: "Modes, comma-separated: per-event, persistent.") var mode = "per-event"
    @Option(help: "What MAX_CONNECT limits (per-event mode), comma-separated: connection (whole connections, the default), setup (connection set-ups, as the 2012 benchmark).")
    var maxConnectScope = "connection"
    @Option(parsing: .unconditional, help: "Unacked events per persistent connection, comma-separated (per-event cases carry one).")
    var window = "1"
    @Option(
        parsing: .unconditional,
        help: "Events scheduled at one instant, one burst at the start of every --burst-every of --duration (replaces --rate).")
    var burst: Int?
    @Option(parsing: .unconditional, help: "Time between bursts (bare number = seconds; default 40s).", transform: seconds)
    var burstEvery: Double = 40
    @OptionGroup var common: CommonOptions

    func run() throws {
        try OneLineFailure.reporting(tool: "vtp-lab") {
            let cases: [LabCase]
            do throws(LabError) {
                cases = try LabPlan.cases(
                    delays: try LabPlan.delays(delayMs, flag: "--delay-ms"),
                    maxConnects: try LabPlan.list(maxConnect, flag: "--max-connect") { Int($0) },
                    modes: try LabPlan.list(mode, flag: "--mode", example: "per-event,persistent") { SenderMode(rawValue: $0) },
                    scopes: try LabPlan.list(maxConnectScope, flag: "--max-connect-scope", example: "setup,connection") {
                        MaxConnectScope(rawValue: $0)
                    },
                    windows: try LabPlan.list(window, flag: "--window", example: "1,32") { Int($0) })
            } catch { throw OneLineFailure(error.description, status: ExitStatus.usage) }
            try runLab(cases, common: common, withOriginal: false, bursts: burst.map { LabBursts(size: $0, everySeconds: burstEvery) })
        }
    }
}

struct Reproduce2012: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reproduce-2012",
        abstract: "The 2012 experiment at 250 ms each way, 46.3 events/s, 30 s, beside the original figures.",
        discussion: """
            Rows: per-event MAX_CONNECT=1 and 30 with the original's semantics (scope setup), \
            per-event MAX_CONNECT=30 capping whole connections (scope connection), and persistent \
            mode with 30 connections. About 2.5 minutes.

            """ + rowsHelp)

    @Option(parsing: .unconditional, help: "One-way delay (bare number = ms; 250, 250ms, 0.25s).", transform: milliseconds)
    var delayMs: Double = 250
    @OptionGroup var common: CommonOptions

    func run() throws {
        try OneLineFailure.reporting(tool: "vtp-lab") {
            let cases = [
                LabCase(delayMs: delayMs, maxConnect: 1, mode: .perEvent, scope: .setup),
                LabCase(delayMs: delayMs, maxConnect: 30, mode: .perEvent, scope: .setup),
                LabCase(delayMs: delayMs, maxConnect: 30, mode: .perEvent, scope: .connection),
                LabCase(delayMs: delayMs, maxConnect: 30, mode: .persistent, scope: .connection),
            ]
            do throws(LabError) {
                _ = try LabPlan.cases(delays: [delayMs], maxConnects: [1], modes: [.perEvent], scopes: [.setup])
            } catch {
                throw OneLineFailure(error.description, status: ExitStatus.usage)
            }
            try runLab(cases, common: common, withOriginal: true)
        }
    }
}

/// Checks everything the user typed (64, one line), then runs the cases, printing and saving
/// every row as it is measured.
func runLab(_ cases: [LabCase], common: CommonOptions, withOriginal: Bool, bursts: LabBursts? = nil) throws {
    let settings = common.settings(bursts: bursts)
    do throws(LabError) { try settings.validate() } catch { throw OneLineFailure(error.description, status: ExitStatus.usage) }
    let paths = try prepareWorkDirectory(
        binDir: common.binDir, workDir: common.workDir, outputs: [("--json", common.json), ("--csv", common.csv)])
    Interruption.shared.install(log: sayError)

    let metadata = RunMetadata()
    let runner: LabRunner
    do throws(LabError) {
        runner = try LabRunner(settings: settings, paths: paths, link: common.link, log: say)
    } catch { throw OneLineFailure(error.description, status: error.isUsage ? ExitStatus.usage : ExitStatus.runFailed) }
    let recording = ChildRecording(common.store, sweepID: metadata.run_id)
    for problem in recording.problems { sayError("vtp-lab: \(problem)") }
    runner.storeArguments = { recording.arguments(caseTags: $0.storeTags) }
    let recorder = recording.localPath.map { path in
        RunRecorder(
            run: StoredRun(
                id: metadata.run_id, tool: "vtp-lab", toolVersion: metadata.version, host: metadata.host,
                tester: recording.tester ?? metadata.host, startedAt: StoreTime.date(metadata.started_at) ?? Date(),
                config: JSONText.text(common.settingsObject(settings)), tags: recording.parentTags),
            target: .sqlite(path: path), warn: { sayError("vtp-lab: \($0)") })
    }
    _ = try? recorder?.ready.wait()
    /// The sweep's own run (its rows as the summary), then, for a collector, the upload.
    func finishRecording() {
        guard let recorder else { return }
        let rows = (try? JSONSerialization.jsonObject(
            with: LabReport.json(rows, metadata: metadata, settings: common.settingsObject(settings)))) as? [String: Any]
        recorder.finishAndWait(summary: rows ?? [:], config: common.settingsObject(settings)).print(tool: "vtp-lab")
        if let upload = recording.uploadAndWait(), let collector = recording.collector {
            if let problem = upload.problem {
                sayError(
                    "vtp-lab: \(problem); the sweep is kept in \(recording.localPath ?? ""); upload it later with: "
                        + "vtp-report push --store \(recording.localPath ?? "") --to \(collector.redacted) --tag sweep=\(metadata.run_id)")
            } else {
                say("vtp-lab: sweep \(metadata.run_id) uploaded to \(collector.redacted)")
            }
        }
    }
    var rows: [LabRow] = []
    var saveFailed = false
    func save() {
        do {
            if let path = common.json {
                try write(LabReport.json(rows, metadata: metadata, settings: common.settingsObject(settings)), to: path)
            }
            if let path = common.csv { try write(Data(LabReport.csv(rows).utf8), to: path) }
        } catch {
            // One line, once; the sweep goes on and the table is still printed.
            if !saveFailed { sayError("vtp-lab: \(UserMessage.describe(error)); the sweep goes on") }
            saveFailed = true
        }
    }
    do {
        _ = try runner.run(cases) { row in
            rows.append(row)
            save()
        }
    } catch {
        if !rows.isEmpty { sayTables(rows, withOriginal: withOriginal) }
        finishRecording()
        throw OneLineFailure(error.description, status: error.isUsage ? ExitStatus.usage : ExitStatus.runFailed)
    }
    sayTables(rows, withOriginal: withOriginal)
    finishRecording()
    if Interruption.shared.isInterrupted {
        let saved = [common.json, common.csv].compactMap { $0 }
        throw OneLineFailure(
            "interrupted after \(rows.count) of \(cases.count) cases (the last one partial); the lab was torn down"
                + (saved.isEmpty || rows.isEmpty ? "" : "; rows written to \(saved.joined(separator: ", "))"),
            status: ExitStatus.runFailed)
    }
    if saveFailed { throw ExitStatus.runFailed }
}

/// The tools, the output paths and root checked (one line each), the work directory created.
func prepareWorkDirectory(binDir: String?, workDir: String?, outputs: [(flag: String, path: String?)]) throws
    -> LabRunner.Paths
{
    let work = URL(fileURLWithPath: workDir ?? "/tmp/vtplab-\(getpid())")
    let paths: LabRunner.Paths
    do throws(LabError) {
        paths = try LabRunner.Paths.locate(binDirectory: binDir, workDirectory: work)
    } catch { throw OneLineFailure(error.description, status: error.isUsage ? ExitStatus.usage : ExitStatus.runFailed) }
    do {
        try OutputPaths.check(outputs)
    } catch { throw OneLineFailure(error.description, status: ExitStatus.usage) }
    guard getuid() == 0 else {
        throw OneLineFailure("needs root (network namespaces and TUN devices); run it with sudo", status: ExitStatus.runFailed)
    }
    do {
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    } catch {
        throw OneLineFailure(
            "cannot create \(work.path): \(UserMessage.describe(error))",
            status: workDir == nil ? ExitStatus.runFailed : ExitStatus.usage)
    }
    return paths
}

/// The rows' table, and the bursts' when there are any.
func sayTables(_ rows: [LabRow], withOriginal: Bool) {
    say(LabReport.table(rows, withOriginal: withOriginal))
    if let bursts = LabReport.burstTable(rows) { say("\n" + bursts) }
}

func write(_ data: Data, to path: String) throws {
    do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
        throw OneLineFailure("cannot write \(path): \(UserMessage.describe(error))", status: ExitStatus.runFailed)
    }
}

@Sendable func say(_ line: String) { StandardStreams.out(line) }
@Sendable func sayError(_ line: String) { StandardStreams.err(line) }

/// `vtp-lab runn` → `did you mean 'run'?` (swift-argument-parser only says "Unexpected argument").
func rejectUnknownSubcommand(_ arguments: [String]) {
    guard let word = arguments.first, !word.hasPrefix("-") else { return }
    let names = Lab.subcommandTypes.map { $0._commandName } + ["help"]
    guard !names.contains(word) else { return }
    let hint = Suggestions.closest(to: word, among: names).map { "; did you mean '\($0)'?" } ?? ""
    sayError("vtp-lab: unknown subcommand '\(word)'\(hint) (subcommands: \(names.dropLast().joined(separator: ", ")))")
    Lab.exit(withError: ExitStatus.usage)
}

rejectUnknownSubcommand(Array(CommandLine.arguments.dropFirst()))
Lab.main()
