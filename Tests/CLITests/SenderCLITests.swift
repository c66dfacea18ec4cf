import Foundation
import TestSupport
import XCTest

/// vtp-sender as a new user meets it: fails fast with one line when the receiver cannot be
/// reached, names bad values by their flag, takes durations with units, checks output paths
/// before connecting, and reports what it sent in one number format.
final class SenderCLITests: XCTestCase {
    private func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-sender-cli-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    private func startReceiver() throws -> (RunningProcess, String) {
        let receiver = try RunningProcess(try Tools.url("vtp-receiver"), ["--port", "0", "--report-interval", "60"])
        addTeardownBlock { receiver.process.terminate() }
        let line = try XCTUnwrap(receiver.waitForOutput { $0.hasPrefix("vtp-receiver: listening on") })
        return (receiver, String(line.split(separator: ":").last!))
    }

    private func lines(_ text: String) -> [String] { text.split(separator: "\n").map(String.init) }

    func testAnUnreachableReceiverStopsAfterTheConnectTimeoutWithOneLine() throws {
        let started = Date()
        let (status, out, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"), ["--port", "1", "--events", "5", "--period", "1", "--connect-timeout", "700ms"],
            timeout: 60)
        XCTAssertEqual(status, 2, "the run could not be carried out: \(out)\(err)")
        XCTAssertEqual(lines(err), ["vtp-sender: no connection to 127.0.0.1:1 within 700 ms: connection refused"])
        XCTAssertFalse(out.contains("summary"), out)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.7, "it tried for the whole connect timeout")
    }

    func testAnUnknownHostIsNamedWithoutInternalTypeNames() throws {
        let (status, _, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"), ["--host", "nosuch.invalid", "--events", "2", "--connect-timeout", "500ms"],
            timeout: 60)
        XCTAssertEqual(status, 2, err)
        XCTAssertEqual(lines(err).count, 1, err)
        XCTAssertTrue(err.contains("unknown host nosuch.invalid"), err)
        for typeName in ["SocketAddressError", "NIOConnectionError", "UnknownHost", "error -"] {
            XCTAssertFalse(err.contains(typeName), err)
        }
    }

    func testBadNumbersAndDurationsAreNamedByTheirFlag() throws {
        let cases: [([String], String)] = [
            (["--events", "-5"], "--events must be at least 1 (got -5)"),
            (["--port", "-1"], "--port must be a port number from 0 to 65535 (got -1)"),
            (["--period", "-1s"], "--period must be a number of seconds from 0 to 604800 (one week)"),
            (["--connect-timeout", "10x"], "--connect-timeout must be a positive number of seconds"),
            (["--rate", "-3"], "--rate must be a positive number of events per second (got -3)"),
        ]
        for (args, message) in cases {
            let (status, _, err) = try RunningProcess.run(try Tools.url("vtp-sender"), args, timeout: 20)
            XCTAssertEqual(status, 64, "\(args): \(err)")
            XCTAssertTrue(lines(err).first?.contains(message) ?? false, "\(args): \(err)")
        }
    }

    func testAnUnwritableSummaryPathIsRefusedBeforeConnecting() throws {
        let (status, out, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"), ["--port", "1", "--summary-json", "/nonexistent/dir/s.json"], timeout: 20)
        XCTAssertEqual(status, 64)
        XCTAssertEqual(lines(err), ["vtp-sender: --summary-json /nonexistent/dir/s.json: directory /nonexistent/dir does not exist"])
        XCTAssertEqual(out, "", "nothing started")
    }

    func testVersion() throws {
        let (status, out, _) = try RunningProcess.run(try Tools.url("vtp-sender"), ["--version"])
        XCTAssertEqual(status, 0)
        XCTAssertNotNil(out.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression), out)
    }

    func testDurationsWithUnitsTheSizeSentAndTheSummaryJSON() throws {
        let (_, port) = try startReceiver()
        let dir = try temporaryDirectory()
        let summaryPath = dir.appendingPathComponent("s.json").path
        let (status, out, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"),
            ["--port", port, "--events", "20", "--period", "600ms", "--report-interval", "250ms", "--connect-timeout", "2s",
             "--ack-timeout", "5s", "--drain-timeout", "1m", "--event-size", "10", "--mode", "persistent",
             "--max-connect", "2", "--summary-json", summaryPath],
            timeout: 60)
        XCTAssertEqual(status, 0, out + err)
        let start = try XCTUnwrap(lines(out).first)
        let size = try XCTUnwrap(
            start.range(of: #"\d+-byte events"#, options: .regularExpression).map { Int(start[$0].prefix { $0.isNumber })! }, start)
        XCTAssertGreaterThan(size, 600, "the size sent, not the 10 bytes asked for: \(start)")
        XCTAssertTrue(start.contains("over 600 ms (33.3 events/s)"), start)
        let report = try XCTUnwrap(lines(out).first { $0.hasPrefix("[") }, out)
        XCTAssertTrue(report.contains(" events/s acked | ack round trip min/avg/max "), report)
        let summaryLine = try XCTUnwrap(lines(out).first { $0.hasPrefix("vtp-sender summary:") })
        XCTAssertTrue(summaryLine.contains("20 acked") && summaryLine.contains(" events/s acked"), summaryLine)
        let rtt = try XCTUnwrap(lines(out).first { $0.hasPrefix("ack round trip") })
        XCTAssertNotNil(rtt.range(of: #"min/avg/max [\d.]+/[\d.]+/[\d.]+ m?s"#, options: .regularExpression), rtt)

        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summaryPath))) as? [String: Any])
        for key in ["sent", "acked", "nakked", "failed", "not_sent", "max_backlog", "connections_opened", "duration_s",
                    "ack_rtt_s", "errors_by_cause", "run_id", "version", "host", "started_at", "settings"] {
            XCTAssertNotNil(json[key], "summary lacks \(key)")
        }
        XCTAssertEqual(json["not_sent"] as? Int, 0)
        XCTAssertNotNil(UUID(uuidString: json["run_id"] as? String ?? ""))
        let settings = try XCTUnwrap(json["settings"] as? [String: Any])
        XCTAssertEqual(settings["event_size_requested"] as? Int, 10)
        XCTAssertGreaterThan(settings["event_size"] as? Int ?? 0, 600)
        XCTAssertEqual(settings["mode"] as? String, "persistent")
        XCTAssertEqual(settings["max_connect"] as? Int, 2)
        XCTAssertEqual(settings["max_connect_scope"] as? String, "connection")
        XCTAssertEqual(settings["port"] as? Int, Int(port))
        XCTAssertEqual(try XCTUnwrap(settings["rate"] as? Double), 20 / 0.6, accuracy: 1e-9)
    }

    func testInterruptingCountsUnscheduledEventsAsNotSent() throws {
        let dir = try temporaryDirectory()
        let summaryPath = dir.appendingPathComponent("s.json").path
        let sender = try RunningProcess(
            try Tools.url("vtp-sender"),
            ["--port", "1", "--events", "50", "--period", "20s", "--connect-timeout", "1m", "--report-interval", "200ms",
             "--summary-json", summaryPath])
        XCTAssertNotNil(sender.waitForOutput { $0.hasPrefix("[") }, sender.stdout)
        kill(sender.process.processIdentifier, SIGINT)
        XCTAssertEqual(sender.wait(timeout: 10), 1)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: summaryPath))) as? [String: Any])
        let notSent = try XCTUnwrap(json["not_sent"] as? Int)
        let failed = try XCTUnwrap(json["failed"] as? Int)
        XCTAssertGreaterThan(notSent, 0, "the schedule had not reached them")
        XCTAssertEqual(failed + notSent, 50)
        XCTAssertEqual(json["connections_opened"] as? Int, 0, "refused connects never opened")
        XCTAssertTrue(json["ack_rtt_s"] is NSNull)
        XCTAssertTrue(sender.stdout.contains("\(notSent) not sent"), sender.stdout)
    }
}
