import Foundation
import TestSupport
import XCTest

/// vtp-receiver's command line: units, messages, exit statuses, output paths, the idle report.
final class ReceiverCLITests: XCTestCase {
    private func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-rcli-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func testVersion() throws {
        let (status, out, _) = try RunningProcess.run(try Tools.url("vtp-receiver"), ["--version"])
        XCTAssertEqual(status, 0)
        XCTAssertNotNil(out.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression), out)
    }

    func testOutputPathsAreCheckedBeforeListening() throws {
        for flag in ["--summary-json", "--events-csv", "--wire-events-csv"] {
            var args = ["--port", "0", flag, "/nonexistent/dir/out"]
            if flag == "--wire-events-csv" { args += ["--capture-interface", "lo"] }
            let started = Date()
            let (status, out, err) = try RunningProcess.run(try Tools.url("vtp-receiver"), args, timeout: 20)
            XCTAssertEqual(status, 64, "\(flag): usage status")
            XCTAssertFalse(out.contains("listening"), "\(flag): checked before listening")
            let errLines = err.split(separator: "\n")
            XCTAssertEqual(errLines.count, 1, "\(flag): one line: \(err)")
            XCTAssertTrue(err.contains("\(flag) /nonexistent/dir/out: directory /nonexistent/dir does not exist"), err)
            print("\(flag) refused after \(Date().timeIntervalSince(started)) s")
        }
    }

    func testDurationsTakeUnitsAndBadNumbersGetARealMessage() throws {
        let receiver = try Tools.url("vtp-receiver")
        let (help, helpOut, _) = try RunningProcess.run(receiver, ["--help"])
        XCTAssertEqual(help, 0)
        XCTAssertTrue(helpOut.contains("a bare number is seconds"), helpOut)

        let cases: [([String], [String])] = [
            (["--report-interval", "-5"], ["--report-interval must be a number of seconds", "(got -5)"]),
            (["--idle-timeout", "-1s"], ["--idle-timeout must be a number of seconds", "(got -1s)"]),
            (["--warmup-seconds", "soon"], ["--warmup-seconds must be a number of seconds", "(got soon)"]),
            (["--stop-after-seconds", "0"], ["--stop-after-seconds must be a positive number of seconds", "(got 0)"]),
            (["--stop-after-events", "-5"], ["--stop-after-events must be at least 1 (got -5)"]),
            (["--port", "-1"], ["--port must be a port number from 0 to 65535 (got -1)"]),
        ]
        for (args, message) in cases {
            let (status, _, err) = try RunningProcess.run(receiver, args, timeout: 20)
            XCTAssertEqual(status, 64, "\(args)")
            for part in message { XCTAssertTrue(err.contains(part), "\(args): \(err)") }
            XCTAssertFalse(err.contains("Missing value"), "\(args): \(err)")
        }

        let dir = try temporaryDirectory()
        let json = dir.appendingPathComponent("r.json")
        let started = Date()
        let (status, out, err) = try RunningProcess.run(
            receiver,
            ["--port", "0", "--report-interval", "100ms", "--idle-timeout", "2m", "--warmup-seconds", "1s",
             "--stop-after-seconds", "500ms", "--summary-json", json.path], timeout: 20)
        XCTAssertEqual(status, 0, err)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.5, "ran for its 500 ms")
        XCTAssertTrue(out.contains("vtp-receiver summary: received 0"), out)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        let settings = try XCTUnwrap(summary["settings"] as? [String: Any])
        XCTAssertEqual(settings["report_interval"] as? Double, 0.1)
        XCTAssertEqual(settings["idle_timeout"] as? Double, 120)
        XCTAssertEqual(settings["warmup_seconds"] as? Double, 1)
        XCTAssertEqual(settings["stop_after_seconds"] as? Double, 0.5)
    }

    func testAnIdleReceiverSaysSoOnceAndTheSummaryCarriesRunMetadata() throws {
        let dir = try temporaryDirectory()
        let json = dir.appendingPathComponent("r.json")
        let (status, out, err) = try RunningProcess.run(
            try Tools.url("vtp-receiver"),
            ["--port", "0", "--report-interval", "100ms", "--stop-after-seconds", "1.5", "--summary-json", json.path],
            timeout: 20)
        XCTAssertEqual(status, 0, err)
        let lines = out.split(separator: "\n")
        XCTAssertEqual(lines.filter { $0.hasPrefix("Idle since ") }.count, 1, "about 15 intervals, one idle line:\n\(out)")
        XCTAssertEqual(lines.filter { $0.hasPrefix("Received ") }.count, 1, "only the summary's:\n\(out)")

        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: json)) as? [String: Any])
        for key in ["run_id", "version", "host", "started_at", "settings"] {
            XCTAssertNotNil(summary[key], "summary lacks \(key)")
        }
        XCTAssertNotNil(UUID(uuidString: summary["run_id"] as? String ?? ""))
        XCTAssertTrue((summary["started_at"] as? String ?? "").hasSuffix("Z"))
        XCTAssertTrue(summary["latency_s"] is NSNull, "nothing measured: null, not zeros")
        XCTAssertEqual(summary["implausible_timestamp"] as? Int, 0)
        XCTAssertEqual(summary["untracked_runs"] as? Int, 0)
        XCTAssertEqual(summary["received"] as? Int, 0)
    }
}
