import Foundation
import PGSniff
import Synchronization
import TestSupport
import XCTest

@testable import PGProbeCore

/// Sniffing and cross-checking a real server on loopback (needs root or CAP_NET_RAW).
final class LiveSniffTests: ClusterTestCase {
    func clusterOrThrow() throws -> PGCluster {
        try cluster()
    }

    final class TimingSink: Sendable {
        private let storage = Mutex<[PGQueryTiming]>([])
        func append(_ timing: PGQueryTiming) { storage.withLock { $0.append(timing) } }
        var timings: [PGQueryTiming] { storage.withLock { $0 } }
    }

    func startSniffer(port: Int) throws -> (LiveSniffer, TimingSink) {
        guard geteuid() == 0 else { throw XCTSkip("live capture needs root or CAP_NET_RAW") }
        let sniffer = try LiveSniffer(interface: "lo", serverPorts: [UInt16(port)])
        let sink = TimingSink()
        sniffer.start { timing in sink.append(timing) }
        return (sniffer, sink)
    }

    func testSniffSeesEveryProbeQueryAndItsAck() async throws {
        let cluster = try clusterOrThrow()
        let (sniffer, collected) = try startSniffer(port: cluster.port)
        let tagger = QueryTagger()
        let queries = 25
        // 210 ms apart: longer than Linux's longest delayed-ACK timer (200 ms), so each answer
        // gets a pure ACK before the next query could carry it.
        let options = QueryProbeOptions(
            dsn: try DSN(parsing: cluster.dsn), count: queries, intervalNanos: 210_000_000,
            sqlForIndex: { index, sql in tagger.sql(index, sql) })
        let outcomes = try await collect(options)
        try await Task.sleep(nanoseconds: 300_000_000)
        let result = sniffer.stop()
        let timings = collected.timings
        XCTAssertEqual(outcomes.filter(\.succeeded).count, queries)
        XCTAssertNil(result.failure)
        XCTAssertEqual(result.capture?.dropped, 0)
        XCTAssertEqual(result.counters.protocolErrors, 0)
        var byIndex: [Int: PGQueryTiming] = [:]
        for timing in timings { if let index = tagger.index(in: timing.text) { byIndex[index] = timing } }
        XCTAssertEqual(byIndex.keys.sorted(), Array(0..<queries), "every probe query seen on the wire")
        XCTAssertEqual(timings.filter { $0.kind == .startup }.count, 1, "one connection, one startup")
        for index in 0..<queries {
            guard let timing = byIndex[index] else { continue }
            XCTAssertEqual(timing.kind, .extendedQuery, "postgres-nio uses the extended protocol")
            XCTAssertEqual(timing.flow.server.port, UInt16(cluster.port))
            XCTAssertGreaterThan(timing.responseNanos, 0)
            XCTAssertLessThanOrEqual(timing.responseNanos, timing.completionNanos)
            let ack = try XCTUnwrap(timing.ackDelayNanos, "query \(index): no pure ACK (piggybacked: \(timing.ackPiggybacked))")
            XCTAssertGreaterThanOrEqual(ack, 0)
        }
    }

    func testSniffManySimpleProtocolClients() async throws {
        let cluster = try clusterOrThrow()
        let pgbench = "/usr/lib/postgresql/15/bin/pgbench"
        guard FileManager.default.isExecutableFile(atPath: pgbench) else { throw XCTSkip("pgbench not installed") }
        let connection = ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", "postgres", "postgres"]
        try PGCluster.run([pgbench, "-i", "-q", "-s", "1"] + connection)
        let (sniffer, collected) = try startSniffer(port: cluster.port)
        // 4 concurrent clients, simple protocol, 25 select-only transactions each.
        try PGCluster.run([pgbench, "-n", "-S", "-M", "simple", "-c", "4", "-j", "2", "-t", "25"] + connection)
        try await Task.sleep(nanoseconds: 300_000_000)
        let result = sniffer.stop()
        let timings = collected.timings
        XCTAssertEqual(result.counters.protocolErrors, 0)
        let selects = timings.filter { $0.text.hasPrefix("SELECT abalance FROM pgbench_accounts") }
        XCTAssertEqual(selects.count, 100)
        XCTAssertTrue(selects.allSatisfy { $0.kind == .simpleQuery && $0.error == nil })
        XCTAssertEqual(Set(selects.map(\.flow.client.port)).count, 4, "four client connections told apart")
        XCTAssertTrue(selects.allSatisfy { $0.completionNanos >= $0.responseNanos && $0.responseNanos > 0 })
        XCTAssertTrue(selects.allSatisfy { $0.ackNanos != nil || $0.ackPiggybacked }, "every answer acknowledged")
    }

    func testCrosscheckClientTimerIsAtLeastTheWireRoundTrip() async throws {
        let cluster = try clusterOrThrow()
        guard geteuid() == 0 else { throw XCTSkip("live capture needs root or CAP_NET_RAW") }
        let options = CrosscheckOptions(
            probe: QueryProbeOptions(dsn: try DSN(parsing: cluster.dsn), count: 50, intervalNanos: 5_000_000),
            interface: "lo")
        let outcome = try await Crosscheck(options: options).run()
        XCTAssertNil(outcome.probeError)
        XCTAssertEqual(outcome.matcher.failedQueries, 0)
        let summary = outcome.matcher.summary
        XCTAssertEqual(summary.matched, 50)
        XCTAssertEqual(summary.unmatched, 0)
        for row in outcome.matcher.rows {
            let wire = try XCTUnwrap(row.wire)
            XCTAssertGreaterThan(wire.completionNanos, 0)
            XCTAssertGreaterThanOrEqual(row.clientNanos, wire.completionNanos, CrosscheckMatcher.line(row))
        }
        XCTAssertGreaterThanOrEqual(summary.client_minus_wire_s.min, 0)
        XCTAssertEqual(summary.client_s.count, 50)
        XCTAssertEqual(summary.wire_rtt_s.count, 50)
        XCTAssertLessThanOrEqual(summary.wire_rtt_s.mean, summary.client_s.mean)
    }

    /// The latency experiment's smoke run: through vtp-proxy --latency 5ms, both the probe's
    /// and the sniffer's p50 rise by the injected 10 ms round trip, within 1 ms.
    func testLatencyExperimentSmoke() throws {
        guard geteuid() == 0 else { throw XCTSkip("live capture needs root or CAP_NET_RAW") }
        let binDirectory = productsDirectory.path
        for tool in ["pgprobe", "vtp-proxy"] {
            XCTAssertTrue(
                FileManager.default.isExecutableFile(atPath: binDirectory + "/" + tool),
                "\(tool) not built in \(binDirectory): run swift build --build-tests first")
        }
        let script = PGCluster.repositoryRoot.appendingPathComponent("scripts/pgprobe-bench").path
        let output = try PGCluster.run(["BIN_DIR=" + binDirectory, script, "--smoke"])
        XCTAssertTrue(output.contains("probe (client timer): p50 rose by"), output)
        XCTAssertEqual(output.components(separatedBy: "-> PASS").count - 1, 2, output)
    }
}
