import ArgumentParser
import CommandLineKit
import Foundation
import LiveMetrics
import NIOPosix
import PGProbeCore

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

    func run() async throws {
        try checkOutputs("query", [("--summary-json", options.summaryJSON)])
        let probe = try options.probeOptions()  // checked in validate()
        let metricsAddress = try metrics.parsed()
        let live = QueryMetrics(on: MultiThreadedEventLoopGroup.singleton.next())
        var metricsServer: MetricsServer?
        if let metricsAddress {
            do {
                metricsServer = try await MetricsServer.start(
                    at: metricsAddress,
                    exporter: MetricsExporter(declaring: QueryMetrics.exported, on: live.loop) { live.snapshot() })
            } catch {
                emitError("pgprobe query: \(error)")
                throw ExitStatus.runFailed
            }
        }
        emit("pgprobe query: \(probe.dsn.redacted), \(options.describe(probe))")
        if let metricsServer { emit("pgprobe query: metrics at \(metricsServer.url)") }
        let metadata = RunMetadata()
        let started = ContinuousClock.now
        let quiet = options.quiet
        let (statistics, fatal) = await runUntilInterrupted { () -> (QueryStatistics, String?) in
            var statistics = QueryStatistics()
            do {
                try await QueryProbe(options: probe).run { outcome in
                    statistics.record(outcome)
                    live.record(outcome)
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
        if fatal != nil || !written { throw ExitStatus.runFailed }
        if statistics.failed > 0 { throw ExitStatus.measurementFailed }
    }
}
