import ArgumentParser
import CommandLineKit
import PGProbeCore

/// The defaults in which `query` and `crosscheck` differ.
protocol ProbeDefaults {
    static var count: Int { get }
    static var intervalMilliseconds: Double { get }
    static var summaryKeys: String { get }
}

enum QueryDefaults: ProbeDefaults {
    static let count = 10
    static let intervalMilliseconds = 100.0
    static let summaryKeys = #"{"count","failed","latency_s":{…}}"#
}

enum CrosscheckDefaults: ProbeDefaults {
    static let count = 100
    static let intervalMilliseconds = 20.0
    static let summaryKeys = #"{"matched","unmatched","client_s","wire_rtt_s","client_minus_wire_s"}"#
}

/// What `query` and `crosscheck` share: the connection, the query and the load.
struct ProbeOptions<Defaults: ProbeDefaults>: ParsableArguments {
    @Option(help: "Connection string: postgres://user[:password]@host:port/database or 'host=… port=… user=… dbname=…'.")
    var dsn: String

    @Option(help: "SQL to run each time.")
    var query: String = "SELECT 1"

    @Option(
        parsing: .unconditional,
        help: "Number of queries over all clients (default \(Defaults.count)); with --duration, whichever ends first.")
    var count: Int?

    @Option(
        parsing: .unconditional,
        help: "Each client's pause between queries; a bare number is milliseconds (default \(Human.significant(Defaults.intervalMilliseconds)), or 0.5s, 250us).")
    var interval: MillisecondsArgument?

    @Option(
        parsing: .unconditional,
        help: "Time before a connection attempt or a query counts as failed; a bare number is seconds (default 10, or 500ms).")
    var timeout = SecondsArgument(seconds: 10)

    @Option(parsing: .unconditional, help: "Concurrent clients, each with its own connection (like pgbench -c).")
    var clients = 1

    @Option(
        parsing: .unconditional,
        help: "Queries per second over all clients, started on a fixed schedule (like pgbench -R; instead of --interval).")
    var rate: Double?

    @Option(
        parsing: .unconditional,
        help: "Run this long (like pgbench -T); a bare number is seconds (30, 2m). Without --count, no query limit.")
    var duration: SecondsArgument?

    @Flag(help: "No line per query: only the final statistics.")
    var quiet = false

    @Option(name: .customLong("summary-json"), help: "Write \(Defaults.summaryKeys) and the run's metadata here at the end.")
    var summaryJSON: String?

    mutating func validate() throws {
        do { _ = try DSN(parsing: dsn) } catch { throw ValidationError(error.description) }
        guard !query.isEmpty else { throw ValidationError("--query is empty") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1 (got \(count))") }
        guard (1...1000).contains(clients) else {
            throw ValidationError("--clients must be between 1 and 1000 (got \(clients))")
        }
        if let rate, !(rate > 0 && rate <= 1_000_000) {
            throw ValidationError("--rate must be more than 0 and at most 1000000 queries/s (got \(rate))")
        }
        if rate != nil, interval != nil {
            throw ValidationError("give --rate or --interval, not both (--rate sets the pace of every query)")
        }
        guard timeout.seconds > 0 else { throw ValidationError("--timeout must be more than 0") }
        if let duration, !(duration.seconds > 0) { throw ValidationError("--duration must be more than 0") }
    }

    /// The probe's options (after `validate`).
    func probeOptions() throws -> QueryProbeOptions {
        let intervalSeconds = interval?.seconds ?? Defaults.intervalMilliseconds / 1000
        return QueryProbeOptions(
            dsn: try DSN(parsing: dsn), query: query, count: count ?? (duration == nil ? Defaults.count : Int.max),
            intervalNanos: Int64(intervalSeconds * 1e9), timeoutNanos: Int64(timeout.seconds * 1e9), clients: clients,
            ratePerSecond: rate, durationNanos: duration.map { Int64($0.seconds * 1e9) })
    }

    /// What shaped the run, for the summary JSON's `settings`.
    func settings(_ probe: QueryProbeOptions) -> [String: Any] {
        var settings: [String: Any] = [
            "dsn": probe.dsn.redacted, "query": probe.query, "clients": probe.clients,
            "timeout_s": Double(probe.timeoutNanos) / 1e9,
        ]
        if probe.count != Int.max { settings["count"] = probe.count }
        if let rate = probe.ratePerSecond { settings["rate"] = rate } else { settings["interval_s"] = Double(probe.intervalNanos) / 1e9 }
        if let duration = probe.durationNanos { settings["duration_s"] = Double(duration) / 1e9 }
        return settings
    }

    /// `1000 × "SELECT 1", 4 clients, rate 500 queries/s, for 30.0 s`
    func describe(_ probe: QueryProbeOptions) -> String {
        var parts = [
            (probe.count == Int.max ? "" : "\(probe.count) × ") + oneLine(probe.query),
            probe.clients == 1 ? "1 client" : "\(probe.clients) clients",
        ]
        if let rate = probe.ratePerSecond {
            parts.append("rate " + Human.rate(rate, unit: "queries"))
        } else {
            parts.append("interval " + Human.duration(seconds: Double(probe.intervalNanos) / 1e9))
        }
        if let duration = probe.durationNanos { parts.append("for " + Human.duration(seconds: Double(duration) / 1e9)) }
        return parts.joined(separator: ", ")
    }

    private func oneLine(_ sql: String) -> String {
        "\"" + sql.split(whereSeparator: \.isWhitespace).joined(separator: " ") + "\""
    }
}

/// Output paths are checked before anything is measured: one line, exit 64.
func checkOutputs(_ command: String, _ outputs: [(flag: String, path: String?)]) throws {
    do {
        try OutputPaths.check(outputs)
    } catch {
        emitError("pgprobe \(command): \(error)")
        throw ExitStatus.usage
    }
}

/// Writes a summary with the run's metadata; a failure is one line (the summary was printed).
func writeSummary<T: Encodable>(
    _ summary: T, command: String, metadata: RunMetadata, settings: [String: Any], extra: [String: Any] = [:],
    to path: String
) -> Bool {
    do {
        var object = try SummaryJSON.object(summary, metadata: metadata, settings: settings)
        object.merge(extra) { _, new in new }
        try SummaryJSON.writeObject(object, to: path)
        return true
    } catch {
        emitError("pgprobe \(command): \(UserMessage.describe(error))")
        return false
    }
}
