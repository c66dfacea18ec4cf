import ArgumentParser
import Foundation
import PGProbeCore

struct QueryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Time queries end to end (send → result complete) over postgres-nio.",
        discussion: """
            Each of --count attempts runs the query once; a refused connection or a server restart
            costs that attempt (counted as failed) and the next one reconnects. Exit status: 0 when
            every query succeeded, 1 when some failed, 2 when the server rejected the login (wrong
            user, password or database: retrying cannot help), 64 on bad arguments.
            """)

    @Option(help: "Connection string: postgres://user[:password]@host:port/database or 'host=… port=… user=… dbname=…'.")
    var dsn: String

    @Option(help: "SQL to run each time.")
    var query: String = "SELECT 1"

    @Option(help: "Number of queries.")
    var count: Int = 10

    @Option(help: "Pause between queries in milliseconds.")
    var interval: Double = 100

    @Option(help: "Seconds before a connection attempt or a query counts as failed.")
    var timeout: Double = 10

    @Option(name: .customLong("summary-json"), help: "Write {\"count\",\"failed\",\"latency_s\":{…}} here at the end.")
    var summaryJSON: String?

    func validate() throws {
        do { _ = try DSN(parsing: dsn) } catch { throw ValidationError(error.description) }
        guard count > 0 else { throw ValidationError("--count must be at least 1") }
        guard interval >= 0, interval.isFinite else { throw ValidationError("--interval must be ≥ 0 milliseconds") }
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be > 0 seconds") }
        guard !query.isEmpty else { throw ValidationError("--query is empty") }
    }

    func run() async throws {
        let parsed = try DSN(parsing: dsn)  // checked in validate()
        let options = QueryProbeOptions(
            dsn: parsed, query: query, count: count, intervalNanos: Int64(interval * 1e6), timeoutNanos: Int64(timeout * 1e9))
        emit("pgprobe query: \(parsed.redacted), \(count) × \(Self.oneLine(query)), interval \(interval) ms")
        let statistics = StatisticsBox()
        let outcome = await runUntilInterrupted {
            try await QueryProbe(options: options).run { outcome in
                emit(await statistics.add(outcome))
            }
        }
        let final = await statistics.value
        emit(final.finalLine)
        if let summaryJSON { try writeSummaryJSON(final.summary, to: summaryJSON) }
        switch outcome {
        case .finished, .interrupted: break
        case .failed(let error):
            emitError("pgprobe query: \(error)")
            throw ExitCode(2)
        }
        if final.failed > 0 { throw ExitCode(1) }
    }

    static func oneLine(_ sql: String) -> String {
        "\"" + sql.split(whereSeparator: \.isWhitespace).joined(separator: " ") + "\""
    }
}

actor StatisticsBox {
    var value = QueryStatistics()
    func add(_ outcome: QueryOutcome) -> String { value.add(outcome) }
}
