import DelayLink
import Foundation
import TestSupport
import XCTest

/// The benchmark scripts' --smoke modes, on the binaries this test run was built with.
final class ScriptSmokeTests: XCTestCase {
    private var binDirectory: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    }
    private var scripts: URL {
        Tools.packageRoot.appendingPathComponent("scripts")
    }

    private func runScript(_ name: String, _ arguments: [String]) throws -> String {
        try XCTSkipUnless(getuid() == 0, "needs root (network namespaces, TUN)")
        let (status, output) = Shell.execute([scripts.appendingPathComponent(name).path] + arguments)
        XCTAssertEqual(status, 0, output)
        return output
    }

    /// netem-bench at 50 ms: ping and TCP connect ≈ 100 ms, bulk TCP gets through, errors printed.
    func testNetemBenchSmoke() throws {
        let output = try runScript("netem-bench", ["--smoke", "--bin", binDirectory])
        let ping = try XCTUnwrap(output.split(separator: "\n").first { $0.hasPrefix("ping RTT") }, output)
        let fields = ping.split(separator: " ")
        let times = fields.count > 3 ? fields[3].split(separator: "/").compactMap { Double($0) } : []
        guard times.count == 3 else { return XCTFail("expected min/avg/max: \(ping)") }
        // A delay link never delivers early: every ping ≥ 2 × 50 ms. Upper side: the fastest
        // ping sits on the floor and the average within 10 ms (a maximum over a few pings on a
        // shared machine is noise, not the link; the benchmark prints the precision).
        XCTAssertGreaterThanOrEqual(times[0], 100, String(ping))
        XCTAssertLessThanOrEqual(times[0], 102, String(ping))
        XCTAssertLessThanOrEqual(times[1], 110, String(ping))
        let connect = try XCTUnwrap(output.split(separator: "\n").first { $0.hasPrefix("TCP connect") })
        let connects = connect.split(separator: ":").last!.split(separator: " ").compactMap { Double($0) }
        guard connects.count == 3 else { return XCTFail("expected 3 connect times: \(connect)") }
        // The link is exact; the probe's own wake-up on a busy shared machine is not: median.
        XCTAssertTrue(connects.allSatisfy { $0 >= 100 }, String(connect))
        XCTAssertLessThanOrEqual(connects.sorted()[connects.count / 2], 105, String(connect))
        XCTAssertTrue(output.contains("MB/s"), output)
        XCTAssertTrue(output.contains("a_to_b release error p50"), output)
    }

    /// lab-2012 at 50 ms for 3 s: the four rows, the original figures beside, JSON written.
    func testLab2012Smoke() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("lab2012-smoke-\(getpid())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        let json = work.appendingPathComponent("rows.json").path
        let output = try runScript(
            "lab-2012", ["--smoke", "--bin", binDirectory, "--json", json, "--work-dir", work.path])
        XCTAssertTrue(output.contains("2012 original"), output)
        let data = try XCTUnwrap(FileManager.default.contents(atPath: json))
        let rows = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        XCTAssertEqual(rows.count, 4)
        XCTAssertEqual(rows.map { $0["max_connect"] as? Int }, [1, 30, 30, 30])
        // MAX_CONNECT=1 at 46.3/s cannot keep up even at 50 ms; 30 set-ups can.
        XCTAssertGreaterThan(rows[0]["backlog_end"] as? Int ?? 0, 50)
        XCTAssertEqual(rows[1]["backlog_end"] as? Int, 0)
    }
}
