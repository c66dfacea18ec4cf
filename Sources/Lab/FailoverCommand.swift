import ArgumentParser
import BenchConfig
import CommandLineKit
import Foundation
import LabCore

extension FailoverFault: ExpressibleByArgument {}
extension FailoverMode: ExpressibleByArgument {}
extension SenderMode: ExpressibleByArgument {}

struct Failover: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Two receivers and a sender across the delay link; the first receiver is killed or silenced mid-run.",
        discussion: """
            Fresh namespaces joined by the delay link; vtp-receiver on ports 8098 and 8099 in one, \
            vtp-sender --target both in the other. At --at seconds the first receiver is killed \
            (SIGKILL: connections reset, new ones refused) or silenced (SIGSTOP: the kernel still \
            accepts connections and data, nothing is answered, so only the ack timeout reveals it). \
            Prints one table reconciled by ivorn from both receivers' --events-csv: per target the \
            sender's sent/acked/failed beside the receiver's rows, the failover (when detected, why, \
            RTO = last ack before the failure to the first ack after), and the events missing from \
            both, lost by the sender's count, and duplicates. Needs root.
            Example: vtp-lab failover --delay-ms 50 --rate 100 --duration 20s --at 8s --fault kill
            Exit status: 0 when no event is missing from both receivers, 1 when some are, 2 when the \
            case could not be run, 64 bad flags or paths.
            """)

    @Option(parsing: .unconditional, help: "One-way delay of the link (bare number = ms).", transform: milliseconds)
    var delayMs: Double = 50
    @Option(parsing: .unconditional, help: "Events per second.") var rate: Double = 100
    @Option(parsing: .unconditional, help: "The window over which events are generated (bare number = seconds).", transform: seconds)
    var duration: Double = 20
    @Option(name: .customLong("at"), parsing: .unconditional, help: "When the first receiver fails, after the sender starts (bare number = seconds).", transform: seconds)
    var faultAt: Double = 8
    @Option(help: "kill (SIGKILL) or silence (SIGSTOP) the first receiver.") var fault: FailoverFault = .kill
    @Option(help: "The sender's --failover: ordered or all.") var failover: FailoverMode = .ordered
    @Option(help: "The sender's --mode: per-event or persistent.") var mode: SenderMode = .perEvent
    @Option(parsing: .unconditional, help: "The sender's --max-connect.") var maxConnect = 30
    @Option(parsing: .unconditional, help: "The sender's --window (persistent mode).") var window = 1
    @Option(parsing: .unconditional, help: "The sender's --ack-timeout (bare number = seconds).", transform: seconds)
    var ackTimeout: Double = 2
    @Option(parsing: .unconditional, help: "Event size in bytes.") var eventSize = 1024
    @Option(
        parsing: .unconditional,
        help: "How long the sender keeps delivering after the window (bare number = seconds; default ack timeout + 6 × delay + 20 s).",
        transform: seconds)
    var grace: Double?
    @Option(parsing: .unconditional, help: "Time between the tools' report lines (bare number = seconds).", transform: seconds)
    var reportInterval: Double = 5
    @Option(help: "Directory holding vtp-sender and vtp-receiver (default: next to vtp-lab).") var binDir: String?
    @Option(help: "Where logs, summaries and CSVs go (default: a new /tmp/vtplab-PID directory).") var workDir: String?
    @Option(help: "Delay link: userspace (default), netem, auto.") var link: LinkKind = .userspace
    @Option(help: "Write the reconciled result as JSON here (checked before the run).") var json: String?

    func run() throws {
        try OneLineFailure.reporting(tool: "vtp-lab") {
            var settings = FailoverLabSettings()
            settings.delayMs = delayMs
            settings.rate = rate
            settings.duration = duration
            settings.faultAt = faultAt
            settings.fault = fault
            settings.failover = failover
            settings.mode = mode
            settings.maxConnect = maxConnect
            settings.window = window
            settings.ackTimeout = ackTimeout
            settings.eventSize = eventSize
            settings.graceSeconds = grace
            settings.reportInterval = reportInterval
            do throws(LabError) { try settings.validate() } catch {
                throw OneLineFailure(error.description, status: ExitStatus.usage)
            }
            let work = try prepareWorkDirectory(binDir: binDir, workDir: workDir, outputs: [("--json", json)])
            Interruption.shared.install(log: sayError)
            let metadata = RunMetadata()
            let result: FailoverLabResult
            do throws(LabError) {
                result = try FailoverLabRunner(settings: settings, paths: work, link: link, log: say).run()
            } catch {
                throw OneLineFailure(error.description, status: error.isUsage ? ExitStatus.usage : ExitStatus.runFailed)
            }
            say(FailoverReconciliation.table(result))
            if let json {
                do throws(SummaryJSON.WriteError) {
                    try SummaryJSON.write(
                        result, metadata: metadata,
                        settings: [
                            "delay_ms": delayMs, "rate_events_s": rate, "duration_s": duration, "fault": fault.rawValue,
                            "at_s": faultAt, "failover": failover.rawValue, "mode": mode.rawValue,
                            "max_connect": maxConnect, "window": window, "ack_timeout_s": ackTimeout,
                            "event_size": eventSize, "link": link.rawValue,
                        ], to: json)
                } catch { throw OneLineFailure(error.description, status: ExitStatus.runFailed) }
            }
            if result.missing > 0 { throw ExitStatus.measurementFailed }
        }
    }
}
