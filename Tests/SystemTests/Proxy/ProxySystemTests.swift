import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PGWire
import TestSupport
import XCTest

@testable import ProxyCore

private struct StartFailure: Error, CustomStringConvertible { var description: String }

final class ProxySystemTests: XCTestCase {
    private static let repositoryRoot = Tools.packageRoot

    // MARK: VTP: vtp-sender → vtp-proxy → vtp-receiver

    private struct VTPRun {
        var receiverSummary: [String: Any]
        var senderSummary: [String: Any]
        var log: [[String: Any]]
    }

    private func runVTP(latencyMs: Double, events: Int, name: String) async throws -> VTPRun {
        guard let receiver = Tools.path("vtp-receiver"), let sender = Tools.path("vtp-sender") else {
            throw XCTSkip("vtp-sender/vtp-receiver not built (swift build first)")
        }
        let receiverJSON = temporaryPath("\(name)-receiver.json")
        let senderJSON = temporaryPath("\(name)-sender.json")
        let log = temporaryPath("\(name)-proxy.jsonl")
        for path in [receiverJSON, senderJSON, log] { try? FileManager.default.removeItem(atPath: path) }
        let receiving = try RunningProcess(
            receiver,
            [
                "--host", "127.0.0.1", "--port", "0", "--stop-after-events", "\(events)", "--stop-after-seconds", "60",
                "--summary-json", receiverJSON, "--report-interval", "100",
            ])
        guard let address = receiving.waitFor("listening on ", seconds: 20),
            let receiverPort = Int(address.split(separator: ":").last ?? "")
        else {
            receiving.process.terminate()
            // (Was `XCTFail(…) as! VTPRun`: a crash instead of a failure.)
            throw StartFailure(description: "receiver did not start: \(receiving.text)")
        }
        let toxics =
            latencyMs > 0
            ? StreamDirection.allCases.map { Toxic(type: .latency, stream: $0, attributes: ["latency": latencyMs]) } : []
        let runtime = try await ProxyRuntime.start(
            specs: [
                ProxySpec(
                    name: "vtp", listen: HostPort(host: "127.0.0.1", port: 0),
                    upstream: HostPort(host: "127.0.0.1", port: receiverPort), protocol: .vtp, log: log, toxics: toxics)
            ], control: nil, threads: 2)
        let proxyPort = runtime.listeners[0].boundAddress!.port
        let (status, output) = try runMerged(
            sender,
            [
                "--host", "127.0.0.1", "--port", "\(proxyPort)", "--events", "\(events)", "--period", "2",
                "--mode", "persistent", "--max-connect", "8", "--summary-json", senderJSON, "--report-interval", "100",
            ])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(receiving.waitForExit(seconds: 20), receiving.text)
        await runtime.shutdown()
        func json(_ path: String) -> [String: Any] {
            (try? JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))) as? [String: Any] ?? [:]
        }
        return VTPRun(receiverSummary: json(receiverJSON), senderSummary: json(senderJSON), log: logEvents(log))
    }

    func testSenderThroughProxyToReceiverWithAndWithoutLatency() async throws {
        let events = 80
        let direct = try await runVTP(latencyMs: 0, events: events, name: "vtp-plain")
        let delayed = try await runVTP(latencyMs: 50, events: events, name: "vtp-50ms")
        for result in [direct, delayed] {
            XCTAssertEqual(result.receiverSummary["received"] as? Int, events, "\(result.receiverSummary)")
            XCTAssertEqual(result.receiverSummary["unique"] as? Int, events)
            XCTAssertEqual(result.senderSummary["acked"] as? Int, events, "\(result.senderSummary)")
            let voevents = result.log.filter { $0["event"] as? String == "voevent" }
            XCTAssertEqual(voevents.count, events, "every event logged once")
            XCTAssertEqual(Set(voevents.compactMap { $0["seq"] as? Int }).count, events)
            XCTAssertTrue(voevents.allSatisfy { ($0["latency_s"] as? Double ?? -1) >= 0 && $0["ivorn"] is String })
            XCTAssertEqual(result.log.filter { $0["event"] as? String == "ack" }.count, events, "every ack logged")
        }
        func p50(_ run: VTPRun) -> Double { ((run.receiverSummary["latency_s"] as? [String: Any])?["p50"] as? Double) ?? -1 }
        let rise = p50(delayed) - p50(direct)
        XCTAssertGreaterThan(rise, 0.045, "receiver p50 \(p50(direct)) → \(p50(delayed))")
        XCTAssertLessThan(rise, 0.080, "receiver p50 \(p50(direct)) → \(p50(delayed))")
        let rtt = ((delayed.senderSummary["ack_rtt_s"] as? [String: Any])?["p50"] as? Double) ?? -1
        XCTAssertGreaterThan(rtt, 0.100, "the ack round trip carries both directions")
        XCTAssertLessThan(rtt, 0.150)
    }

    // MARK: PostgreSQL through the proxy

    private func requirePostgres() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/lib/postgresql/15/bin/initdb"),
            FileManager.default.isExecutableFile(atPath: "/usr/bin/pgbench")
        else { throw XCTSkip("PostgreSQL 15 and pgbench not installed (scripts/setup-deps installs them)") }
    }

    private func startCluster() throws -> (directory: String, port: Int) {
        try requirePostgres()
        let directory = temporaryPath("pg-cluster")
        let script = Self.repositoryRoot.appendingPathComponent("scripts/pg-cluster").path
        let (status, output) = try runMerged(script, ["start", directory])
        guard status == 0, let line = output.split(separator: "\n").first(where: { $0.hasPrefix("PGPORT=") }),
            let port = Int(line.dropFirst("PGPORT=".count))
        else { throw XCTSkip("could not start a PostgreSQL cluster: \(output)") }
        return (directory, port)
    }

    private func stopCluster(_ directory: String) {
        _ = try? runProcess(Self.repositoryRoot.appendingPathComponent("scripts/pg-cluster").path, ["stop", directory])
    }

    func testPsqlAndPgbenchThroughProxyLogEveryQueryExactly() async throws {
        let cluster = try startCluster()
        defer { stopCluster(cluster.directory) }
        let log = temporaryPath("pg-queries.jsonl")
        try? FileManager.default.removeItem(atPath: log)
        let runtime = try await ProxyRuntime.start(
            specs: [
                ProxySpec(
                    name: "pg", listen: HostPort(host: "127.0.0.1", port: 0),
                    upstream: HostPort(host: "127.0.0.1", port: cluster.port), protocol: .pg, log: log)
            ], control: nil, threads: 2)
        let port = "\(runtime.listeners[0].boundAddress!.port)"
        let environment = ["PGHOST": "127.0.0.1", "PGPORT": port, "PGUSER": "postgres", "PGDATABASE": "postgres", "PGSSLMODE": "prefer"]

        // psql asks for SSL first (sslmode=prefer): the proxy's 'N' lets it continue in plain text.
        let (psqlStatus, psqlOutput) = try runMerged("/usr/bin/psql", ["-X", "-A", "-t", "-c", "SELECT 40 + 2"], environment: environment)
        XCTAssertEqual(psqlStatus, 0, psqlOutput)
        XCTAssertEqual(psqlOutput.trimmingCharacters(in: .whitespacesAndNewlines), "42")

        let script = temporaryPath("pgbench.sql")
        try """
        \\set n random(1, 1000)
        SELECT :n;
        SELECT 'x' || :n;
        SELECT 1 + 1;
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let transactions = 30
        let clients = 4
        let statements = 3
        for mode in ["simple", "extended", "prepared"] {
            let (status, output) = try runMerged(
                "/usr/bin/pgbench", ["-n", "-M", mode, "-f", script, "-t", "\(transactions)", "-c", "\(clients)"],
                environment: environment)
            XCTAssertEqual(status, 0, output)
            XCTAssertTrue(output.contains("number of transactions actually processed: 120/120"), output)
            XCTAssertTrue(output.contains("number of failed transactions: 0"), output)
        }
        await runtime.shutdown()

        let events = logEvents(log)
        func count(_ event: String) -> Int { events.filter { $0["event"] as? String == event }.count }
        let executed = transactions * clients * statements
        XCTAssertEqual(count("query"), 1 + executed, "psql's query + every simple-protocol query")
        XCTAssertEqual(count("execute"), 2 * executed, "every extended and prepared execution")
        XCTAssertEqual(count("bind"), 2 * executed)
        XCTAssertEqual(count("parse"), executed + clients * statements, "extended parses each time, prepared once per client")
        // psql and pgbench (sslmode=prefer) ask for SSL on every connection, then start up in plain text.
        XCTAssertEqual(count("ssl_request"), count("startup"))
        XCTAssertGreaterThanOrEqual(count("startup"), 1 + 3 * clients)
        XCTAssertEqual(count("error"), 0)
        XCTAssertTrue(
            events.contains { $0["event"] as? String == "query" && $0["sql"] as? String == "SELECT 40 + 2" })
        XCTAssertTrue(events.contains { ($0["event"] as? String == "bind") && (($0["params"] as? [Any])?.count ?? 0) == 1 })
    }

    func testCancelRequestReachesTheServerThroughTheProxy() async throws {
        let cluster = try startCluster()
        defer { stopCluster(cluster.directory) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let runtime = try await ProxyRuntime.start(
            specs: [
                ProxySpec(
                    name: "pg", listen: HostPort(host: "127.0.0.1", port: 0),
                    upstream: HostPort(host: "127.0.0.1", port: cluster.port), protocol: .pg)
            ], control: nil, threads: 2)
        let port = runtime.listeners[0].boundAddress!.port
        let session = try await TestClient.connect(to: port, group: group)
        let started = Date()
        let code: String? = try await withTimeout(30) {
            try await session.channel.executeThenClose { inbound, outbound in
                var iterator = inbound.makeAsyncIterator()
                var decoder = PGBackendDecoder()
                var pending = ByteBuffer()
                func next() async throws -> PGBackendMessage? {
                    while true {
                        if let message = try decoder.next(from: &pending) { return message }
                        guard var chunk = try await iterator.next() else { return nil }
                        pending.writeBuffer(&chunk)
                    }
                }
                try await outbound.write(
                    PGEncoding.bytes(
                        .startup(
                            protocolVersion: PGStartupCode.protocol3,
                            parameters: [.init(name: "user", value: "postgres"), .init(name: "database", value: "postgres")])))
                var key: (Int32, Int32)?
                while let message = try await next() {
                    if case .backendKeyData(let pid, let secret) = message { key = (pid, secret) }
                    if case .readyForQuery = message { break }
                }
                guard let key else { return nil }
                try await outbound.write(PGEncoding.bytes(.query("SELECT pg_sleep(20)")))
                try await Task.sleep(nanoseconds: 300_000_000)
                // The cancel goes through the proxy on a connection of its own.
                let canceller = try await TestClient.connect(to: port, group: group)
                try await canceller.channel.executeThenClose { _, cancelOut in
                    try await cancelOut.write(PGEncoding.bytes(.cancelRequest(processID: key.0, secretKey: key.1)))
                }
                while let message = try await next() {
                    if case .errorResponse(let fields) = message { return fields.sqlState }
                }
                return nil
            }
        }
        XCTAssertEqual(code, "57014", "query_canceled")
        XCTAssertLessThan(Date().timeIntervalSince(started), 10)
        await runtime.shutdown()
        try await group.shutdownGracefully()
    }

    // MARK: soak, short form

    func testSoakSmoke() throws {
        try requirePostgres()  // the script makes its own cluster
        guard let proxy = Tools.path("vtp-proxy") else { throw XCTSkip("vtp-proxy not built") }
        let script = Self.repositoryRoot.appendingPathComponent("scripts/proxy-soak").path
        let (status, output) = try runMerged(script, ["--smoke", "--bin", proxy])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("proxy-soak: PASS"), output)
    }
}
