import Foundation
import TestSupport
import XCTest

/// vtp-sender with two receivers, as processes on loopback: the first is SIGKILLed or made
/// silent mid-run; reconciled by ivorn from both receivers' --events-csv, nothing is lost.
final class FailoverCLITests: XCTestCase {
    private func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vtp-failover-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    /// A receiver on a free port writing its events to `csv`.
    private func startReceiver(csv: String, port: Int = 0) throws -> (RunningProcess, Int) {
        let receiver = try RunningProcess(
            try Tools.url("vtp-receiver"), ["--port", String(port), "--report-interval", "60", "--events-csv", csv])
        addTeardownBlock { if receiver.process.isRunning { kill(receiver.process.processIdentifier, SIGKILL) } }
        let line = try XCTUnwrap(receiver.waitForOutput { $0.hasPrefix("vtp-receiver: listening on") }, receiver.text)
        return (receiver, try XCTUnwrap(line.split(separator: ":").last.flatMap { Int($0) }))
    }

    private func startSender(_ arguments: [String]) throws -> RunningProcess {
        let sender = try RunningProcess(try Tools.url("vtp-sender"), arguments)
        addTeardownBlock { if sender.process.isRunning { kill(sender.process.processIdentifier, SIGKILL) } }
        return sender
    }

    /// Sequence numbers in a receiver's --events-csv (of this run's ivorns).
    private func sequences(_ csv: String) throws -> [Int] {
        try String(contentsOfFile: csv, encoding: .utf8).split(separator: "\n").dropFirst().compactMap {
            $0.split(separator: ",").first.flatMap { Int($0) }
        }
    }

    private func rows(_ csv: String) -> Int { (try? sequences(csv).count) ?? 0 }

    private func waitUntil(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    private func summary(_ path: String) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// Every event is in the union of both receivers' CSVs; returns the per-receiver counts.
    private func assertReconciled(_ csvs: [String], events: Int, file: StaticString = #filePath, line: UInt = #line)
        throws -> [Int]
    {
        let perReceiver = try csvs.map { try sequences($0) }
        let union = Set(perReceiver.joined())
        XCTAssertEqual(union, Set(0..<events), "missing: \(Set(0..<events).subtracting(union).sorted().prefix(10))", file: file, line: line)
        return perReceiver.map(\.count)
    }

    func testKillingTheFirstReceiverLosesNothingAndReportsTheRTO() throws {
        for mode in [["--mode", "per-event", "--max-connect", "8"], ["--mode", "persistent", "--max-connect", "2", "--window", "8"]] {
            let dir = try temporaryDirectory()
            let (csvA, csvB) = (dir.appendingPathComponent("a.csv").path, dir.appendingPathComponent("b.csv").path)
            let (first, portA) = try startReceiver(csv: csvA)
            let (second, portB) = try startReceiver(csv: csvB)
            let summaryPath = dir.appendingPathComponent("s.json").path
            let events = 600
            let sender = try startSender(
                [
                    "--target", "127.0.0.1:\(portA)", "--target", "127.0.0.1:\(portB)", "--events", String(events),
                    "--period", "3s", "--report-interval", "500ms", "--summary-json", summaryPath, "--drain-timeout", "20s",
                ] + mode)
            XCTAssertTrue(waitUntil(20) { rows(csvA) >= 150 }, "the first receiver gets events: \(sender.text)")
            kill(first.process.processIdentifier, SIGKILL)
            XCTAssertEqual(sender.wait(timeout: 60), 0, "every event acked: \(sender.text)")
            second.process.terminate()
            _ = second.wait(timeout: 10)

            let counts = try assertReconciled([csvA, csvB], events: events)
            XCTAssertGreaterThan(counts[1], 0, "the second receiver took over")
            let s = try summary(summaryPath)
            XCTAssertEqual(s["lost"] as? Int, 0, "\(mode)")
            XCTAssertEqual(s["acked"] as? Int, events)
            let failovers = try XCTUnwrap(s["failovers"] as? [[String: Any]])
            XCTAssertEqual(failovers.count, 1, "\(failovers)")
            XCTAssertEqual(failovers.first?["from"] as? String, "127.0.0.1:\(portA)")
            XCTAssertEqual(failovers.first?["to"] as? String, "127.0.0.1:\(portB)")
            XCTAssertTrue(
                ["reset", "refused"].contains(failovers.first?["cause"] as? String ?? ""),
                "\(failovers); errors by cause \(s["errors_by_cause"] ?? "none"); \(sender.text)")
            let rto = try XCTUnwrap(failovers.first?["rto_s"] as? Double, "RTO reported")
            XCTAssertGreaterThan(rto, 0)
            XCTAssertEqual(failovers.first?["resent"] as? Int, failovers.first?["unacked_at_failure"] as? Int)
            let targets = try XCTUnwrap(s["targets"] as? [[String: Any]])
            XCTAssertEqual(targets.map { $0["target"] as? String }, ["127.0.0.1:\(portA)", "127.0.0.1:\(portB)"])
            // Acks per target add up to the events plus any duplicate a dead receiver acked unseen.
            let acked = targets.compactMap { $0["acked"] as? Int }
            XCTAssertEqual(acked.reduce(0, +), events, "one ack per event: a resent event was not acked before")
            // The killed receiver may have rows whose acks never reached the sender (resent: duplicates).
            XCTAssertGreaterThanOrEqual(counts[0], acked[0], "every ack the sender counted has its row")
            XCTAssertEqual(counts[1], acked[1])
            XCTAssertLessThanOrEqual(counts[0] + counts[1] - events, s["duplicates_sent"] as? Int ?? 0)
            XCTAssertTrue(sender.stdout.contains("| to 127.0.0.1:\(portB) |"), "report lines show the current target")
        }
    }

    func testASilentFirstReceiverIsDetectedAfterTheAckTimeout() throws {
        let proxyBinary = try Tools.url("vtp-proxy")
        let dir = try temporaryDirectory()
        let (csvA, csvB) = (dir.appendingPathComponent("a.csv").path, dir.appendingPathComponent("b.csv").path)
        let (_, portA) = try startReceiver(csv: csvA)
        let (_, portB) = try startReceiver(csv: csvB)
        let proxy = try RunningProcess(
            proxyBinary, ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:\(portA)", "--control", "127.0.0.1:0"])
        addTeardownBlock { if proxy.process.isRunning { kill(proxy.process.processIdentifier, SIGKILL) } }
        let listen = try XCTUnwrap(proxy.waitForOutput { $0.contains("listening on") }, proxy.text)
        let proxyPort = try XCTUnwrap(listen.split(separator: " ").first { $0.hasPrefix("127.0.0.1:") }?.split(separator: ":").last)
        let control = try XCTUnwrap(proxy.waitForOutput { $0.contains("control on http://") }, proxy.text)
        let controlPort = try XCTUnwrap(Int(control.split(separator: ":").last?.split(separator: "/").first ?? ""))

        let summaryPath = dir.appendingPathComponent("s.json").path
        let events = 400
        let ackTimeout = 1.5
        let failedLine = "vtp-sender: 127.0.0.1:\(proxyPort) failed; sending to 127.0.0.1:\(portB)"
        let sender = try startSender([
            "--target", "127.0.0.1:\(proxyPort)", "--target", "127.0.0.1:\(portB)", "--events", String(events),
            "--period", "4s", "--mode", "persistent", "--max-connect", "2", "--window", "4", "--ack-timeout", "1500ms",
            "--report-interval", "500ms", "--summary-json", summaryPath, "--drain-timeout", "20s",
        ])
        XCTAssertTrue(waitUntil(20) { rows(csvA) >= 80 }, sender.text)
        // Black hole in both directions: connections stay open, nothing comes back.
        for stream in ["upstream", "downstream"] {
            let body = #"{"name":"silent_\#(stream)","type":"timeout","stream":"\#(stream)","attributes":{"timeout":0}}"#
            let (status, answer) = try blockingHTTPRequest(port: controlPort, method: "POST", path: "/proxies/proxy/toxics", body: body)
            XCTAssertTrue((200..<300).contains(status), answer)
        }
        let silenced = Date()
        // Seen here at most a poll later than printed: a lower bound on the detection time stays one.
        XCTAssertNotNil(sender.waitForOutput(timeout: 30) { $0 == failedLine }, sender.text)
        let detection = Date().timeIntervalSince(silenced)
        XCTAssertEqual(sender.wait(timeout: 60), 0, sender.text)

        _ = try assertReconciled([csvA, csvB], events: events)
        let s = try summary(summaryPath)
        XCTAssertEqual(s["lost"] as? Int, 0)
        let failover = try XCTUnwrap((s["failovers"] as? [[String: Any]])?.first, "\(s)")
        XCTAssertEqual(failover["cause"] as? String, "ack_timeout")
        // An event written just before the silence started its ack timeout a round trip early:
        // 10% slack. The RTO (last ack before → first ack after) covers the detection.
        XCTAssertGreaterThanOrEqual(detection, ackTimeout * 0.9, "\(failover)")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(failover["rto_s"] as? Double), ackTimeout * 0.9, "\(failover)")
        XCTAssertNotNil(failover["detected_at_s"] as? Double)
        XCTAssertGreaterThan(failover["unacked_at_failure"] as? Int ?? 0, 0, "events were in flight when it went silent")
        XCTAssertEqual(failover["resent"] as? Int, failover["unacked_at_failure"] as? Int)
    }

    func testAllSendsEveryEventToEveryTargetAndGoesOnWithoutADeadOne() throws {
        let dir = try temporaryDirectory()
        let (csvA, csvB) = (dir.appendingPathComponent("a.csv").path, dir.appendingPathComponent("b.csv").path)
        let (first, portA) = try startReceiver(csv: csvA)
        let (second, portB) = try startReceiver(csv: csvB)
        let summaryPath = dir.appendingPathComponent("s.json").path
        let events = 400
        // A drain timeout far beyond the wait: the run must end without waiting for the dead target.
        let sender = try startSender([
            "--target", "127.0.0.1:\(portA)", "--target", "127.0.0.1:\(portB)", "--failover", "all", "--events",
            String(events), "--period", "2s", "--max-connect", "8", "--report-interval", "500ms", "--summary-json",
            summaryPath, "--drain-timeout", "10m",
        ])
        XCTAssertTrue(waitUntil(20) { rows(csvA) >= 100 }, sender.text)
        kill(first.process.processIdentifier, SIGKILL)
        XCTAssertEqual(sender.wait(timeout: 60), 0, "every event delivered by the live target: \(sender.text)")
        second.process.terminate()
        _ = second.wait(timeout: 10)

        XCTAssertEqual(Set(try sequences(csvB)), Set(0..<events), "every event went to the second target")
        let s = try summary(summaryPath)
        XCTAssertEqual(s["acked"] as? Int, events)
        XCTAssertEqual(s["lost"] as? Int, 0)
        XCTAssertEqual((s["failovers"] as? [Any])?.count, 0, "nothing to move: every target gets every event")
        let targets = try XCTUnwrap(s["targets"] as? [[String: Any]])
        XCTAssertEqual(targets.count, 2)
        XCTAssertEqual(targets[1]["acked"] as? Int, events)
        let firstAcked = try XCTUnwrap(targets[0]["acked"] as? Int)
        XCTAssertGreaterThanOrEqual(try sequences(csvA).count, firstAcked, "its acks have their rows")
        XCTAssertLessThan(firstAcked, events, "the killed target did not ack everything")
        XCTAssertGreaterThan(targets[0]["failed"] as? Int ?? 0, 0)
        XCTAssertTrue(sender.stdout.contains("| to 127.0.0.1:\(portA) |"), "a report line per target")
    }

    func testFailbackReturnsToTheFirstReceiverOnceItIsBack() throws {
        let dir = try temporaryDirectory()
        let csv = { (name: String) in dir.appendingPathComponent(name).path }
        let (first, portA) = try startReceiver(csv: csv("a1.csv"))
        let (_, portB) = try startReceiver(csv: csv("b.csv"))
        let summaryPath = csv("s.json")
        let events = 800
        let sender = try startSender([
            "--target", "127.0.0.1:\(portA)", "--target", "127.0.0.1:\(portB)", "--failback", "--events", String(events),
            "--period", "8s", "--mode", "persistent", "--max-connect", "2", "--report-interval", "500ms",
            "--summary-json", summaryPath, "--drain-timeout", "20s",
        ])
        XCTAssertTrue(waitUntil(20) { rows(csv("a1.csv")) >= 100 }, sender.text)
        kill(first.process.processIdentifier, SIGKILL)
        XCTAssertTrue(waitUntil(20) { rows(csv("b.csv")) >= 100 }, "moved to the second: \(sender.text)")
        // The first comes back on its port, with a new CSV.
        _ = try startReceiver(csv: csv("a2.csv"), port: portA)
        XCTAssertEqual(sender.wait(timeout: 60), 0, sender.text)

        _ = try assertReconciled([csv("a1.csv"), csv("b.csv"), csv("a2.csv")], events: events)
        XCTAssertGreaterThan(rows(csv("a2.csv")), 0, "events went back to the first receiver")
        let s = try summary(summaryPath)
        XCTAssertEqual(s["lost"] as? Int, 0)
        let failbacks = try XCTUnwrap(s["failbacks"] as? [[String: Any]])
        XCTAssertEqual(failbacks.count, 1, "\(failbacks)")
        XCTAssertEqual(failbacks.first?["to"] as? String, "127.0.0.1:\(portA)")
        XCTAssertTrue(sender.stdout.contains("127.0.0.1:\(portA) accepts connections again"), sender.stdout)
    }

    func testATargetThatIsNotHostPortIsOneLineAndUsageStatus() throws {
        let (status, out, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"), ["--target", "127.0.0.1:8098", "--target", "127.0.0.1"], timeout: 20)
        XCTAssertEqual(status, 64, err)
        XCTAssertEqual(out, "")
        XCTAssertEqual(
            err.split(separator: "\n").first.map(String.init),
            "Error: --target must be HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8098 or [::1]:8098 (got \"127.0.0.1\")")
    }

    func testNoReachableTargetNamesThemAllInOneLine() throws {
        let (status, _, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"),
            ["--target", "127.0.0.1:1", "--target", "127.0.0.1:2", "--events", "3", "--connect-timeout", "1s"], timeout: 30)
        XCTAssertEqual(status, 2, err)
        XCTAssertEqual(
            err.split(separator: "\n").map(String.init),
            ["vtp-sender: no connection to any of 127.0.0.1:1, 127.0.0.1:2 within 1.00 s: connection refused"])
    }
}
