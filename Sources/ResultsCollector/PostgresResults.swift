import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import ResultsStore

/// The shared collector: the results schema in a PostgreSQL database that testers on many
/// hosts write into, each as its own role (row-level security: a role reads everything and
/// changes only its own rows; see docs/results.md for the GRANTs). One connection, one call at
/// a time (the caller's order).
public final class PostgresResults: ResultsBackend {
    public let url: CollectorURL
    public var name: String { url.redacted }
    private let connection: PostgresConnection
    private let logger: Logger

    private init(url: CollectorURL, connection: PostgresConnection, logger: Logger) {
        self.url = url
        self.connection = connection
        self.logger = logger
    }

    /// Connects and brings the schema up to date (with `migrate` false, only checks it is).
    public static func open(_ url: CollectorURL, connectTimeout: TimeAmount = .seconds(10), migrate: Bool = true)
        async throws(StoreError) -> PostgresResults
    {
        var logger = Logger(label: "vtpbench.results.postgres")
        logger.logLevel = .critical
        let tls: PostgresConnection.Configuration.TLS
        do {
            switch url.tls {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: .makeClientConfiguration()))
            case .require: tls = .require(try NIOSSLContext(configuration: .makeClientConfiguration()))
            }
        } catch {
            throw .cannotOpen(store: url.redacted, reason: "TLS set-up failed: \(error)")
        }
        var configuration = PostgresConnection.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: tls)
        configuration.options.connectTimeout = connectTimeout
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        } catch {
            throw classify(error, url: url)
        }
        let store = PostgresResults(url: url, connection: connection, logger: logger)
        do {
            try await store.prepare(migrate: migrate)
        } catch {
            await store.close()
            throw error
        }
        return store
    }

    // MARK: schema

    /// The schema version recorded in the database (0: none yet).
    public func schemaVersion() async throws(StoreError) -> Int {
        try await run {
            let exists = try await connection.query("SELECT to_regclass('vtpbench_migrations') IS NOT NULL", logger: logger)
                .collect().first?.decode(Bool.self) ?? false
            guard exists else { return 0 }
            return try await connection.query("SELECT coalesce(max(version), 0) FROM vtpbench_migrations", logger: logger)
                .collect().first?.decode(Int.self) ?? 0
        }
    }

    private func prepare(migrate: Bool) async throws(StoreError) {
        // A tester role usually may not create tables: when nothing is pending, touch no DDL.
        let current = try await schemaVersion()
        let pending = try Migrations.pending(after: current, store: name)
        guard !pending.isEmpty else { return }
        guard migrate else {
            throw .failed(store: name, reason: "its schema is at version \(current), this vtpbench needs \(Migrations.latest)")
        }
        do {
            try await connection.withTransaction(logger: logger) { connection in
                // One migrator at a time across hosts; the others find the work done.
                try await connection.query("SELECT pg_advisory_xact_lock(hashtext('vtpbench_migrations'))", logger: logger)
                try await connection.query(
                    "CREATE TABLE IF NOT EXISTS vtpbench_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), description text NOT NULL)",
                    logger: logger)
                let now = try await connection.query("SELECT coalesce(max(version), 0) FROM vtpbench_migrations", logger: logger)
                    .collect().first?.decode(Int.self) ?? 0
                for migration in Migrations.all where migration.version > now {
                    for statement in migration.postgres {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(
                        "INSERT INTO vtpbench_migrations (version, description) VALUES (\(migration.version), \(migration.description))",
                        logger: logger)
                }
            }
        } catch {
            let reason = Self.describe(error)
            if reason.contains("permission denied") || reason.contains("must be owner") {
                throw .unauthorised(
                    store: name,
                    reason: "its results schema is missing or older (version \(current), needed \(Migrations.latest)) and role "
                        + "\(url.user) may not create it; run `vtp-report migrate --store postgresql://OWNER@…` as the database owner once (docs/results.md)"
                )
            }
            throw .failed(store: name, reason: "creating the results schema failed: \(reason)")
        }
    }

    // MARK: ResultsBackend

    public func begin(_ run: StoredRun) async throws {
        try await self.run { _ = try await insertRun(run, on: connection) }
    }

    public func append(_ intervals: [StoredInterval]) async throws {
        try await run {
            try await connection.withTransaction(logger: logger) { connection in
                _ = try await self.insert(intervals, on: connection)
            }
        }
    }

    public func finish(_ run: StoredRun) async throws {
        try await self.run {
            var binds = PostgresBindings()
            binds.append(run.endedAt)
            binds.append(run.summary)
            binds.append(run.config)
            binds.append(JSONText.text(tags: run.tags))
            binds.append(run.id)
            try await connection.query(
                PostgresQuery(
                    unsafeSQL:
                        "UPDATE vtpbench_runs SET ended_at = $1, summary = $2::jsonb, config = $3::jsonb, tags = $4::jsonb WHERE id = $5::uuid",
                    binds: binds), logger: logger)
        }
    }

    public func importRun(_ run: StoredRun, intervals: [StoredInterval]) async throws -> ImportResult {
        try await self.run {
            try await connection.withTransaction(logger: logger) { connection in
                let inserted = try await self.insertRun(run, on: connection)
                var completed = false
                if !inserted, let endedAt = run.endedAt {
                    var binds = PostgresBindings()
                    binds.append(endedAt)
                    binds.append(run.summary)
                    binds.append(run.config)
                    binds.append(run.id)
                    completed =
                        try await connection.query(
                            PostgresQuery(
                                unsafeSQL:
                                    "UPDATE vtpbench_runs SET ended_at = $1, summary = $2::jsonb, config = $3::jsonb WHERE id = $4::uuid AND ended_at IS NULL RETURNING id",
                                binds: binds), logger: self.logger
                        ).collect().count > 0
                }
                let added = try await self.insert(intervals, on: connection)
                return ImportResult(newRun: inserted, completedRun: completed, newIntervals: added)
            }
        }
    }

    public func runs(_ filter: RunFilter) async throws -> [StoredRun] {
        try await run {
            let rows = try await connection.query(
                """
                SELECT id::text, tool, tool_version, host, tester, started_at, ended_at, config::text, tags::text,
                summary::text FROM vtpbench_runs ORDER BY started_at, id
                """, logger: logger
            ).collect()
            return try rows.map { row in
                let (id, tool, version, host, tester, started, ended, config, tags, summary) = try row.decode(
                    (String, String, String, String, String, Date, Date?, String, String, String?).self)
                return StoredRun(
                    id: id, tool: tool, toolVersion: version, host: host, tester: tester, startedAt: started,
                    endedAt: ended, config: config, tags: JSONText.tags(tags), summary: summary)
            }
            .filter(filter.matches)
        }
    }

    public func intervals(of runID: String) async throws -> [StoredInterval] {
        try await run {
            var binds = PostgresBindings()
            binds.append(runID)
            let rows = try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        SELECT run_id::text, seq, started_at, duration_s, events, count, min_s, mean_s, max_s, p50_s,
                        p90_s, p99_s, p999_s, naks, errors, duplicates, missing, backlog, open_connections, histogram
                        FROM vtpbench_intervals WHERE run_id = $1::uuid ORDER BY seq
                        """, binds: binds), logger: logger
            ).collect()
            return try rows.map { row in
                let cells = row.makeRandomAccess()
                func real(_ name: String) throws -> Double? { try cells[name].decode(Double?.self) }
                func int(_ name: String) throws -> Int? { try cells[name].decode(Int?.self) }
                return StoredInterval(
                    runID: try cells["run_id"].decode(String.self), seq: try cells["seq"].decode(Int.self),
                    startedAt: try cells["started_at"].decode(Date.self), durationSeconds: try real("duration_s") ?? 0,
                    events: try int("events") ?? 0, count: try int("count") ?? 0, min: try real("min_s"),
                    mean: try real("mean_s"), max: try real("max_s"), p50: try real("p50_s"), p90: try real("p90_s"),
                    p99: try real("p99_s"), p999: try real("p999_s"), naks: try int("naks") ?? 0,
                    errors: try int("errors") ?? 0, duplicates: try int("duplicates"), missing: try int("missing"),
                    backlog: try int("backlog"), openConnections: try int("open_connections"),
                    histogram: Array((try cells["histogram"].decode(ByteBuffer.self)).readableBytesView))
            }
        }
    }

    public func close() async { try? await connection.close() }

    // MARK: statements

    /// Inserts the run unless its id is there; returns whether it was inserted.
    private func insertRun(_ run: StoredRun, on connection: PostgresConnection) async throws -> Bool {
        var binds = PostgresBindings()
        binds.append(run.id)
        binds.append(run.tool)
        binds.append(run.toolVersion)
        binds.append(run.host)
        binds.append(run.tester)
        binds.append(run.startedAt)
        binds.append(run.endedAt)
        binds.append(run.config)
        binds.append(JSONText.text(tags: run.tags))
        binds.append(run.summary)
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: """
                    INSERT INTO vtpbench_runs (id, tool, tool_version, host, tester, started_at, ended_at, config, tags, summary)
                    VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb, $10::jsonb)
                    ON CONFLICT (id) DO NOTHING RETURNING id
                    """, binds: binds), logger: logger
        ).collect()
        return !rows.isEmpty
    }

    static let intervalColumns = 20

    /// Multi-row inserts (200 rows a statement), skipping (run, seq) pairs already there.
    private func insert(_ intervals: [StoredInterval], on connection: PostgresConnection) async throws -> Int {
        var added = 0
        var start = 0
        while start < intervals.count {
            let chunk = intervals[start..<min(start + 200, intervals.count)]
            start += chunk.count
            var binds = PostgresBindings()
            var tuples: [String] = []
            for interval in chunk {
                let base = binds.count
                tuples.append(
                    "(" + (1...Self.intervalColumns).map { "$\(base + $0)" + ($0 == 1 ? "::uuid" : "") }.joined(separator: ", ")
                        + ")")
                binds.append(interval.runID)
                binds.append(interval.seq)
                binds.append(interval.startedAt)
                binds.append(interval.durationSeconds)
                binds.append(interval.events)
                binds.append(interval.count)
                for value in [interval.min, interval.mean, interval.max, interval.p50, interval.p90, interval.p99, interval.p999] {
                    binds.append(value)
                }
                binds.append(interval.naks)
                binds.append(interval.errors)
                for value in [interval.duplicates, interval.missing, interval.backlog, interval.openConnections] {
                    binds.append(value)
                }
                binds.append(ByteBuffer(bytes: interval.histogram))
            }
            let rows = try await connection.query(
                PostgresQuery(
                    unsafeSQL: """
                        INSERT INTO vtpbench_intervals (run_id, seq, started_at, duration_s, events, count, min_s, mean_s,
                        max_s, p50_s, p90_s, p99_s, p999_s, naks, errors, duplicates, missing, backlog, open_connections,
                        histogram) VALUES \(tuples.joined(separator: ", "))
                        ON CONFLICT (run_id, seq) DO NOTHING RETURNING seq
                        """, binds: binds), logger: logger
            ).collect()
            added += rows.count
        }
        return added
    }

    // MARK: errors

    private func run<T>(_ body: () async throws -> T) async throws(StoreError) -> T {
        do { return try await body() } catch let error as StoreError { throw error } catch {
            throw Self.classify(error, url: url)
        }
    }

    /// Unreachable (network), unauthorised (login, permissions, row-level security) or failed.
    static func classify(_ error: any Error, url: CollectorURL) -> StoreError {
        let reason = describe(error)
        if let psql = error as? PSQLError {
            let state = psql.serverInfo?[.sqlState] ?? ""
            // 28xxx login, 42501 insufficient privilege, 3D000 no such database.
            if state.hasPrefix("28") || state == "42501" || state == "3D000"
                || [.unsupportedAuthMechanism, .authMechanismRequiresPassword, .saslError].contains(psql.code)
            {
                return .unauthorised(store: url.redacted, reason: reason)
            }
            if psql.code == .connectionError || psql.code == .serverClosedConnection || psql.code == .uncleanShutdown {
                return .unreachable(store: url.redacted, reason: reason)
            }
            return .failed(store: url.redacted, reason: reason)
        }
        if error is NIOConnectionError || error is IOError || error is ChannelError {
            return .unreachable(store: url.redacted, reason: reason)
        }
        return .failed(store: url.redacted, reason: reason)
    }

    /// postgres-nio's own descriptions are redacted; say what the server or socket said.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let psql as PSQLError:
            if let info = psql.serverInfo { return info[.message] ?? "server error" }
            if let underlying = psql.underlying { return describe(underlying) }
            switch psql.code {
            case .authMechanismRequiresPassword: return "the server asks for a password (put it in the URL or PGPASSWORD)"
            case .sslUnsupported: return "the server does not offer TLS (add ?sslmode=disable to the URL)"
            default: return "\(psql.code)"
            }
        case let transaction as PostgresTransactionError:
            if let error = transaction.closureError ?? transaction.beginError ?? transaction.commitError {
                return describe(error)
            }
            return "the transaction failed"
        case let connect as NIOConnectionError:
            let reasons = connect.connectionErrors.map { describe($0.error) }
            if reasons.isEmpty { return "cannot resolve \(connect.host)" }
            return Array(Set(reasons)).sorted().joined(separator: "; ")
        case let io as IOError:
            return String(cString: strerror(io.errnoCode))
        case let channel as ChannelError:
            if case .connectTimeout(let amount) = channel {
                return "no answer within \(amount.nanoseconds / 1_000_000_000) s"
            }
            return "\(channel)"
        default:
            return String(describing: error)
        }
    }
}
