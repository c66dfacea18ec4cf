import ArgumentParser
import Foundation
import PGProbeCore
import PGSniff

struct CrosscheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crosscheck",
        abstract: "Run query and sniff together: client timer vs wire round trip for every query.",
        discussion: """
            Each probe query carries a unique comment (/* pgprobe RUN N */) so that its packets are
            found among any other traffic. Per query: the client timer (send → result complete),
            the wire round trip (request packet → ReadyForQuery packet, on --interface) and their
            difference, the client-side overhead. Capture on the client's host (lo for a local
            server). Needs root or CAP_NET_RAW. Exit status 1 when a query failed or was not seen.
            """)

    @Option(help: "Connection string (see pgprobe query --help); the capture watches its port.")
    var dsn: String

    @Option(help: "Capture on this interface: the one the probe's packets leave by (lo for a local server).")
    var interface: String

    @Option(help: "SQL to run each time.")
    var query: String = "SELECT 1"

    @Option(help: "Number of queries.")
    var count: Int = 100

    @Option(help: "Pause between queries in milliseconds.")
    var interval: Double = 20

    @Option(help: "Seconds before a connection attempt or a query counts as failed.")
    var timeout: Double = 10

    @Option(name: .customLong("summary-json"), help: "Write {\"matched\",\"unmatched\",\"client_s\",\"wire_rtt_s\",\"client_minus_wire_s\"} here.")
    var summaryJSON: String?

    func validate() throws {
        do { _ = try DSN(parsing: dsn) } catch { throw ValidationError(error.description) }
        guard count > 0 else { throw ValidationError("--count must be at least 1") }
        guard interval >= 0, interval.isFinite else { throw ValidationError("--interval must be ≥ 0 milliseconds") }
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be > 0 seconds") }
    }

    func run() async throws {
        let parsed = try DSN(parsing: dsn)  // checked in validate()
        let options = CrosscheckOptions(
            probe: QueryProbeOptions(
                dsn: parsed, query: query, count: count, intervalNanos: Int64(interval * 1e6),
                timeoutNanos: Int64(timeout * 1e9)),
            interface: interface)
        emit("pgprobe crosscheck: \(parsed.redacted), \(count) queries, capturing on \(interface) port \(parsed.port)")
        let outcome: Crosscheck.Outcome
        do {
            let crosscheck = Crosscheck(options: options)
            let box = OutcomeBox()
            let result = await runUntilInterrupted {
                let value = try await crosscheck.run { outcome in
                    if let failure = outcome.failure { emit("query \(outcome.index + 1) FAILED: \(failure)") }
                }
                await box.set(value)
            }
            if case .failed(let error) = result {
                emitError("pgprobe crosscheck: \(error)")
                throw ExitCode(2)
            }
            guard let value = await box.value else { throw ExitCode(2) }
            outcome = value
        }
        for row in outcome.matcher.rows { emit(CrosscheckMatcher.line(row)) }
        let summary = outcome.matcher.summary
        emit("pgprobe crosscheck: \(summary.matched) matched, \(summary.unmatched) not seen on the wire, \(outcome.matcher.failedQueries) failed")
        emit("  client       " + summary.client_s.runningLine)
        emit("  wire rtt     " + summary.wire_rtt_s.runningLine)
        emit("  client-wire  " + summary.client_minus_wire_s.runningLine)
        if let failure = outcome.sniff.failure { emitError("pgprobe crosscheck: capture: \(failure)") }
        if let error = outcome.probeError { emitError("pgprobe crosscheck: \(error)") }
        if let summaryJSON { try writeSummaryJSON(summary, to: summaryJSON) }
        if outcome.probeError != nil { throw ExitCode(2) }
        if summary.unmatched > 0 || outcome.matcher.failedQueries > 0 { throw ExitCode(1) }
    }
}

actor OutcomeBox {
    var value: Crosscheck.Outcome?
    func set(_ value: Crosscheck.Outcome) { self.value = value }
}
