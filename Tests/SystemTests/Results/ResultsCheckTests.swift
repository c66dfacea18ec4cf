import Foundation
import TestSupport
import XCTest

/// Stored runs end to end (scripts/results-check): SQLite and a PostgreSQL collector with tester
/// roles, unreachable/refusing collectors and damaged files kept locally, push idempotent, the
/// HTML report in headless Chromium (console errors, SVG points against stored intervals, a
/// screenshot), and with root a vtp-lab MAX_CONNECT sweep into both stores.
final class ResultsCheckTests: XCTestCase {
    func testRunsAreStoredComparedAndPlottedInSQLiteAndPostgreSQL() throws {
        for tool in ["vtp-sender", "vtp-receiver", "vtp-report", "vtp-lab"] { _ = try Tools.url(tool) }
        let needed = ["/usr/bin/chromium", "/usr/bin/psql", "/usr/lib/postgresql/15/bin/initdb"]
        if getuid() != 0, !needed.allSatisfy(FileManager.default.isExecutableFile(atPath:)) {
            throw XCTSkip("needs root to install chromium and PostgreSQL (scripts/setup-deps results)")
        }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("results-check-\(UUID().uuidString)")
        let script = Tools.packageRoot.appendingPathComponent("scripts/results-check")
        var arguments = ["--bin", Tools.binDirectory.path, "--out", out.path]
        if getuid() != 0 { arguments.append("--no-lab") }
        let (status, stdout, stderr) = try RunningProcess.run(script, arguments, timeout: 900)
        XCTAssertEqual(status, 0, "stdout:\n\(stdout)\nstderr:\n\(stderr)")
        XCTAssertFalse(stdout.contains("FAIL:"), stdout)
        for check in [
            "bob's DELETE of alice's run deletes nothing", "push again changes nothing (idempotent)",
            "unreachable collector: one line, exit 0, the run kept locally", "Chromium: no console errors",
        ] {
            XCTAssertTrue(stdout.contains("ok: \(check)"), "\(check)\n\(stdout)")
        }
        XCTAssertTrue(stdout.contains("ok: Chromium built one median point per measured interval"), stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("report.png").path))
        if getuid() == 0 {
            XCTAssertTrue(stdout.contains("ok: compare --by max_connect (PostgreSQL) has a row for 1 and for 4"), stdout)
            XCTAssertTrue(stdout.contains("ok: html renders the sweep (latency against max_connect)"), stdout)
        }
    }
}
