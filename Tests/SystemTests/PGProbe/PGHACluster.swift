import Foundation
import Synchronization
import TestSupport
import XCTest

/// A two-node Patroni cluster (etcd, PostgreSQL 15) started with scripts/pg-ha.
final class PGHACluster: Sendable {
    let directory: String
    let dsn: String

    static var script: String { Tools.packageRoot.appendingPathComponent("scripts/pg-ha").path }

    /// `mode`: `--sync` or `--async`.
    init(mode: String) throws {
        guard geteuid() == 0 || FileManager.default.isExecutableFile(atPath: "/usr/bin/patroni") else {
            throw XCTSkip("scripts/pg-ha needs patroni and etcd-server (run as root to install them)")
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pgha-test-\(UUID().uuidString)").path
        let values = keyValues(try PGCluster.run([Self.script, "start", directory, mode]))
        guard let dsn = values["DSN"] else { throw PGCluster.ClusterError(message: "pg-ha printed no DSN") }
        self.dsn = dsn
    }

    /// `scripts/pg-ha COMMAND DIR ARGUMENTS…`; its KEY=VALUE lines.
    @discardableResult
    func run(_ command: String, _ arguments: String...) throws -> [String: String] {
        keyValues(try PGCluster.run([Self.script, command, directory] + arguments))
    }

    func destroy() { _ = try? PGCluster.run([Self.script, "stop", directory]) }
}

func keyValues(_ output: String) -> [String: String] {
    var values: [String: String] = [:]
    for line in output.split(separator: "\n") {
        guard let equals = line.firstIndex(of: "=") else { continue }
        values[String(line[..<equals])] = String(line[line.index(after: equals)...])
    }
    return values
}

/// One HA cluster per test class, like `ClusterFixture` (the class's own cluster is the repo).
class HAClusterTestCase: ClusterTestCase {
    class var haMode: String { "--sync" }
    private static let haClusters = Mutex<[ObjectIdentifier: Result<PGHACluster, any Error>]>([:])

    override class func setUp() {
        super.setUp()
        let cluster = Result { try PGHACluster(mode: haMode) }
        haClusters.withLock { $0[ObjectIdentifier(self)] = cluster }
    }

    override class func tearDown() {
        if case .success(let cluster)? = haClusters.withLock({ $0.removeValue(forKey: ObjectIdentifier(self)) }) {
            cluster.destroy()
        }
        super.tearDown()
    }

    func haCluster() throws -> PGHACluster {
        guard let result = Self.haClusters.withLock({ $0[ObjectIdentifier(Self.self)] }) else {
            throw PGCluster.ClusterError(message: "no HA cluster")
        }
        return try result.get()
    }
}

/// `pgprobe failover` running in the background, as a user starts it.
struct FailoverRun {
    let process: RunningProcess
    let summaryPath: String

    init(primary: String, repo: String, duration: String, extra: [String] = []) throws {
        summaryPath = NSTemporaryDirectory() + "pgprobe-failover-\(UUID()).json"
        process = try RunningProcess(
            try Tools.url("pgprobe"),
            [
                "failover", "--primary-dsn", primary, "--repo-dsn", repo, "--duration", duration, "--report-interval", "500ms",
                "--full-data-validation", "--summary-json", summaryPath,
            ] + extra)
    }

    /// The acknowledged operations the last progress line reports.
    var acked: Int {
        let progress = process.stdout.split(separator: "\n").last { $0.contains(" acked (") }
        guard let progress, let colon = progress.range(of: " s: ") else { return 0 }
        let number = progress[colon.upperBound...].prefix { $0 != " " }.replacingOccurrences(of: ",", with: "")
        return Int(number) ?? 0
    }

    /// Waits (bounded) until at least `count` operations were acknowledged.
    func waitForAcked(_ count: Int, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if acked >= count { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return false
    }

    /// Exit status, the summary JSON and everything printed.
    func finish(timeout: Double) throws -> (status: Int32, summary: [String: Any], output: String) {
        let status = process.wait(timeout: timeout)
        defer { unlink(summaryPath) }
        let data = try Data(contentsOf: URL(fileURLWithPath: summaryPath))
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return (status, summary, process.text)
    }
}

/// `psql DSN -Atc SQL` (libpq finds the read-write host of a multi-host DSN itself).
func psql(_ dsn: String, _ sql: String) throws -> String {
    try PGCluster.run(["psql", dsn, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql]).trimmingCharacters(in: .whitespacesAndNewlines)
}
