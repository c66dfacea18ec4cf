import DelayLink
import Foundation
import TestSupport
import XCTest

/// SIGTERM on a long-running tool writes its summary and flushes its files; a disk that fills
/// mid-run is one clear error line, and the measurement finishes.
final class NothingLostTests: XCTestCase {
    private var work: URL!

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("nothing-lost-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    override func tearDown() {
        for mount in mounts.reversed() { _ = Shell.execute(["umount", mount]) }
        try? FileManager.default.removeItem(at: work)
    }

    private var mounts: [String] = []

    /// A tmpfs of `kilobytes`: a disk that fills after a few writes.
    private func smallDisk(kilobytes: Int) throws -> URL {
        try XCTSkipUnless(getuid() == 0, "needs root (mount a small tmpfs)")
        let directory = work.appendingPathComponent("small-\(mounts.count)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let (status, output) = Shell.execute(["mount", "-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", directory.path])
        try XCTSkipUnless(status == 0, "cannot mount a tmpfs: \(output)")
        mounts.append(directory.path)
        return directory
    }

    private func startReceiver(_ arguments: [String]) throws -> (RunningProcess, Int) {
        let receiver = try RunningProcess(try Tools.url("vtp-receiver"), ["--no-store", "--port", "0"] + arguments)
        let line = try XCTUnwrap(receiver.waitForOutput { $0.hasPrefix("vtp-receiver: listening on") }, receiver.text)
        return (receiver, try XCTUnwrap(Int(line.split(separator: ":").last ?? "")))
    }

    private func send(_ events: Int, port: Int, extra: [String] = []) throws -> (Int32, String) {
        let (status, out, err) = try RunningProcess.run(
            try Tools.url("vtp-sender"),
            ["--no-store", "--port", String(port), "--events", String(events), "--period", "0", "--mode", "persistent", "--max-connect", "4"]
                + extra, timeout: 120)
        return (status, out + err)
    }

    /// The port in vtp-proxy's "listening on 127.0.0.1:PORT -> …" line.
    private func listeningPort(_ proxy: RunningProcess) throws -> Int {
        let ready = try XCTUnwrap(proxy.waitForOutput { $0.contains("listening on") }, proxy.text)
        let after = try XCTUnwrap(ready.range(of: "listening on 127.0.0.1:"), ready)
        return try XCTUnwrap(Int(ready[after.upperBound...].prefix { $0.isNumber }), ready)
    }

    private func json(_ url: URL) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func testReceiverOnSIGTERMFlushesEveryAckedEventToItsCSVAndWritesItsSummary() throws {
        let csv = work.appendingPathComponent("events.csv")
        let summary = work.appendingPathComponent("summary.json")
        let (receiver, port) = try startReceiver(["--events-csv", csv.path, "--summary-json", summary.path])
        let (status, output) = try send(2000, port: port)
        XCTAssertEqual(status, 0, output)
        kill(receiver.process.processIdentifier, SIGTERM)
        XCTAssertEqual(receiver.wait(timeout: 30), 0, receiver.text)
        let rows = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(rows.count, 2001, "the header and every acked event")
        XCTAssertEqual(try json(summary)["received"] as? Int, 2000)
    }

    func testProxyOnSIGTERMFlushesItsLogAndSaysHowManyLinesItWrote() throws {
        let (receiver, port) = try startReceiver([])
        defer { kill(receiver.process.processIdentifier, SIGTERM); receiver.wait(timeout: 10) }
        let log = work.appendingPathComponent("proxy.jsonl")
        let proxy = try RunningProcess(
            try Tools.url("vtp-proxy"),
            ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:\(port)", "--protocol", "vtp", "--log", log.path])
        let proxyPort = try listeningPort(proxy)
        let (status, output) = try send(500, port: proxyPort)
        XCTAssertEqual(status, 0, output)
        // At once: lines still in the 100 ms batch must reach the file too.
        kill(proxy.process.processIdentifier, SIGTERM)
        XCTAssertEqual(proxy.wait(timeout: 30), 0, proxy.text)
        let lines = try String(contentsOf: log, encoding: .utf8).split(separator: "\n")
        let events = lines.filter { $0.contains("\"event\":\"voevent\"") }.count
        XCTAssertEqual(events, 500, "every event forwarded is in the log")
        let said = proxy.stdout.split(separator: "\n").first { $0.hasSuffix(" log lines written") }
        let written = said.flatMap { Int($0.split(separator: " ")[1].replacingOccurrences(of: ",", with: "")) }
        XCTAssertEqual(written, lines.count, proxy.stdout)
    }

    func testReceiverCSVOnAFullDiskIsOneErrorAndTheRunGoesOn() throws {
        let disk = try smallDisk(kilobytes: 64)
        let csv = disk.appendingPathComponent("events.csv")
        let summary = work.appendingPathComponent("summary.json")
        let (receiver, port) = try startReceiver(["--events-csv", csv.path, "--summary-json", summary.path])
        let (status, output) = try send(3000, port: port)
        XCTAssertEqual(status, 0, "every event still acked: \(output)")
        kill(receiver.process.processIdentifier, SIGTERM)
        XCTAssertEqual(receiver.wait(timeout: 30), 0, receiver.text)
        let errors = receiver.stderr.split(separator: "\n").filter { $0.contains("--events-csv") }
        XCTAssertEqual(errors.count, 1, receiver.stderr)
        XCTAssertTrue(errors.first?.contains("No space left on device") == true, receiver.stderr)
        XCTAssertEqual(try json(summary)["received"] as? Int, 3000, "the measurement is whole")
        XCTAssertTrue(receiver.stdout.contains("vtp-receiver summary: received 3000"), receiver.stdout)
    }

    func testProxyLogOnAFullDiskIsOneWarningAndForwardingGoesOn() throws {
        let disk = try smallDisk(kilobytes: 64)
        let (receiver, port) = try startReceiver([])
        defer { kill(receiver.process.processIdentifier, SIGTERM); receiver.wait(timeout: 10) }
        let proxy = try RunningProcess(
            try Tools.url("vtp-proxy"),
            ["--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:\(port)", "--protocol", "vtp", "--log",
             disk.appendingPathComponent("proxy.jsonl").path])
        let proxyPort = try listeningPort(proxy)
        let (status, output) = try send(3000, port: proxyPort)
        XCTAssertEqual(status, 0, "every event still acked through the proxy: \(output)")
        kill(proxy.process.processIdentifier, SIGTERM)
        XCTAssertEqual(proxy.wait(timeout: 30), 0, "no crash: \(proxy.text)")
        let warnings = proxy.stderr.split(separator: "\n").filter { $0.contains("cannot write the log") }
        XCTAssertEqual(warnings.count, 1, proxy.stderr)
        XCTAssertTrue(proxy.stdout.contains("lost (the log could not be written)"), proxy.stdout)
    }

    func testStandardOutputOnAFullDiskDoesNotStopTheReceiver() throws {
        let summary = work.appendingPathComponent("summary.json")
        // stdout to /dev/full: every report line fails with ENOSPC.
        let script = "exec \"$0\" --no-store --port 0 --stop-after-seconds 2 --report-interval 0.2 --summary-json \"$1\" >/dev/full"
        let (status, output) = Shell.execute(["sh", "-c", script, try Tools.url("vtp-receiver").path, summary.path])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("standard output: No space left on device"), output)
        XCTAssertEqual(output.components(separatedBy: "standard output:").count - 1, 1, "said once: \(output)")
        XCTAssertNotNil(try? json(summary), "the summary is still written")
    }

    func testSenderStandardOutputOnAFullDiskStillWritesItsSummary() throws {
        let (receiver, port) = try startReceiver([])
        defer { kill(receiver.process.processIdentifier, SIGTERM); receiver.wait(timeout: 10) }
        let summary = work.appendingPathComponent("sender.json")
        let script = "exec \"$0\" --no-store --port \"$1\" --events 200 --period 1 --report-interval 0.2 --summary-json \"$2\" >/dev/full"
        let (status, output) = Shell.execute(["sh", "-c", script, try Tools.url("vtp-sender").path, String(port), summary.path])
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(try json(summary)["acked"] as? Int, 200, output)
    }

    func testPGProbeSniffOnSIGTERMWritesItsSummary() throws {
        try XCTSkipUnless(getuid() == 0, "needs root (live capture)")
        let summary = work.appendingPathComponent("sniff.json")
        let sniff = try RunningProcess(
            try Tools.url("pgprobe"), ["sniff", "--interface", "lo", "--port", "5999", "--summary-json", summary.path])
        XCTAssertNotNil(sniff.waitForOutput(timeout: 20) { $0.contains("capturing on lo") }, sniff.text)
        kill(sniff.process.processIdentifier, SIGTERM)
        XCTAssertEqual(sniff.wait(timeout: 30), 0, sniff.text)
        XCTAssertTrue(sniff.stdout.contains("pgprobe sniff: 0 requests"), sniff.stdout)
        XCTAssertEqual(try json(summary)["requests"] as? Int, 0)
    }

    func testVTPCaptureRecordOnSIGTERMWritesThePcap() throws {
        try XCTSkipUnless(getuid() == 0, "needs root (live capture)")
        let (receiver, port) = try startReceiver([])
        defer { kill(receiver.process.processIdentifier, SIGTERM); receiver.wait(timeout: 10) }
        let pcap = work.appendingPathComponent("record.pcap")
        let record = try RunningProcess(
            try Tools.url("vtp-capture"),
            ["record", "--interface", "lo", "--port", String(port), "--seconds", "600", "--output", pcap.path])
        XCTAssertNotNil(record.waitFor("capturing tcp port", seconds: 20), record.text)
        let (status, output) = try send(50, port: port)
        XCTAssertEqual(status, 0, output)
        kill(record.process.processIdentifier, SIGTERM)
        XCTAssertEqual(record.wait(timeout: 30), 0, record.text)
        XCTAssertTrue(record.stderr.contains("wrote"), record.stderr)
        let analysis = try RunningProcess.run(try Tools.url("vtp-capture"), ["analyze", pcap.path, "--port", String(port)])
        XCTAssertEqual(analysis.0, 0, analysis.1 + analysis.2)
        XCTAssertTrue(analysis.1.contains(": 50 events"), analysis.1)
    }
}
