import Foundation
import TestSupport
import XCTest

/// Out-of-range durations, report intervals and connection counts: a one-line error and
/// exit 64 instead of a trap, a flood, or a run that cannot work.
final class LimitsCLITests: XCTestCase {
    private func temporaryConfig(_ json: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID()).json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func assertUsageError(
        _ tool: String, _ args: [String], mentions: String, file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let (status, _, err) = try RunningProcess.run(try Tools.url(tool), args, timeout: 20)
        XCTAssertEqual(status, 64, "\(tool) \(args): \(err)", file: file, line: line)
        XCTAssertTrue(err.contains(mentions), "\(tool) \(args): \(err)", file: file, line: line)
        let message = err.split(separator: "\n").first.map(String.init) ?? ""
        XCTAssertTrue(message.contains(mentions), "the first line says what is wrong: \(err)", file: file, line: line)
    }

    func testHugeDurationsAreUsageErrorsNotCrashes() throws {
        let week = "604800"
        // Flag values are named by their flag; config values by their key.
        try assertUsageError("vtp-sender", ["--period", "1e300"], mentions: "--period must be")
        try assertUsageError("vtp-sender", ["--rate", "1e-300"], mentions: "--rate")
        try assertUsageError("vtp-sender", ["--drain-timeout", "1e300"], mentions: "--drain-timeout must be")
        try assertUsageError("vtp-sender", ["--connect-timeout", "1e300"], mentions: "--connect-timeout must be")
        try assertUsageError("vtp-sender", ["--ack-timeout", "inf"], mentions: "--ack-timeout must be")
        for key in ["ack_timeout", "report_interval"] {
            let config = try temporaryConfig("{\"\(key)\": 1e300}")
            try assertUsageError("vtp-sender", ["--config", config.path], mentions: "\"\(key)\"")
        }
        try assertUsageError("vtp-receiver", ["--idle-timeout", "1e300"], mentions: "--idle-timeout must be")
        try assertUsageError("vtp-receiver", ["--report-interval", "1e300"], mentions: "--report-interval must be")
        try assertUsageError("vtp-receiver", ["--stop-after-seconds", "1e300"], mentions: "--stop-after-seconds")
        try assertUsageError("vtp-receiver", ["--warmup-seconds", "1e300"], mentions: week)
    }

    func testReportIntervalBelowTheMinimumIsRefusedByBothTools() throws {
        for tool in ["vtp-sender", "vtp-receiver"] {
            try assertUsageError(tool, ["--report-interval", "1e-9"], mentions: "0.1 (the minimum)")
        }
    }

    func testDuplicateConfigKeysAndMaxFrameSizeAreNamed() throws {
        let duplicate = try temporaryConfig(#"{"events": 10, "port": 9000, "events": 20}"#)
        try assertUsageError("vtp-sender", ["--config", duplicate.path], mentions: #"key "events" appears more than once"#)
        try assertUsageError("vtp-receiver", ["--max-frame-size", "0"], mentions: "--max-frame-size must be")
    }

    func testMaxConnectIsBoundedAndChecksTheOpenFileLimit() throws {
        try assertUsageError("vtp-sender", ["--max-connect", "100000"], mentions: "--max-connect must be")
        // sh's `ulimit -n` sets the hard limit too: 1000 connections cannot fit in 200 files.
        let sender = try Tools.url("vtp-sender").path
        let (status, _, err) = try RunningProcess.run(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", "ulimit -n 200 && exec \"$0\" \"$@\"", sender, "--port", "1", "--max-connect", "1000", "--events", "1000"],
            timeout: 20)
        XCTAssertEqual(status, 64, err)
        XCTAssertTrue(err.contains("RLIMIT_NOFILE") && err.contains("--max-connect"), err)
    }

    func testALowSoftOpenFileLimitIsRaisedForTheConnectionsNeeded() throws {
        let (hardStatus, hard, _) = try RunningProcess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "ulimit -Hn"])
        let hardLimit = hard.trimmingCharacters(in: .whitespacesAndNewlines)
        guard hardStatus == 0, hardLimit == "unlimited" || (Int(hardLimit) ?? 0) >= 1000 else {
            throw XCTSkip("hard open-file limit \(hardLimit) is too low for this test")
        }
        let receiver = try RunningProcess(try Tools.url("vtp-receiver"), ["--port", "0", "--report-interval", "5"])
        defer { receiver.process.terminate() }
        let line = try XCTUnwrap(receiver.waitForOutput { $0.hasPrefix("vtp-receiver: listening on") })
        let port = String(line.split(separator: ":").last!)
        let sender = try Tools.url("vtp-sender").path
        let (status, out, err) = try RunningProcess.run(
            URL(fileURLWithPath: "/bin/sh"),
            ["-c", "ulimit -Sn 200 && exec \"$0\" \"$@\"", sender, "--port", port, "--mode", "persistent",
             "--max-connect", "500", "--events", "500", "--period", "0.5", "--drain-timeout", "20"],
            timeout: 60)
        XCTAssertEqual(status, 0, out + err)
        XCTAssertTrue(err.contains("raised the open-file limit from 200"), err)
        XCTAssertTrue(out.contains("500 acked") && out.contains(" 0 connection errors"), out)
    }

    func testPersistentOpensOnlyTheConnectionsItNeedsAndExitsAfterItsDrainTimeout() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-limits-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let receiver = try RunningProcess(try Tools.url("vtp-receiver"), ["--port", "0", "--report-interval", "5"])
        defer { receiver.process.terminate() }
        let line = try XCTUnwrap(receiver.waitForOutput { $0.hasPrefix("vtp-receiver: listening on") })
        let port = String(line.split(separator: ":").last!)
        let summary = dir.appendingPathComponent("s.json")
        let (status, out, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"),
            ["--port", port, "--mode", "persistent", "--max-connect", "30000", "--events", "3", "--period", "0.2",
             "--drain-timeout", "2", "--summary-json", summary.path], timeout: 60)
        XCTAssertEqual(status, 0, out + err)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: summary)) as? [String: Any])
        XCTAssertEqual(json["acked"] as? Int, 3)
        XCTAssertEqual(json["errors"] as? Int, 0)
        XCTAssertLessThanOrEqual(json["connections_opened"] as? Int ?? .max, 3, "one connection per event at most")
    }

    func testDrainTimeoutEndsARunWhoseConnectsNeverComplete() throws {
        // A listener that never accepts: connects beyond its backlog stay pending, and
        // those would otherwise outlive the drain timeout by the 60 s connect timeout.
        let listener = try XCTUnwrap(ListeningSocket())
        defer { listener.close() }
        let port = String(listener.port)
        let started = Date()
        let (status, out, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"),
            ["--port", port, "--mode", "persistent", "--max-connect", "50", "--events", "50", "--period", "0",
             "--connect-timeout", "60", "--ack-timeout", "60", "--drain-timeout", "1"], timeout: 50)
        let elapsed = Date().timeIntervalSince(started)
        XCTAssertEqual(status, 1, out + err)
        XCTAssertTrue(out.contains("drain timeout"), out)
        XCTAssertTrue(out.contains("0 acked"), out)
        // Generous slack over the 1 s drain limit; the failure mode is the 60 s connect timeout.
        XCTAssertLessThan(elapsed, 30, "exited \(elapsed) s after start")
    }
}
