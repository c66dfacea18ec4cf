import ArgumentParser
import CommandLineKit
import Foundation
import LiveMetrics
import NIOPosix
import PGProbeCore
import ResultsStore

struct FailoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "PostgreSQL HA failover: write outage (RTO) and lost acknowledged writes (RPO), measured per write.",
        discussion: """
            --parallel-workers workers each write to their own table (pgprobe_failover_N: id, version, t, \
            last_update) on the primary, a random mix of inserts, updates and deletes, each its own \
            transaction. Every acknowledged operation is recorded in the repo database \
            (pgprobe_failover_ops); an operation sent but never answered is indeterminate, resolved after \
            the failover by looking at the new primary, and never counted as lost. The load does not stop \
            at an error: workers reconnect (walking the hosts of --primary-dsn until one is read-write) \
            with a bounded pause, so one run can see several failovers.
            Per failover: service available (first login, any server), read-write (first login where \
            pg_is_in_recovery() is false), both counted from the first failed write, and RTO = the write \
            gap, last acknowledged write before → first acknowledged write after (the worst worker; \
            per worker in --summary-json). Afterwards: RPO = acknowledged operations whose effect the new \
            primary lacks, by kind. --init / --reset alone prepare or empty the tables and exit.
            Exit status: 0 no data lost, 1 data loss detected (or validation failed, or writes had not \
            resumed), 2 the run could not be carried out (no read-write server, repo unreachable, login \
            rejected), 64 bad arguments.
            """)

    @Option(
        name: .customLong("primary-dsn"),
        help: "The HA cluster, e.g. postgres://postgres@127.0.0.1:5432,127.0.0.1:5433/postgres (every host is tried until one is read-write).")
    var primaryDSN: String

    @Option(name: .customLong("repo-dsn"), help: "A separate database that records every acknowledged operation (required for a run).")
    var repoDSN: String?

    @Option(name: .customLong("parallel-workers"), parsing: .unconditional, help: "Workers, each with its own connection and table.")
    var parallelWorkers = 4

    @Option(parsing: .unconditional, help: "Run the load this long after the warm-up; a bare number is seconds (60, 2m).")
    var duration = SecondsArgument(seconds: 60)

    @Option(
        name: .customLong("warmup-duration"), parsing: .unconditional,
        help: "Insert only, this long, before the mix starts; a bare number is seconds.")
    var warmupDuration = SecondsArgument(seconds: 0)

    @Option(name: .customLong("insert-percent"), parsing: .unconditional, help: "Share of inserts in the mix (the three sum to 100).")
    var insertPercent = 50

    @Option(name: .customLong("update-percent"), parsing: .unconditional, help: "Share of updates in the mix.")
    var updatePercent = 30

    @Option(name: .customLong("delete-percent"), parsing: .unconditional, help: "Share of deletes in the mix.")
    var deletePercent = 20

    @Flag(help: "Create the tables (on the primary and the repo) and exit.")
    var `init` = false

    @Flag(help: "Empty the tables (on the primary and the repo) and exit.")
    var reset = false

    @Flag(
        name: .customLong("full-data-validation"),
        help: "After the run, compare every table with the ledger: count(*), md5 over rows ordered by id, first differing ids.")
    var fullDataValidation = false

    @Flag(name: .customLong("async-repo-mode"), help: "Record in the repo through an ordered queue instead of before the next operation.")
    var asyncRepoMode = false

    @Option(
        name: .customLong("rto-conn-timeout"), parsing: .unconditional,
        help: "Timeout of each connection attempt (connect and login); a bare number is MILLISECONDS (or 2s).")
    var rtoConnTimeout = MillisecondsArgument(seconds: 1)

    @Option(
        name: .customLong("statement-timeout"), parsing: .unconditional,
        help: "A statement unanswered this long counts as indeterminate (also set as the server's statement_timeout); a bare number is seconds.")
    var statementTimeout = SecondsArgument(seconds: 5)

    @Option(
        name: .customLong("retry-interval"), parsing: .unconditional,
        help: "Pause after a failed attempt before the next; a bare number is milliseconds.")
    var retryInterval = MillisecondsArgument(seconds: 0.05)

    @Option(
        name: .customLong("validation-delay"), parsing: .unconditional,
        help: "Wait this long after the load before checking the data; a bare number is seconds.")
    var validationDelay = SecondsArgument(seconds: 0)

    @Option(
        name: .customLong("report-interval"), parsing: .unconditional,
        help: "A progress line this often; a bare number is seconds.")
    var reportInterval = SecondsArgument(seconds: 1)

    @Option(
        name: .customLong("summary-json"),
        help: #"Write {"operations_acked","failovers":[…],"rpo":{…},"indeterminate":{…},"validation":[…]} and the run's metadata here at the end."#)
    var summaryJSON: String?

    @OptionGroup(title: "Stored runs") var store: StoreOptions
    @OptionGroup var metrics: MetricsOptions

    func validate() throws {
        for (flag, text) in [("--primary-dsn", primaryDSN), ("--repo-dsn", repoDSN)] {
            guard let text else { continue }
            do { _ = try DSN(parsing: text) } catch { throw ValidationError("\(flag): \(error)") }
        }
        do {
            _ = try OperationMix(insert: insertPercent, update: updatePercent, delete: deletePercent)
        } catch {
            throw ValidationError("\(error)")
        }
        guard (1...200).contains(parallelWorkers) else {
            throw ValidationError("--parallel-workers must be between 1 and 200 (got \(parallelWorkers))")
        }
        guard duration.seconds > 0 else { throw ValidationError("--duration must be more than 0") }
        guard rtoConnTimeout.seconds > 0 else { throw ValidationError("--rto-conn-timeout must be more than 0 ms") }
        guard statementTimeout.seconds > 0 else { throw ValidationError("--statement-timeout must be more than 0") }
        guard reportInterval.seconds > 0 else { throw ValidationError("--report-interval must be more than 0") }
        if !`init`, !reset, repoDSN == nil {
            throw ValidationError("--repo-dsn is required for a run: every acknowledged operation is recorded there")
        }
        if `init`, reset { throw ValidationError("give --init or --reset, not both") }
    }

    func probeOptions() throws -> FailoverProbeOptions {
        func nanos(_ seconds: Double) -> Int64 { Int64((seconds * 1e9).rounded()) }  // ≤ 1 week: fits
        return FailoverProbeOptions(
            primary: try DSN(parsing: primaryDSN), repo: try repoDSN.map { try DSN(parsing: $0) }, workers: parallelWorkers,
            durationNanos: nanos(duration.seconds), warmupNanos: nanos(warmupDuration.seconds),
            mix: try OperationMix(insert: insertPercent, update: updatePercent, delete: deletePercent),
            asyncRepo: asyncRepoMode, fullValidation: fullDataValidation, connectTimeoutNanos: nanos(rtoConnTimeout.seconds),
            statementTimeoutNanos: nanos(statementTimeout.seconds), retryIntervalNanos: nanos(retryInterval.seconds),
            validationDelayNanos: nanos(validationDelay.seconds), reportIntervalNanos: nanos(reportInterval.seconds))
    }

    func run() async throws {
        try checkOutputs("failover", [("--summary-json", summaryJSON)])
        let options = try probeOptions()  // checked in validate()
        let metricsAddress = try metrics.parsed()
        let metadata = RunMetadata()
        // The repo's run_id is the summary's: one id finds a run's ledger.
        let probe = FailoverProbe(options: options, runID: metadata.run_id)
        if `init` || reset {
            do {
                if `init` { try await probe.initialize() } else { try await probe.reset() }
            } catch {
                emitError("pgprobe failover: \(UserMessage.describe(error))")
                throw ExitStatus.runFailed
            }
            emit("pgprobe failover: \(`init` ? "created" : "emptied") \(FailoverProbe.table(1))…\(FailoverProbe.table(parallelWorkers))"
                + (options.repo == nil ? "" : " and \(FailoverProbe.repoTable)"))
            return
        }
        let live = QueryMetrics(on: MultiThreadedEventLoopGroup.singleton.next())
        let metricsServer = try await startMetrics(metricsAddress, live, tool: "pgprobe failover")
        emit(
            "pgprobe failover: \(options.primary.redacted), \(parallelWorkers) workers, mix \(insertPercent)/\(updatePercent)/\(deletePercent) "
                + "insert/update/delete, for \(Human.duration(seconds: duration.seconds))"
                + (warmupDuration.seconds > 0 ? " after \(Human.duration(seconds: warmupDuration.seconds)) of warm-up" : "")
                + "; repo \(options.repo?.redacted ?? "none") (\(asyncRepoMode ? "async" : "sync")), run \(probe.runID)")
        let recorder = await startRecording(store, command: "failover", metadata: metadata, settings: settings(options))
        let result = await runUntilInterrupted { () -> Result<FailoverSummary, FailoverProbeError> in
            do {
                return .success(
                    try await probe.run { event in
                        switch event {
                        case .progress(let line), .notice(let line): emit(line)
                        case .operation(_, _, _, let latencyNanos):
                            // A write without an answer (nil) counts as an error of its interval.
                            recorder?.record(latencyNanos: latencyNanos)
                            live.record(latencyNanos: latencyNanos)
                        }
                    })
            } catch let error as FailoverProbeError {
                return .failure(error)
            } catch {
                return .failure(FailoverProbeError(UserMessage.describe(error)))
            }
        }
        await metricsServer?.stop()
        let summary: FailoverSummary
        switch result {
        case .success(let value): summary = value
        case .failure(let error):
            emitError("pgprobe failover: \(error)")
            await finishRecording(
                recorder, command: "failover", summary: nil as FailoverSummary?, error: "\(error)", metadata: metadata,
                settings: settings(options))
            throw ExitStatus.runFailed
        }
        for line in summary.boxLines { emit(line) }
        var written = true
        if let path = summaryJSON {
            written = writeSummary(summary, command: "failover", metadata: metadata, settings: settings(options), to: path)
        }
        await finishRecording(recorder, command: "failover", summary: summary, metadata: metadata, settings: settings(options))
        if !written { throw ExitStatus.runFailed }
        let unrecovered = summary.failovers.contains { $0.rto_s == nil }
        let invalid = summary.validation?.contains { !$0.md5_match || $0.count != $0.expected_count } ?? false
        if summary.noDataLoss != true || invalid || unrecovered { throw ExitStatus.measurementFailed }
    }

    /// What shaped the run, for the summary JSON's `settings`.
    func settings(_ options: FailoverProbeOptions) -> [String: Any] {
        [
            "primary_dsn": options.primary.redacted, "repo_dsn": options.repo?.redacted ?? NSNull(),
            "parallel_workers": options.workers, "duration_s": duration.seconds, "warmup_duration_s": warmupDuration.seconds,
            "insert_percent": insertPercent, "update_percent": updatePercent, "delete_percent": deletePercent,
            "async_repo_mode": asyncRepoMode, "full_data_validation": fullDataValidation,
            "rto_conn_timeout_ms": rtoConnTimeout.seconds * 1000, "statement_timeout_s": statementTimeout.seconds,
            "retry_interval_s": retryInterval.seconds, "validation_delay_s": validationDelay.seconds,
        ]
    }
}
