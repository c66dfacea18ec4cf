import Foundation
import TestSupport
import XCTest

/// The executables as users drive them: flags, exit codes, output, signals.
final class CLITests: XCTestCase {
    func testHelpDescribesEveryInterfaceFlag() throws {
        let (status, out, _) = try RunningProcess.run(try Tools.url("vtp-sender"), ["--help"])
        XCTAssertEqual(status, 0)
        for flag in ["--config", "--host", "--port", "--max-connect", "--events", "--period", "--mode", "--event-size",
                     "--report-interval", "--summary-json", "--max-connect-scope"] {
            XCTAssertTrue(out.contains(flag), "vtp-sender --help lacks \(flag)")
        }
        let (rstatus, rout, _) = try RunningProcess.run(try Tools.url("vtp-receiver"), ["--help"])
        XCTAssertEqual(rstatus, 0)
        for flag in ["--config", "--host", "--port", "--report-interval", "--stop-after-events", "--stop-after-seconds",
                     "--summary-json", "--events-csv", "--warmup-seconds"] {
            XCTAssertTrue(rout.contains(flag), "vtp-receiver --help lacks \(flag)")
        }
    }

    func testBadInputGetsAClearErrorAndUsageExitStatus() throws {
        let sender = try Tools.url("vtp-sender")
        let cases: [([String], String)] = [
            (["--mode", "batch"], "--mode must be per-event or persistent"),
            (["--max-connect", "0"], "--max-connect must be an integer from 1 to 65535 (got 0)"),
            (["--port", "99999"], "port"),
            (["--config", "/nonexistent.json"], "cannot read config file /nonexistent.json"),
        ]
        for (args, message) in cases {
            let (status, _, err) = try RunningProcess.run(sender, args)
            XCTAssertEqual(status, 64, "\(args): ArgumentParser's usage-error status")
            XCTAssertTrue(err.contains(message), "\(args): \(err)")
        }
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID()).json")
        try #"{"max_conect": 2}"#.write(to: config, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: config) }
        let (status, _, err) = try RunningProcess.run(try Tools.url("vtp-receiver"), ["--config", config.path])
        XCTAssertEqual(status, 64)
        XCTAssertTrue(err.contains(#"unknown key "max_conect" (did you mean "max_connect"?)"#), err)
    }

    func testPortInUseIsAClearError() throws {
        let first = try RunningProcess(try Tools.url("vtp-receiver"), ["--port", "0", "--stop-after-seconds", "20"])
        defer { first.process.terminate() }
        let line = try XCTUnwrap(first.waitForOutput { $0.hasPrefix("vtp-receiver: listening on") })
        let port = String(line.split(separator: ":").last!)
        let (status, _, err) = try RunningProcess.run(try Tools.url("vtp-receiver"), ["--port", port])
        XCTAssertEqual(status, 2, "ExitStatus.runFailed: the run could not be carried out")
        XCTAssertTrue(err.contains("cannot listen on 127.0.0.1:\(port)"), err)
    }

    func testSenderToReceiverWithSummariesAndSIGINT() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-cli-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let receiver = try RunningProcess(
            try Tools.url("vtp-receiver"),
            ["--port", "0", "--report-interval", "0.5", "--summary-json", dir.appendingPathComponent("r.json").path])
        let line = try XCTUnwrap(receiver.waitForOutput { $0.hasPrefix("vtp-receiver: listening on") })
        let port = String(line.split(separator: ":").last!)

        let (status, out, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"),
            ["--port", port, "--events", "300", "--period", "1", "--max-connect", "4", "--mode", "persistent",
             "--report-interval", "0.5", "--summary-json", dir.appendingPathComponent("s.json").path])
        XCTAssertEqual(status, 0, err)
        XCTAssertTrue(out.contains("acked"), out)
        let sent = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("s.json"))) as! [String: Any]
        for key in ["sent", "acked", "nakked", "failed", "max_backlog", "connections_opened", "duration_s", "ack_rtt_s"] {
            XCTAssertNotNil(sent[key], "sender summary lacks \(key)")
        }
        XCTAssertEqual(sent["acked"] as? Int, 300)
        let rtt = try XCTUnwrap(sent["ack_rtt_s"] as? [String: Any])
        XCTAssertEqual(Set(rtt.keys), ["count", "min", "max", "mean", "stddev", "p50", "p90", "p99", "p999"])

        // A report line reaches a pipe while the receiver runs (flushed), then SIGINT.
        XCTAssertNotNil(receiver.waitForOutput { $0.hasPrefix("Received 300 events; Latency ") })
        kill(receiver.process.processIdentifier, SIGINT)
        XCTAssertEqual(receiver.wait(timeout: 10), 0)
        XCTAssertTrue(receiver.stdout.contains("vtp-receiver summary: received 300"), receiver.stdout)
        let got = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("r.json"))) as! [String: Any]
        for key in ["received", "unique", "duplicates", "missing", "out_of_order", "naks", "latency_s"] {
            XCTAssertNotNil(got[key], "receiver summary lacks \(key)")
        }
        XCTAssertEqual(got["received"] as? Int, 300)
        XCTAssertEqual(got["unique"] as? Int, 300)
    }

    func testSenderExitsNonZeroWhenEventsAreNotAckedAndSIGINTPrintsTheSummary() throws {
        // Nothing listens on this port: events stay queued until SIGINT.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-cli-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sender = try RunningProcess(
            try Tools.url("vtp-sender"),
            ["--port", "1", "--events", "50", "--period", "0.2", "--report-interval", "0.2",
             "--summary-json", dir.appendingPathComponent("s.json").path])
        XCTAssertNotNil(sender.waitForOutput { $0.contains("backlog 50") }, sender.stdout)
        kill(sender.process.processIdentifier, SIGINT)
        XCTAssertEqual(sender.wait(timeout: 10), 1)
        XCTAssertTrue(sender.stdout.contains("0 acked"), sender.stdout)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("s.json"))) as! [String: Any]
        XCTAssertEqual(summary["failed"] as? Int, 50, "queued events are reported failed, not silently dropped")
    }

    func testReceiverStopsAfterSecondsAndOnSIGTERMWritesItsSummary() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-cli-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let timed = dir.appendingPathComponent("timed.json")
        let (status, out, _) = try RunningProcess.run(
            try Tools.url("vtp-receiver"), ["--port", "0", "--stop-after-seconds", "0.5", "--summary-json", timed.path],
            timeout: 10)
        XCTAssertEqual(status, 0)
        XCTAssertTrue(out.contains("vtp-receiver summary: received 0"), out)
        XCTAssertTrue(FileManager.default.fileExists(atPath: timed.path))

        let termed = dir.appendingPathComponent("termed.json")
        let receiver = try RunningProcess(try Tools.url("vtp-receiver"), ["--port", "0", "--summary-json", termed.path])
        XCTAssertNotNil(receiver.waitForOutput { $0.hasPrefix("vtp-receiver: listening on") })
        kill(receiver.process.processIdentifier, SIGTERM)
        XCTAssertEqual(receiver.wait(timeout: 10), 0)
        XCTAssertTrue(receiver.stdout.contains("vtp-receiver summary"), receiver.stdout)
        XCTAssertTrue(FileManager.default.fileExists(atPath: termed.path))
    }

    func testPrintEventIsAValidVOEvent() throws {
        let (status, out, _) = try RunningProcess.run(try Tools.url("vtp-sender"), ["--print-event", "--event-size", "2048"])
        XCTAssertEqual(status, 0)
        XCTAssertEqual(out.utf8.count, 2048)
        XCTAssertTrue(out.contains(#"role="test""#))
    }
}
