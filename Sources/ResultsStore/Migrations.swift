/// The results schema, as numbered migrations applied in order, once each, on first use of a
/// store (SQLite file or PostgreSQL collector). `vtpbench_migrations` records which ran. A
/// migration is never edited after release: changes are new migrations.
public struct Migration: Sendable {
    public var version: Int
    public var description: String
    public var sqlite: [String]
    public var postgres: [String]
}

public enum Migrations {
    public static let table = "vtpbench_migrations"

    public static let all: [Migration] = [
        Migration(
            version: 1, description: "runs and report intervals with their latency histograms",
            sqlite: [
                """
                CREATE TABLE vtpbench_runs (
                    id TEXT PRIMARY KEY, tool TEXT NOT NULL, tool_version TEXT NOT NULL, host TEXT NOT NULL,
                    tester TEXT NOT NULL, started_at TEXT NOT NULL, ended_at TEXT, config TEXT NOT NULL,
                    tags TEXT NOT NULL, summary TEXT)
                """,
                "CREATE INDEX vtpbench_runs_started ON vtpbench_runs (started_at)",
                """
                CREATE TABLE vtpbench_intervals (
                    run_id TEXT NOT NULL REFERENCES vtpbench_runs (id) ON DELETE CASCADE, seq INTEGER NOT NULL,
                    started_at TEXT NOT NULL, duration_s REAL NOT NULL, events INTEGER NOT NULL,
                    count INTEGER NOT NULL, min_s REAL, mean_s REAL, max_s REAL, p50_s REAL, p90_s REAL,
                    p99_s REAL, p999_s REAL, naks INTEGER NOT NULL, errors INTEGER NOT NULL, duplicates INTEGER,
                    missing INTEGER, backlog INTEGER, open_connections INTEGER, histogram BLOB NOT NULL,
                    PRIMARY KEY (run_id, seq))
                """,
            ],
            postgres: [
                """
                CREATE TABLE vtpbench_runs (
                    id uuid PRIMARY KEY, tool text NOT NULL, tool_version text NOT NULL, host text NOT NULL,
                    tester text NOT NULL, started_at timestamptz NOT NULL, ended_at timestamptz,
                    config jsonb NOT NULL, tags jsonb NOT NULL, summary jsonb,
                    recorded_by name NOT NULL DEFAULT current_user)
                """,
                "CREATE INDEX vtpbench_runs_started ON vtpbench_runs (started_at)",
                "CREATE INDEX vtpbench_runs_tags ON vtpbench_runs USING gin (tags)",
                """
                CREATE TABLE vtpbench_intervals (
                    run_id uuid NOT NULL REFERENCES vtpbench_runs (id) ON DELETE CASCADE, seq integer NOT NULL,
                    started_at timestamptz NOT NULL, duration_s double precision NOT NULL, events bigint NOT NULL,
                    count bigint NOT NULL, min_s double precision, mean_s double precision,
                    max_s double precision, p50_s double precision, p90_s double precision,
                    p99_s double precision, p999_s double precision, naks bigint NOT NULL, errors bigint NOT NULL,
                    duplicates bigint, missing bigint, backlog bigint, open_connections bigint,
                    histogram bytea NOT NULL, recorded_by name NOT NULL DEFAULT current_user,
                    PRIMARY KEY (run_id, seq))
                """,
                // Each tester is a role: it reads everything, writes rows as itself, and changes or
                // deletes only its own (docs/results.md has the GRANTs that let a role in).
                "ALTER TABLE vtpbench_runs ENABLE ROW LEVEL SECURITY",
                "ALTER TABLE vtpbench_intervals ENABLE ROW LEVEL SECURITY",
                "CREATE POLICY read_all ON vtpbench_runs FOR SELECT USING (true)",
                "CREATE POLICY insert_own ON vtpbench_runs FOR INSERT WITH CHECK (recorded_by = current_user)",
                "CREATE POLICY update_own ON vtpbench_runs FOR UPDATE USING (recorded_by = current_user) WITH CHECK (recorded_by = current_user)",
                "CREATE POLICY delete_own ON vtpbench_runs FOR DELETE USING (recorded_by = current_user)",
                "CREATE POLICY read_all ON vtpbench_intervals FOR SELECT USING (true)",
                """
                CREATE POLICY insert_own ON vtpbench_intervals FOR INSERT WITH CHECK (
                    recorded_by = current_user
                    AND EXISTS (SELECT 1 FROM vtpbench_runs r WHERE r.id = run_id AND r.recorded_by = current_user))
                """,
                "CREATE POLICY delete_own ON vtpbench_intervals FOR DELETE USING (recorded_by = current_user)",
            ]),
    ]

    public static var latest: Int { all.last?.version ?? 0 }

    /// The migrations a store at `current` still needs; throws when the store is newer than us.
    public static func pending(after current: Int, store: String) throws(StoreError) -> [Migration] {
        guard current <= latest else { throw .newerSchema(store: store, found: current, known: latest) }
        return all.filter { $0.version > current }
    }
}
