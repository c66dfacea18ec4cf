import Foundation
import TestSupport
import XCTest

@testable import PGProbeCore

// The cluster's timing (scripts/pg-ha): ttl 20 s, loop_wait 2 s, retry_timeout 5 s.
private let ttl = 20.0
private let loopWait = 2.0
private let retryTimeout = 5.0

private func failovers(_ summary: [String: Any]) -> [[String: Any]] { summary["failovers"] as? [[String: Any]] ?? [] }
private func object(_ summary: [String: Any], _ key: String) -> [String: Any] { summary[key] as? [String: Any] ?? [:] }

private func assertEverythingResolvedAndValid(_ summary: [String: Any], file: StaticString = #filePath, line: UInt = #line) {
    let indeterminate = object(summary, "indeterminate")
    XCTAssertEqual(indeterminate["unresolved"] as? Int, 0, "\(indeterminate)", file: file, line: line)
    XCTAssertEqual(
        indeterminate["total"] as? Int, (indeterminate["applied"] as? Int ?? -1) + (indeterminate["not_applied"] as? Int ?? -1),
        file: file, line: line)
}

/// Synchronous mode: a hard kill of the leader, then a switchover, under load.
final class FailoverSyncTests: HAClusterTestCase {
    override class var haMode: String { "--sync" }

    func testAHardKillOfTheLeaderLosesNoAcknowledgedWriteAndTheRTOFollowsTheTTL() throws {
        let ha = try haCluster()
        let repo = try cluster()
        try ha.run("heal")
        let run = try FailoverRun(primary: ha.dsn, repo: repo.dsn, duration: "40s")
        XCTAssertTrue(run.waitForAcked(100), run.process.text)
        try ha.run("fail", "--kill")
        let (status, summary, output) = try run.finish(timeout: 150)
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(failovers(summary).count, 1, output)
        let failover = try XCTUnwrap(failovers(summary).first)
        let rto = try XCTUnwrap(failover["rto_s"] as? Double, output)
        // The dead leader's key expires ttl after its last renewal, at most loop_wait before
        // the kill; the replica notices within a loop. Lower bound: ttl − loop_wait − 1 s. The
        // upper one is Patroni's documented 15–22 s plus retry_timeout and 10 s for this loaded
        // 2-core machine: a sanity bound, not a tight one.
        XCTAssertGreaterThanOrEqual(rto, ttl - loopWait - 1, output)
        XCTAssertLessThan(rto, ttl + loopWait + retryTimeout + 10, output)
        let serviceAvailable = try XCTUnwrap(failover["service_available_s"] as? Double)
        let readWrite = try XCTUnwrap(failover["read_write_s"] as? Double)
        XCTAssertLessThanOrEqual(serviceAvailable, readWrite, "the standby accepts logins before it is promoted")
        XCTAssertEqual((failover["workers"] as? [[String: Any]])?.count, 4)
        XCTAssertTrue((failover["workers"] as? [[String: Any]])?.allSatisfy { $0["rto_s"] is Double } == true)
        let rpo = object(summary, "rpo")
        for key in ["lost_inserts", "lost_updates", "lost_deletes", "lost_total"] {
            XCTAssertEqual(rpo[key] as? Int, 0, "\(key): \(rpo)\n\(output)")
        }
        assertEverythingResolvedAndValid(summary)
        XCTAssertTrue((summary["validation"] as? [[String: Any]])?.allSatisfy { $0["md5_match"] as? Bool == true } == true, output)
        XCTAssertTrue(output.contains("NO DATA LOSS"), output)
        // Every acknowledged operation is in the repo database, under the summary's run_id.
        let runID = try XCTUnwrap(summary["run_id"] as? String)
        let recorded = try psql(
            repo.dsn, "SELECT count(*) FROM pgprobe_failover_ops WHERE run_id = '\(runID)' AND status IN ('acked', 'missing')")
        XCTAssertEqual(Int(recorded), summary["operations_acked"] as? Int)
    }

    func testASwitchoverCostsAFewSecondsOfWrites() throws {
        let ha = try haCluster()
        let repo = try cluster()
        try ha.run("heal")
        let run = try FailoverRun(primary: ha.dsn, repo: repo.dsn, duration: "20s", extra: ["--async-repo-mode"])
        XCTAssertTrue(run.waitForAcked(100), run.process.text)
        try ha.run("fail", "--switchover")
        let (status, summary, output) = try run.finish(timeout: 120)
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(failovers(summary).count, 1, output)
        let rto = try XCTUnwrap(failovers(summary).first?["rto_s"] as? Double, output)
        // No key has to expire: a few seconds (stop, promote, reconnect); 10 s is half the ttl.
        XCTAssertGreaterThan(rto, 0)
        XCTAssertLessThan(rto, 10, output)
        XCTAssertEqual(object(summary, "rpo")["lost_total"] as? Int, 0, output)
        assertEverythingResolvedAndValid(summary)
        // The ordered queue wrote everything by the end.
        let runID = try XCTUnwrap(summary["run_id"] as? String)
        let recorded = try psql(
            repo.dsn, "SELECT count(*) FROM pgprobe_failover_ops WHERE run_id = '\(runID)' AND status IN ('acked', 'missing')")
        XCTAssertEqual(Int(recorded), summary["operations_acked"] as? Int)
    }
}

/// Asynchronous mode: the replica is stopped while the leader takes writes, the leader is
/// killed, the replica comes back and is promoted without them.
final class FailoverAsyncTests: HAClusterTestCase {
    override class var haMode: String { "--async" }

    func testLostWritesAreCountedExactlyAsTheRepoAndTheNewPrimaryShowInSQL() throws {
        let ha = try haCluster()
        let repo = try cluster()
        try ha.run("heal")
        let leader = try XCTUnwrap(ha.run("env")["LEADER"])
        let replica = leader == "node1" ? "node2" : "node1"
        let run = try FailoverRun(primary: ha.dsn, repo: repo.dsn, duration: "45s")
        XCTAssertTrue(run.waitForAcked(100), run.process.text)
        try ha.run("stop-node", replica)
        // Acknowledged by the leader alone from here on.
        XCTAssertTrue(run.waitForAcked(run.acked + 200), run.process.text)
        try ha.run("fail", "--kill")
        try ha.run("start-node", replica)
        let (status, summary, output) = try run.finish(timeout: 180)
        XCTAssertEqual(status, 1, "data loss detected: exit status 1\n\(output)")
        XCTAssertTrue(output.contains("DATA LOSS DETECTED"), output)
        XCTAssertEqual(failovers(summary).count, 1, output)
        XCTAssertNotNil(failovers(summary).first?["rto_s"] as? Double, output)
        let rpo = object(summary, "rpo")
        let lostTotal = try XCTUnwrap(rpo["lost_total"] as? Int)
        XCTAssertGreaterThanOrEqual(lostTotal, 200, "at least the writes made while the replica was down\n\(output)")
        XCTAssertNotNil(rpo["newest_lost_age_ms"] as? Double)
        assertEverythingResolvedAndValid(summary)

        // The test's own count: the new primary's rows copied into the repo, the ledger read there.
        let runID = try XCTUnwrap(summary["run_id"] as? String)
        let rows = try psql(
            ha.dsn,
            "COPY (" + (1...4).map { "SELECT \($0) AS worker, id, version FROM \(FailoverProbe.table($0))" }
                .joined(separator: " UNION ALL ") + ") TO STDOUT WITH CSV")
        let csv = NSTemporaryDirectory() + "pgprobe-actual-\(UUID()).csv"
        defer { unlink(csv) }
        try (rows + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        let actual = "actual_" + runID.replacingOccurrences(of: "-", with: "")
        _ = try psql(repo.dsn, "CREATE TABLE \(actual) (worker int, id bigint, version bigint)")
        _ = try PGCluster.run(["psql", repo.dsn, "-X", "-v", "ON_ERROR_STOP=1", "-c", "\\copy \(actual) FROM '\(csv)' CSV"])
        // Lost: acknowledged, and the row shows an older version, or is gone with no applied delete.
        let counts = try psql(
            repo.dsn,
            """
            SELECT o.kind, count(*) FROM pgprobe_failover_ops o
            LEFT JOIN \(actual) a ON a.worker = o.worker AND a.id = o.row_id
            WHERE o.run_id = '\(runID)' AND o.status = 'acked' AND (
                (a.id IS NOT NULL AND o.seq > a.version)
                OR (a.id IS NULL AND o.kind <> 'delete' AND NOT EXISTS (
                    SELECT 1 FROM pgprobe_failover_ops d
                    WHERE d.run_id = o.run_id AND d.worker = o.worker AND d.row_id = o.row_id AND d.kind = 'delete'
                      AND (d.status = 'acked' OR d.resolution = 'applied'))))
            GROUP BY o.kind
            """)
        var byKind: [String: Int] = ["insert": 0, "update": 0, "delete": 0]
        for line in counts.split(separator: "\n") {
            let fields = line.split(separator: "|")
            if fields.count == 2 { byKind[String(fields[0])] = Int(fields[1]) }
        }
        XCTAssertEqual(byKind["insert"], rpo["lost_inserts"] as? Int, "\(byKind) vs \(rpo)")
        XCTAssertEqual(byKind["update"], rpo["lost_updates"] as? Int, "\(byKind) vs \(rpo)")
        XCTAssertEqual(byKind["delete"], rpo["lost_deletes"] as? Int, "\(byKind) vs \(rpo)")
        XCTAssertEqual(byKind.values.reduce(0, +), lostTotal)
    }
}

/// A single server restarted in place: no promotion, the outage is the restart.
final class FailoverRestartTests: ClusterTestCase {
    func testARestartedServerCostsAboutTheRestartTime() throws {
        let repo = try cluster()
        let primary = try PGCluster()
        defer { primary.destroy() }
        let run = try FailoverRun(primary: primary.dsn, repo: repo.dsn, duration: "12s")
        XCTAssertTrue(run.waitForAcked(100), run.process.text)
        let began = Date()
        try primary.stop()
        Thread.sleep(forTimeInterval: 1.0)
        try primary.start()
        let restart = Date().timeIntervalSince(began)
        let (status, summary, output) = try run.finish(timeout: 90)
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(failovers(summary).count, 1, output)
        let rto = try XCTUnwrap(failovers(summary).first?["rto_s"] as? Double, output)
        // Down for at least the pause; back within the restart plus the retry interval (50 ms)
        // and 2 s of slack for a loaded machine.
        XCTAssertGreaterThanOrEqual(rto, 1.0, output)
        XCTAssertLessThan(rto, restart + 2.0, "restart took \(restart) s\n\(output)")
        XCTAssertEqual(object(summary, "rpo")["lost_total"] as? Int, 0, output)
        assertEverythingResolvedAndValid(summary)
    }
}

/// A frozen server (every process stopped, TCP still accepted by the kernel) must never hang
/// the probe: statements end at their deadline as indeterminate, and are resolved once the
/// server thaws.
final class FailoverFrozenServerTests: ClusterTestCase {
    func testAFrozenServerIsAnOutageNotAHang() throws {
        let repo = try cluster()
        let primary = try PGCluster()
        defer {
            signalServer(primary, SIGCONT)
            primary.destroy()
        }
        let run = try FailoverRun(
            primary: primary.dsn, repo: repo.dsn, duration: "10s", extra: ["--statement-timeout", "1s", "--rto-conn-timeout", "500"])
        XCTAssertTrue(run.waitForAcked(100), run.process.text)
        signalServer(primary, SIGSTOP)
        Thread.sleep(forTimeInterval: 4)
        signalServer(primary, SIGCONT)
        let (status, summary, output) = try run.finish(timeout: 60)
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(failovers(summary).count, 1, output)
        let rto = try XCTUnwrap(failovers(summary).first?["rto_s"] as? Double, output)
        XCTAssertGreaterThanOrEqual(rto, 3.5, "frozen for 4 s\n\(output)")
        XCTAssertEqual(object(summary, "rpo")["lost_total"] as? Int, 0, output)
        XCTAssertGreaterThan(object(summary, "indeterminate")["total"] as? Int ?? 0, 0, "statements in flight had no answer\n\(output)")
        assertEverythingResolvedAndValid(summary)
    }

    /// Stops or resumes the postmaster and every process it started.
    private func signalServer(_ cluster: PGCluster, _ signal: Int32) {
        guard let pidFile = try? String(contentsOfFile: cluster.directory + "/data/postmaster.pid", encoding: .utf8),
            let postmaster = pidFile.split(separator: "\n").first.flatMap({ pid_t($0) }),
            let children = try? PGCluster.run(["pgrep", "-P", String(postmaster)])
        else { return }
        for pid in [postmaster] + children.split(separator: "\n").compactMap({ pid_t($0) }) { kill(pid, signal) }
    }
}

/// What a user types wrong, and `--init` / `--reset` alone.
final class FailoverCommandLineTests: ClusterTestCase {
    func probe(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try PGCluster.spawn([try Tools.url("pgprobe").path, "failover"] + arguments)
    }

    func testPercentagesThatDoNotSumTo100AreOneClearError() throws {
        let result = try probe([
            "--primary-dsn", "postgres://u@127.0.0.1:1/db", "--repo-dsn", "postgres://u@127.0.0.1:1/db",
            "--insert-percent", "50", "--update-percent", "30", "--delete-percent", "30",
        ])
        XCTAssertEqual(result.status, 64)
        XCTAssertTrue(
            result.stderr.hasPrefix(
                "Error: --insert-percent, --update-percent and --delete-percent must sum to 100 (got 50 + 30 + 30 = 110)\n"),
            result.stderr)
    }

    func testAnUnreachablePrimaryIsOneLineAndExitStatus2() throws {
        let repo = try cluster()
        let result = try probe([
            "--primary-dsn", "postgres://postgres@127.0.0.1:1,127.0.0.1:2/postgres", "--repo-dsn", repo.dsn, "--duration", "2s",
            "--rto-conn-timeout", "500",
        ])
        XCTAssertEqual(result.status, 2, result.stdout + result.stderr)
        XCTAssertEqual(
            result.stderr,
            "pgprobe failover: no read-write server at postgres@127.0.0.1:1,127.0.0.1:2/postgres: 127.0.0.1:1: cannot connect to "
                + "127.0.0.1:1: Connection refused; 127.0.0.1:2: cannot connect to 127.0.0.1:2: Connection refused\n")
    }

    func testInitAndResetAloneCreateAndEmptyTheTables() throws {
        let server = try cluster()
        let created = try probe(["--primary-dsn", server.dsn, "--repo-dsn", server.dsn, "--parallel-workers", "2", "--init"])
        XCTAssertEqual(created.status, 0, created.stderr)
        XCTAssertEqual(created.stdout, "pgprobe failover: created pgprobe_failover_1…pgprobe_failover_2 and pgprobe_failover_ops\n")
        _ = try psql(server.dsn, "INSERT INTO pgprobe_failover_2 VALUES (1, 1, 'x', now())")
        let reset = try probe(["--primary-dsn", server.dsn, "--parallel-workers", "2", "--reset"])
        XCTAssertEqual(reset.status, 0, reset.stderr)
        XCTAssertEqual(try psql(server.dsn, "SELECT count(*) FROM pgprobe_failover_2"), "0")
    }

    /// A statement on a connection that closed under it ends (postgres-nio alone never
    /// answers it: this hung), as indeterminate, in words without internal names.
    func testAStatementOnAClosingConnectionEndsAtTheDeadline() async throws {
        let dsn = try DSN(parsing: cluster().dsn)
        let connector = FailoverConnector(dsn: dsn, connectTimeoutNanos: 5_000_000_000, statementTimeoutNanos: 200_000_000)
        let connection = try await connector.connect(dsn.endpoints[0], id: 1)
        async let closing: Void = connection.close()  // the statement races the close
        let outcome = await connector.run("SELECT 1::int8", on: connection)
        try? await closing
        switch outcome {
        case .noAnswer(let reason), .notSent(let reason):
            XCTAssertFalse(reason.contains("ClosedConnection"), reason)
        case .answered, .rejected:
            XCTFail("a closing connection cannot answer: \(outcome)")
        }
        guard case .notSent(let reason) = await connector.run("SELECT 1::int8", on: connection) else {
            return XCTFail("a closed connection sends nothing")
        }
        XCTAssertEqual(reason, "the connection was closed")
    }
}
