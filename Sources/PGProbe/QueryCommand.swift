import ArgumentParser
import CommandLineKit
import Foundation
import LiveMetrics
import NIOPosix
import PGProbeCore
import ResultsStore

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Time queries end to end (send → result complete) over postgres-nio.",
        discussion: """
            Each of --count attempts runs the query once; a refused connection or a server restart
            costs that attempt (counted as failed) and the next one reconnects. Load like pgbench:
            --clients N connections, --rate R queries/s in all, --duration S. Exit status: 0 when
            every query succeeded, 1 when some failed, 2 when the server rejected the login (wrong
            user, password or database: retrying cannot help), 64 on bad arguments or an
            unwritable --summary-json.
            """)

    @OptionGroup var options: ProbeOptions<QueryDefaults>
    @OptionGroup var metrics: MetricsOptions
    @OptionGroup(title: "Stored runs") var store: StoreOptions

    func run() async throws {
        try checkOutputs("query", [("--summary-json", options.summaryJSON)])
        let probe = try options.probeOptions()  // checked in validate()
        let metricsAddress = try metrics.parsed()
        let live = QueryMetrics(on: MultiThreadedEventLoopGroup.singleton.next())
        let metricsServer = try await startMetrics(metricsAddress, live, tool: "pgprobe query")
        emit("pgprobe query: \(probe.dsn.redacted), \(options.describe(probe))")
        let metadata = RunMetadata()
        let recorder = await startRecording(store, command: "query", metadata: metadata, settings: options.settings(probe))
        let started = ContinuousClock.now
        let quiet = options.quiet
        let (statistics, fatal) = await runUntilInterrupted { () -> (QueryStatistics, String?) in
            var statistics = QueryStatistics()
            do {
                try await QueryProbe(options: probe).run { outcome in
                    statistics.record(outcome)
                    live.record(outcome)
                    recorder?.record(latencyNanos: outcome.latencyNanos)
                    if !quiet { emit(statistics.line(for: outcome)) }
                }
                return (statistics, nil)
            } catch {
                return (statistics, describe(error))
            }
        }
        let elapsed = Double((ContinuousClock.now - started).nanoseconds) / 1e9
        await metricsServer?.stop()
        // A rejected login is what the user must read first.
        if let fatal { emitError("pgprobe query: \(fatal)") }
        emit(statistics.finalLine(elapsedSeconds: elapsed))
        var written = true
        if let path = options.summaryJSON {
            written = writeSummary(
                statistics.summary, command: "query", metadata: metadata, settings: options.settings(probe),
                extra: ["queries_per_s": statistics.rate(elapsedSeconds: elapsed) ?? NSNull()], to: path)
        }
        await finishRecording(
            recorder, command: "query", summary: statistics.summary, error: fatal, metadata: metadata,
            settings: options.settings(probe), extra: ["queries_per_s": statistics.rate(elapsedSeconds: elapsed) ?? NSNull()],
            quiet: quiet)
        if fatal != nil || !written { throw ExitStatus.runFailed }
        if statistics.failed > 0 { throw ExitStatus.measurementFailed }
    }
}
