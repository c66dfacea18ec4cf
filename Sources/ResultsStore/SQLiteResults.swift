import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO

/// The embedded store: one SQLite file (sqlite-nio bundles SQLite; nothing to install). Several
/// processes may write it at once (a lab's sender and receiver): WAL journal, a busy timeout,
/// and migrations under an exclusive transaction. Calls run on sqlite-nio's thread pool, one at
/// a time per instance (the caller's order).
public final class SQLiteResults: ResultsBackend {
    /// `PRAGMA application_id` of our files ("VTPB"): tells our store from other SQLite files.
    public static let applicationID: Int = 0x5654_5042

    public let path: String
    public var name: String { path }
    private let connection: SQLiteConnection

    private init(path: String, connection: SQLiteConnection) {
        self.path = path
        self.connection = connection
    }

    /// Opens (with `create`, creates) the store at `path` and brings its schema up to date.
    public static func open(path: String, create: Bool = true) async throws(StoreError) -> SQLiteResults {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if isDirectory.boolValue { throw .cannotOpen(store: path, reason: "it is a directory; give a file path") }
        if !exists {
            guard create else { throw .cannotOpen(store: path, reason: "no such file (nothing recorded there yet?)") }
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
            guard FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory) else {
                throw .cannotOpen(store: path, reason: "no such directory \(directory)")
            }
        }
        let connection: SQLiteConnection
        do {
            var logger = Logger(label: "vtpbench.results.sqlite")
            logger.logLevel = .critical
            connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        } catch {
            throw .cannotOpen(store: path, reason: describe(error))
        }
        let store = SQLiteResults(path: path, connection: connection)
        do {
            try await store.prepare()
        } catch {
            await store.close()
            throw error
        }
        return store
    }

    private func prepare() async throws(StoreError) {
        do {
            _ = try await connection.query("PRAGMA busy_timeout = 10000")
            // The first read of the header: a non-database file fails here.
            let applicationID = try await connection.query("PRAGMA application_id").first?.column("application_id")?
                .integer ?? 0
            let tables = try await connection.query("SELECT name FROM sqlite_master WHERE type = 'table'")
                .compactMap { $0.column("name")?.string }
            if applicationID != Self.applicationID {
                let ours = tables.contains(Migrations.table)
                if applicationID != 0 || (!tables.isEmpty && !ours) {
                    let shown = tables.prefix(3).joined(separator: ", ")
                    throw StoreError.foreignFile(
                        path: path,
                        reason: tables.isEmpty
                            ? "another application's SQLite file"
                            : "an SQLite file with other tables (\(shown)\(tables.count > 3 ? ", …" : ""))")
                }
            }
            _ = try await connection.query("PRAGMA journal_mode = WAL")
            _ = try await connection.query("PRAGMA foreign_keys = ON")
            try await migrate()
        } catch let error as StoreError {
            throw error
        } catch {
            throw storeError(error)
        }
    }

    private func migrate() async throws {
        // Exclusive at once: two processes creating the same new store take turns.
        try await transaction {
            _ = try await self.connection.query("PRAGMA application_id = \(Self.applicationID)")
            _ = try await self.connection.query(
                "CREATE TABLE IF NOT EXISTS \(Migrations.table) (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL, description TEXT NOT NULL)"
            )
            let current =
                try await self.connection.query("SELECT max(version) AS v FROM \(Migrations.table)").first?.column("v")?
                .integer ?? 0
            for migration in try Migrations.pending(after: current, store: self.path) {
                for statement in migration.sqlite { _ = try await self.connection.query(statement) }
                _ = try await self.connection.query(
                    "INSERT INTO \(Migrations.table) (version, applied_at, description) VALUES (?, ?, ?)",
                    [.integer(migration.version), .text(StoreTime.string(Date())), .text(migration.description)])
            }
        }
    }

    /// The schema version recorded in the file.
    public func schemaVersion() async throws -> Int {
        try await connection.query("SELECT max(version) AS v FROM \(Migrations.table)").first?.column("v")?.integer ?? 0
    }

    private func transaction<T>(_ body: () async throws -> T) async throws -> T {
        _ = try await connection.query("BEGIN IMMEDIATE")
        do {
            let value = try await body()
            _ = try await connection.query("COMMIT")
            return value
        } catch {
            _ = try? await connection.query("ROLLBACK")
            throw error
        }
    }

    private func run<T>(_ body: () async throws -> T) async throws(StoreError) -> T {
        do { return try await body() } catch let error as StoreError { throw error } catch { throw storeError(error) }
    }

    private func storeError(_ error: any Error) -> StoreError {
        if let sqlite = error as? SQLiteError, sqlite.reason == .notADatabase {
            return .foreignFile(path: path, reason: "not an SQLite database (damaged, or another kind of file)")
        }
        return .failed(store: path, reason: Self.describe(error))
    }

    static func describe(_ error: any Error) -> String {
        if let sqlite = error as? SQLiteError { return sqlite.message }
        return String(describing: error)
    }

    // MARK: ResultsBackend

    public func begin(_ run: StoredRun) async throws {
        try await self.run {
            _ = try await connection.query(
                "INSERT OR IGNORE INTO vtpbench_runs (id, tool, tool_version, host, tester, started_at, ended_at, config, tags, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                Self.binds(run))
        }
    }

    public func append(_ intervals: [StoredInterval]) async throws {
        guard !intervals.isEmpty else { return }
        try await run { try await transaction { _ = try await insert(intervals) } }
    }

    public func finish(_ run: StoredRun) async throws {
        try await self.run {
            _ = try await connection.query(
                "UPDATE vtpbench_runs SET ended_at = ?, summary = ?, config = ?, tags = ? WHERE id = ?",
                [
                    run.endedAt.map { .text(StoreTime.string($0)) } ?? .null, run.summary.map { .text($0) } ?? .null,
                    .text(run.config), .text(JSONText.text(tags: run.tags)), .text(run.id),
                ])
        }
    }

    public func importRun(_ run: StoredRun, intervals: [StoredInterval]) async throws -> ImportResult {
        try await self.run {
            try await transaction {
                let existing = try await connection.query(
                    "SELECT ended_at FROM vtpbench_runs WHERE id = ?", [.text(run.id)]
                ).first
                let completes = existing != nil && existing?.column("ended_at")?.isNull != false && run.endedAt != nil
                if existing == nil {
                    _ = try await connection.query(
                        "INSERT INTO vtpbench_runs (id, tool, tool_version, host, tester, started_at, ended_at, config, tags, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        Self.binds(run))
                } else if completes {
                    _ = try await connection.query(
                        "UPDATE vtpbench_runs SET ended_at = ?, summary = ?, config = ? WHERE id = ?",
                        [
                            run.endedAt.map { .text(StoreTime.string($0)) } ?? .null,
                            run.summary.map { .text($0) } ?? .null, .text(run.config), .text(run.id),
                        ])
                }
                let added = try await insert(intervals)
                return ImportResult(newRun: existing == nil, completedRun: completes, newIntervals: added)
            }
        }
    }

    /// Inserts, skipping (run, seq) pairs already there; returns how many were new.
    private func insert(_ intervals: [StoredInterval]) async throws -> Int {
        var added = 0
        for interval in intervals {
            let binds: [SQLiteData] = [
                .text(interval.runID), .integer(interval.seq), .text(StoreTime.string(interval.startedAt)),
                .float(interval.durationSeconds), .integer(interval.events), .integer(interval.count),
                Self.real(interval.min), Self.real(interval.mean), Self.real(interval.max), Self.real(interval.p50),
                Self.real(interval.p90), Self.real(interval.p99), Self.real(interval.p999), .integer(interval.naks),
                .integer(interval.errors), Self.int(interval.duplicates), Self.int(interval.missing),
                Self.int(interval.backlog), Self.int(interval.openConnections),
                .blob(ByteBuffer(bytes: interval.histogram)),
            ]
            let rows = try await connection.query(
                """
                INSERT OR IGNORE INTO vtpbench_intervals (run_id, seq, started_at, duration_s, events, count, min_s,
                mean_s, max_s, p50_s, p90_s, p99_s, p999_s, naks, errors, duplicates, missing, backlog,
                open_connections, histogram) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                RETURNING seq
                """, binds)
            added += rows.count
        }
        return added
    }

    public func runs(_ filter: RunFilter) async throws -> [StoredRun] {
        try await run {
            let rows = try await connection.query("SELECT * FROM vtpbench_runs ORDER BY started_at, id")
            return rows.compactMap(Self.run(from:)).filter(filter.matches)
        }
    }

    public func intervals(of runID: String) async throws -> [StoredInterval] {
        try await run {
            let rows = try await connection.query(
                "SELECT * FROM vtpbench_intervals WHERE run_id = ? ORDER BY seq", [.text(runID)])
            return rows.compactMap(Self.interval(from:))
        }
    }

    public func close() async { try? await connection.close() }

    // MARK: rows

    static func binds(_ run: StoredRun) -> [SQLiteData] {
        [
            .text(run.id), .text(run.tool), .text(run.toolVersion), .text(run.host), .text(run.tester),
            .text(StoreTime.string(run.startedAt)), run.endedAt.map { .text(StoreTime.string($0)) } ?? .null,
            .text(run.config), .text(JSONText.text(tags: run.tags)), run.summary.map { .text($0) } ?? .null,
        ]
    }

    static func real(_ value: Double?) -> SQLiteData { value.map { .float($0) } ?? .null }
    static func int(_ value: Int?) -> SQLiteData { value.map { .integer($0) } ?? .null }

    /// A row written by someone else may be damaged: such a row is skipped, not a crash.
    static func run(from row: SQLiteRow) -> StoredRun? {
        guard let id = row.column("id")?.string, let tool = row.column("tool")?.string,
            let started = row.column("started_at")?.string.flatMap(StoreTime.date)
        else { return nil }
        return StoredRun(
            id: id, tool: tool, toolVersion: row.column("tool_version")?.string ?? "", host: row.column("host")?.string ?? "",
            tester: row.column("tester")?.string ?? "", startedAt: started,
            endedAt: row.column("ended_at")?.string.flatMap(StoreTime.date), config: row.column("config")?.string ?? "{}",
            tags: JSONText.tags(row.column("tags")?.string), summary: row.column("summary")?.string)
    }

    static func interval(from row: SQLiteRow) -> StoredInterval? {
        func int(_ name: String) -> Int? { row.column(name).flatMap { $0.isNull ? nil : $0.integer } }
        func real(_ name: String) -> Double? { row.column(name).flatMap { $0.isNull ? nil : $0.double } }
        guard let runID = row.column("run_id")?.string, let seq = int("seq"),
            let started = row.column("started_at")?.string.flatMap(StoreTime.date)
        else { return nil }
        let blob = row.column("histogram")?.blob
        return StoredInterval(
            runID: runID, seq: seq, startedAt: started, durationSeconds: real("duration_s") ?? 0, events: int("events") ?? 0,
            count: int("count") ?? 0, min: real("min_s"), mean: real("mean_s"), max: real("max_s"), p50: real("p50_s"),
            p90: real("p90_s"), p99: real("p99_s"), p999: real("p999_s"), naks: int("naks") ?? 0, errors: int("errors") ?? 0,
            duplicates: int("duplicates"), missing: int("missing"), backlog: int("backlog"),
            openConnections: int("open_connections"), histogram: blob.map { Array($0.readableBytesView) } ?? [])
    }
}
