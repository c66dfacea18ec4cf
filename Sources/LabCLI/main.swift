import ArgumentParser
import BenchConfig
import Foundation
import VTPLab

/// Options shared by `run` and `reproduce-2012`.
struct CommonOptions: ParsableArguments {
    @Option(help: "Events per second.") var rate: Double = 46.3
    @Option(help: "Seconds over which events are generated (the measurement window).") var duration: Double = 30
    @Option(help: "Event size in bytes.") var eventSize = 1024
    @Option(help: "Seconds the sender keeps delivering after the window (default 3 × delay + 0.5 s).")
    var grace: Double?
    @Flag(help: "Capture the receiver side with tcpdump (one pcap per case, in the work directory).")
    var capture = false
    @Option(help: "Seconds between the tools' report lines (in their logs).") var reportInterval: Double = 5
    @Option(help: "Directory holding vtp-sender and vtp-receiver (default: next to vtp-lab).") var binDir: String?
    @Option(help: "Where logs, summaries and captures go (default: a new /tmp/vtplab-PID directory).")
    var workDir: String?
    @Option(help: "Delay link: userspace (vtp-netem forwarder, default: same everywhere, its accuracy is measured), netem (tc netem on a veth pair; needs sch_netem), auto (netem if the kernel has it).")
    var link = "userspace"
    @Option(help: "Write the rows as JSON here.") var json: String?
    @Option(help: "Write the rows as CSV here.") var csv: String?

    var settings: LabSettings {
        LabSettings(
            rate: rate, duration: duration, eventSize: eventSize, graceSeconds: grace, capture: capture,
            reportInterval: reportInterval)
    }
}

struct Lab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vtp-lab",
        abstract: "Two-host latency lab on one machine: namespaces joined by a delay link, vtp-sender → vtp-receiver.",
        subcommands: [Run.self, Reproduce2012.self])
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run every combination of the given delays, MAX_CONNECT values, modes and scopes.",
        discussion: """
            Each case gets fresh network namespaces (sender, receiver) joined by the userspace delay \
            link (the delay applies to each direction), runs vtp-receiver and vtp-sender in them and \
            removes everything afterwards, also on Ctrl-C. Needs root.
            Example: vtp-lab run --delay-ms 250 --max-connect 1,30 --mode per-event --rate 46.3 --duration 30 --json lab.json
            """)

    @Option(help: "One-way delays in ms, comma-separated.") var delayMs = "250"
    @Option(help: "MAX_CONNECT values, comma-separated.") var maxConnect = "30"
    @Option(help: "Modes, comma-separated: per-event, persistent.") var mode = "per-event"
    @Option(help: "What MAX_CONNECT limits (per-event mode), comma-separated: connection (whole connections, the default), setup (connection set-ups, as the 2012 benchmark).")
    var maxConnectScope = "connection"
    @OptionGroup var common: CommonOptions

    func run() throws {
        let cases: [LabCase]
        do {
            try common.settings.validate()
            cases = try LabPlan.cases(
                delays: try LabPlan.list(delayMs, flag: "--delay-ms", example: "50,250") { Double($0) },
                maxConnects: try LabPlan.list(maxConnect, flag: "--max-connect") { Int($0) },
                modes: try LabPlan.list(mode, flag: "--mode", example: "per-event,persistent") { SenderMode(rawValue: $0) },
                scopes: try LabPlan.list(maxConnectScope, flag: "--max-connect-scope", example: "setup,connection") { MaxConnectScope(rawValue: $0) })
        } catch { throw ValidationError("\(error)") }
        let rows = try runLab(cases, common: common)
        say(LabReport.table(rows))
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
            """)

    @Option(help: "One-way delay in ms.") var delayMs: Double = 250
    @OptionGroup var common: CommonOptions

    func run() throws {
        do { try common.settings.validate() } catch { throw ValidationError("\(error)") }
        let cases = [
            LabCase(delayMs: delayMs, maxConnect: 1, mode: .perEvent, scope: .setup),
            LabCase(delayMs: delayMs, maxConnect: 30, mode: .perEvent, scope: .setup),
            LabCase(delayMs: delayMs, maxConnect: 30, mode: .perEvent, scope: .connection),
            LabCase(delayMs: delayMs, maxConnect: 30, mode: .persistent, scope: .connection),
        ]
        let rows = try runLab(cases, common: common)
        say(LabReport.table(rows, withOriginal: true))
    }
}

func runLab(_ cases: [LabCase], common: CommonOptions) throws -> [LabRow] {
    guard getuid() == 0 else { throw ExitMessage("vtp-lab: needs root (network namespaces and TUN devices)") }
    Interruption.shared.install()
    let work = URL(fileURLWithPath: common.workDir ?? "/tmp/vtplab-\(getpid())")
    do {
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    } catch { throw ExitMessage("vtp-lab: cannot create \(work.path): \(error.localizedDescription)") }
    do {
        let paths = try LabRunner.Paths.locate(binDirectory: common.binDir, workDirectory: work)
        guard let kind = LinkKind(rawValue: common.link) else {
            throw ExitMessage("vtp-lab: --link must be userspace, netem or auto (got \"\(common.link)\")")
        }
        let rows = try LabRunner(settings: common.settings, paths: paths, link: kind, log: say).run(cases)
        if let path = common.json { try write(LabReport.json(rows), to: path) }
        if let path = common.csv { try write(Data(LabReport.csv(rows).utf8), to: path) }
        return rows
    } catch let error as LabError {
        throw ExitMessage("vtp-lab: \(error)")
    }
}

func write(_ data: Data, to path: String) throws {
    do { try data.write(to: URL(fileURLWithPath: path)) } catch {
        throw ExitMessage("vtp-lab: cannot write \(path): \(error.localizedDescription)")
    }
}

struct ExitMessage: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

@Sendable func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

Lab.main()
