import Foundation
import LatencyStats
import PGSniff
import TestSupport
import XCTest
@testable import PGProbeCore

/// `pgprobe` as a process: what a user types and reads.
final class ProbeCommandTests: ClusterTestCase {
    var pgprobe: String { productsDirectory.path + "/pgprobe" }

    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: pgprobe) else {
            throw XCTSkip("pgprobe not built in \(productsDirectory.path): run swift build --build-tests first")
        }
    }

    func probe(_ arguments: [String], mergeOutput: Bool = false) throws -> (status: Int32, stdout: String, stderr: String) {
        try PGCluster.spawn([pgprobe] + arguments, mergeOutput: mergeOutput)
    }

    func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

    func testTyposVersionAndNegativeNumbers() throws {
        let typo = try probe(["qeury", "--dsn", "postgres://u@127.0.0.1/x"])
        XCTAssertEqual(typo.status, 64)
        XCTAssertEqual(typo.stderr, "pgprobe: unknown subcommand 'qeury'; did you mean 'query'?\n")
        let version = try probe(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.stdout.hasPrefix("0."), version.stdout)
        let dsn = "postgres://u@127.0.0.1:\(freeLoopbackPort())/x"
        let count = try probe(["query", "--dsn", dsn, "--count", "-5"])
        XCTAssertEqual(count.status, 64)
        XCTAssertTrue(count.stderr.contains("--count must be at least 1 (got -5)"), count.stderr)
        let clients = try probe(["query", "--dsn", dsn, "--clients", "0"])
        XCTAssertEqual(clients.status, 64)
        XCTAssertTrue(clients.stderr.contains("--clients must be between 1 and 1000 (got 0)"), clients.stderr)
        let interval = try probe(["query", "--dsn", dsn, "--interval", "-3"])
        XCTAssertEqual(interval.status, 64)
        XCTAssertFalse(interval.stderr.contains("Missing value"), interval.stderr)
        let both = try probe(["query", "--dsn", dsn, "--rate", "10", "--interval", "5"])
        XCTAssertEqual(both.status, 64)
        XCTAssertTrue(both.stderr.contains("give --rate or --interval, not both"), both.stderr)
        // The help says each duration's bare unit (the text is wrapped: compare words).
        let help = try probe(["query", "--help"]).stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(help.contains("pause between queries; a bare number is milliseconds"), help)
        XCTAssertTrue(help.contains("counts as failed; a bare number is seconds"), help)
    }

    /// The summary path is checked before the first query: one line, exit 64, nothing measured.
    func testUnwritableSummaryFailsAtOnce() throws {
        let dsn = "postgres://postgres@127.0.0.1:\(freeLoopbackPort())/postgres"
        for command in ["query", "crosscheck"] {
            var arguments = [command, "--dsn", dsn, "--count", "1000", "--summary-json", "/nonexistent/dir/x.json"]
            if command == "crosscheck" { arguments += ["--interface", "lo"] }
            let result = try probe(arguments)
            XCTAssertEqual(result.status, 64, command)
            XCTAssertEqual(
                result.stderr,
                "pgprobe \(command): --summary-json /nonexistent/dir/x.json: directory /nonexistent/dir does not exist\n")
            XCTAssertEqual(result.stdout, "", "\(command): nothing was measured")
        }
    }

    func testLoadOptionsQuietRateAndSummaryMetadata() throws {
        let cluster = try self.cluster()
        let path = NSTemporaryDirectory() + "pgprobe-load-\(UUID()).json"
        defer { unlink(path) }
        let result = try probe([
            "query", "--dsn", cluster.dsn, "--clients", "4", "--rate", "200", "--duration", "1s", "--quiet",
            "--timeout", "5s", "--summary-json", path,
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        let output = lines(result.stdout)
        XCTAssertEqual(output.count, 2, "--quiet: the header and the final line only\n\(result.stdout)")
        XCTAssertTrue(output.first?.contains("4 clients, rate 200 queries/s, for 1.00 s") == true, result.stdout)
        // 200 slots 5 ms apart fall inside 1 s, whatever the machine's speed.
        XCTAssertTrue(output.last?.hasPrefix("pgprobe query: 200 queries, 200 ok, 0 failed in ") == true, result.stdout)
        XCTAssertTrue(output.last?.contains(" queries/s); latency n=200 min/avg/max ") == true, result.stdout)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        for key in ["run_id", "version", "host", "started_at", "settings", "count", "failed", "latency_s", "queries_per_s"] {
            XCTAssertNotNil(json[key], key)
        }
        XCTAssertEqual(json["count"] as? Int, 200)
        let settings = try XCTUnwrap(json["settings"] as? [String: Any])
        XCTAssertEqual(settings["clients"] as? Int, 4)
        XCTAssertEqual(settings["rate"] as? Double, 200)
        XCTAssertEqual(settings["duration_s"] as? Double, 1)
        XCTAssertGreaterThan(json["queries_per_s"] as? Double ?? 0, 0)
    }

    func testIntervalAndTimeoutTakeUnitsAndBareNumbersKeepTheirMeaning() throws {
        let cluster = try self.cluster()
        let withUnits = try probe(["query", "--dsn", cluster.dsn, "--count", "3", "--interval", "20ms", "--timeout", "2s"])
        XCTAssertEqual(withUnits.status, 0, withUnits.stderr)
        XCTAssertTrue(lines(withUnits.stdout).first?.hasSuffix("1 client, interval 20.0 ms") == true, withUnits.stdout)
        XCTAssertEqual(lines(withUnits.stdout).filter { $0.hasPrefix("query ") }.count, 3)
        let bare = try probe(["query", "--dsn", cluster.dsn, "--count", "1", "--interval", "20", "--timeout", "2"])
        XCTAssertEqual(bare.status, 0, bare.stderr)
        XCTAssertTrue(lines(bare.stdout).first?.hasSuffix("interval 20.0 ms") == true, bare.stdout)
    }

    func testRejectedLoginPrintsTheErrorBeforeTheSummary() throws {
        var dsn = try DSN(parsing: cluster().dsn)
        dsn.database = "no_such_database"
        let url = "postgres://\(dsn.user)@\(dsn.host):\(dsn.port)/no_such_database?sslmode=disable"
        let result = try probe(["query", "--dsn", url, "--count", "3"], mergeOutput: true)
        XCTAssertEqual(result.status, 2)
        let output = lines(result.stdout)
        let error = try XCTUnwrap(output.firstIndex { $0.contains("login rejected") }, result.stdout)
        let summary = try XCTUnwrap(output.firstIndex { $0.hasPrefix("pgprobe query: 0 queries") }, result.stdout)
        XCTAssertLessThan(error, summary)
        XCTAssertTrue(output[error].contains("3D000"), output[error])
        XCTAssertFalse(result.stdout.contains("Error"), "no internal type names: \(result.stdout)")
    }

    /// Captured on an interface the loopback traffic never crosses: the client times are kept
    /// and the advice names `lo`.
    func testCrosscheckOnTheWrongInterfaceKeepsClientTimesAndNamesLo() throws {
        guard geteuid() == 0 else { throw XCTSkip("live capture needs root or CAP_NET_RAW") }
        guard let other = upInterfaceOtherThanLoopback() else { throw XCTSkip("no interface other than lo") }
        let cluster = try self.cluster()
        let path = NSTemporaryDirectory() + "pgprobe-cc-\(UUID()).json"
        defer { unlink(path) }
        let result = try probe([
            "crosscheck", "--dsn", cluster.dsn, "--interface", other, "--count", "5", "--interval", "10ms",
            "--summary-json", path,
        ])
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stdout.contains("0 matched, 5 not seen on the wire, 0 failed"), result.stdout)
        XCTAssertTrue(result.stdout.contains("  client       n=5 min/avg/max "), result.stdout)
        XCTAssertTrue(result.stdout.contains("  wire rtt     n/a"), result.stdout)
        XCTAssertFalse(result.stdout.contains("0.000000/0.000000"), result.stdout)
        XCTAssertTrue(
            result.stderr.contains("the capture on \(other) saw none of the probe's queries: traffic to 127.0.0.1:"),
            result.stderr)
        XCTAssertTrue(result.stderr.contains("goes over lo; run again with --interface lo"), result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        XCTAssertTrue(json["wire_rtt_s"] is NSNull)
        XCTAssertEqual((json["client_s"] as? [String: Any])?["count"] as? Int, 5)
        XCTAssertEqual((json["settings"] as? [String: Any])?["interface"] as? String, other)
    }

    /// Several clients share the count: every index once, the outcomes delivered one at a time.
    func testClientsShareTheCountAndARateHoldsThemBack() async throws {
        let dsn = try DSN(parsing: cluster().dsn)
        let started = ContinuousClock.now
        let outcomes = try await collect(
            QueryProbeOptions(dsn: dsn, count: 40, intervalNanos: 0, clients: 4, ratePerSecond: 200))
        let elapsed = ContinuousClock.now - started
        XCTAssertEqual(outcomes.map(\.index).sorted(), Array(0..<40))
        XCTAssertTrue(outcomes.allSatisfy(\.succeeded), "\(outcomes.compactMap(\.failure))")
        // The 40th query is due 195 ms after the first: a lower bound, whatever the load.
        XCTAssertGreaterThanOrEqual(elapsed, .milliseconds(195))
    }
}

/// The first interface that is up and is not loopback (e.g. eth0), if any.
func upInterfaceOtherThanLoopback() -> String? {
    InterfaceAdvice.firstInterface { entry in
        let flags = Int32(entry.ifa_flags)
        return flags & Int32(IFF_UP) != 0 && flags & Int32(IFF_LOOPBACK) == 0
            && entry.ifa_addr.map { Int32($0.pointee.sa_family) == AF_INET } == true
    }
}
