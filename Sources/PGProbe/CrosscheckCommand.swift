import ArgumentParser
import CommandLineKit
import Foundation
import PGProbeCore
import PGSniff
import ResultsStore

struct CrosscheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crosscheck",
        abstract: "Run query and sniff together: client timer vs wire round trip for every query.",
        discussion: """
            Each probe query carries a unique comment (/* pgprobe RUN N */) so that its packets are
            found among any other traffic. Per query: the client timer (send → result complete),
            the wire round trip (request packet → ReadyForQuery packet, on --interface) and their
            difference, the client-side overhead. Capture on the client's host (lo for a local
            server). Needs root or CAP_NET_RAW. Exit status: 0 every query matched, 1 a query
            failed or was not seen, 2 the capture or the login failed, 64 bad arguments.
            """)

    @OptionGroup var options: ProbeOptions<CrosscheckDefaults>

    @Option(help: "Capture on this interface: the one the probe's packets leave by (lo for a local server).")
    var interface: String

    @OptionGroup(title: "Stored runs") var store: StoreOptions

    func run() async throws {
        try checkOutputs("crosscheck", [("--summary-json", options.summaryJSON)])
        let probe = try options.probeOptions()  // checked in validate()
        let crosscheck = Crosscheck(options: CrosscheckOptions(probe: probe, interface: interface))
        emit(
            "pgprobe crosscheck: \(probe.dsn.redacted), \(options.describe(probe)), capturing on \(interface) port "
                + "\(probe.dsn.port)")
        let metadata = RunMetadata()
        var settings = options.settings(probe)
        settings["interface"] = interface
        let recorder = await startRecording(store, command: "crosscheck", metadata: metadata, settings: settings)
        let started = ContinuousClock.now
        let result = await runUntilInterrupted { () -> Result<Crosscheck.Outcome, CrosscheckFailure> in
            do {
                return .success(
                    try await crosscheck.run { outcome in
                        recorder?.record(latencyNanos: outcome.latencyNanos)
                        if let failure = outcome.failure { emit("query \(outcome.index + 1) FAILED: \(failure)") }
                    })
            } catch {
                return .failure(CrosscheckFailure(description: UserMessage.describe(error)))
            }
        }
        let elapsed = Double((ContinuousClock.now - started).nanoseconds) / 1e9
        let outcome: Crosscheck.Outcome
        switch result {
        case .success(let value): outcome = value
        case .failure(let failure):
            emitError("pgprobe crosscheck: \(failure)")
            await finishRecording(
                recorder, command: "crosscheck", summary: nil as CrosscheckSummary?, error: failure.description,
                metadata: metadata, settings: settings)
            throw ExitStatus.runFailed
        }
        // What stopped the run comes before any summary.
        if let error = outcome.probeError { emitError("pgprobe crosscheck: \(error)") }
        if let failure = outcome.sniff.failure { emitError("pgprobe crosscheck: capture: \(failure)") }
        if !options.quiet { for row in outcome.matcher.rows { emit(CrosscheckMatcher.line(row)) } }
        let summary = outcome.matcher.summary
        let attempts = outcome.matcher.rows.count + outcome.matcher.failedQueries
        let rate = elapsed > 0 ? Double(attempts) / elapsed : nil
        emit(
            "pgprobe crosscheck: \(summary.matched) matched, \(summary.unmatched) not seen on the wire, "
                + "\(outcome.matcher.failedQueries) failed in \(Human.duration(seconds: elapsed)) "
                + "(\(Human.rate(rate, unit: "queries")))")
        emit("  client       " + summary.client_s.humanLine)
        emit("  wire rtt     " + summary.wire_rtt_s.humanLine)
        emit("  client-wire  " + summary.client_minus_wire_s.humanLine)
        emit("  " + outcome.sniff.decode.line)
        if let advice = outcome.interfaceAdvice { emitError("pgprobe crosscheck: \(advice)") }
        var written = true
        if let path = options.summaryJSON {
            written = writeSummary(
                summary, command: "crosscheck", metadata: metadata, settings: settings,
                extra: ["queries_per_s": rate ?? NSNull()], to: path)
        }
        await finishRecording(
            recorder, command: "crosscheck", summary: summary, error: outcome.probeError.map { "\($0)" }, metadata: metadata,
            settings: settings, extra: ["queries_per_s": rate ?? NSNull()])
        if outcome.probeError != nil || outcome.sniff.failure != nil || !written { throw ExitStatus.runFailed }
        if summary.unmatched > 0 || outcome.matcher.failedQueries > 0 { throw ExitStatus.measurementFailed }
    }
}

struct CrosscheckFailure: Error, CustomStringConvertible {
    var description: String
}
