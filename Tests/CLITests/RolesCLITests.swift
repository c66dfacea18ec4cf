import Foundation
import TestSupport
import XCTest

/// The broker roles as processes on loopback: vtp-sender --broadcast to two vtp-receiver
/// --subscribe, and their flags' errors.
final class RolesCLITests: XCTestCase {
    func testBroadcastToTwoSubscribersDeliversEveryEventToBothWithSummaries() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-roles-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let sender = try RunningProcess(
            try Tools.url("vtp-sender"),
            ["--broadcast", "127.0.0.1:0", "--wait-subscribers", "2", "--events", "200", "--period", "1", "--window", "8",
             "--report-interval", "60", "--summary-json", dir.appendingPathComponent("s.json").path])
        addTeardownBlock { sender.process.terminate() }
        let line = try XCTUnwrap(sender.waitForOutput { $0.hasPrefix("vtp-sender: broadcasting on 127.0.0.1:") }, sender.text)
        let port = try XCTUnwrap(line.split(separator: ":").dropFirst(2).first?.split(separator: ";").first)
        let receivers = try (0..<2).map { index in
            let receiver = try RunningProcess(
                try Tools.url("vtp-receiver"),
                ["--subscribe", "127.0.0.1:\(port)", "--stop-after-events", "200", "--stop-after-seconds", "60",
                 "--report-interval", "60", "--summary-json", dir.appendingPathComponent("r\(index).json").path])
            addTeardownBlock { receiver.process.terminate() }
            return receiver
        }
        XCTAssertEqual(sender.wait(timeout: 60), 0, sender.text)
        XCTAssertTrue(sender.stdout.contains("vtp-sender: 2 subscribers connected; the schedule starts"), sender.stdout)
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("s.json"))) as! [String: Any]
        XCTAssertEqual(summary["acked"] as? Int, 200)
        let subscribers = try XCTUnwrap(summary["subscribers"] as? [[String: Any]])
        XCTAssertEqual(subscribers.count, 2)
        for subscriber in subscribers {
            XCTAssertEqual(Set(subscriber.keys), ["peer", "sent", "acked", "nakked", "dropped", "drop_reason"])
            XCTAssertEqual(subscriber["acked"] as? Int, 200)
            XCTAssertEqual(subscriber["dropped"] as? Bool, false)
        }
        let settings = try XCTUnwrap(summary["settings"] as? [String: Any])
        XCTAssertEqual(settings["wait_subscribers"] as? Int, 2)
        for (index, receiver) in receivers.enumerated() {
            XCTAssertEqual(receiver.wait(timeout: 30), 0, receiver.text)
            XCTAssertTrue(receiver.stdout.contains("vtp-receiver: subscribed to 127.0.0.1:\(port)"), receiver.stdout)
            XCTAssertTrue(receiver.stdout.contains("  via broker 127.0.0.1:\(port): 200 events (0 duplicates)"), receiver.stdout)
            let got = try JSONSerialization.jsonObject(
                with: Data(contentsOf: dir.appendingPathComponent("r\(index).json"))) as! [String: Any]
            XCTAssertEqual(got["unique"] as? Int, 200)
            let via = try XCTUnwrap((got["subscriptions"] as? [[String: Any]])?.first)
            XCTAssertEqual(via["events"] as? Int, 200)
        }
    }

    func testRoleFlagsGetClearErrors() throws {
        let cases: [(String, [String], String)] = [
            ("vtp-receiver", ["--subscribe", "localhost"],
             "--subscribe must be HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8099 or [::1]:8099 (got localhost)"),
            ("vtp-receiver", ["--subscribe", "127.0.0.1:8099", "--capture-interface", "lo"], "does not go with --subscribe"),
            ("vtp-sender", ["--broadcast", "127.0.0.1:99999"], "--broadcast must be HOST:PORT with a port from 0 to 65535"),
            ("vtp-sender", ["--wait-subscribers", "2"], "--wait-subscribers needs --broadcast"),
            ("vtp-sender", ["--broadcast", "127.0.0.1:0", "--wait-subscribers", "-1"],
             "--wait-subscribers must be an integer of at least 0 (got -1)"),
            ("vtp-sender", ["--iamalive-interval", "0"], "--iamalive-interval must be a positive number of seconds"),
        ]
        for (tool, args, message) in cases {
            let (status, _, err) = try RunningProcess.run(try Tools.url(tool), args)
            XCTAssertEqual(status, 64, "\(tool) \(args): \(err)")
            XCTAssertTrue(err.contains(message), "\(tool) \(args): \(err)")
        }
    }

    func testABroadcasterThatCannotListenSaysSoWithStatus2() throws {
        let first = try RunningProcess(
            try Tools.url("vtp-sender"), ["--broadcast", "127.0.0.1:0", "--events", "1", "--report-interval", "60"])
        defer { first.process.terminate() }
        let line = try XCTUnwrap(first.waitForOutput { $0.hasPrefix("vtp-sender: broadcasting on 127.0.0.1:") }, first.text)
        let port = try XCTUnwrap(line.split(separator: ":").dropFirst(2).first?.split(separator: ";").first)
        let (status, _, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"), ["--broadcast", "127.0.0.1:\(port)", "--events", "1"])
        XCTAssertEqual(status, 2, err)
        XCTAssertTrue(err.contains("cannot listen on 127.0.0.1:\(port)"), err)
    }
}
