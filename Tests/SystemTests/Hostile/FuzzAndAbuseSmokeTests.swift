import DelayLink
import Foundation
import XCTest

/// scripts/fuzz and scripts/abuse as the suite runs them: every fuzz target for a short fixed
/// time (so none can rot), and the listeners' abuse smoke beside a real sender.
final class FuzzAndAbuseSmokeTests: XCTestCase {
    private var scripts: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts")
    }
    private var binDirectory: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    }

    /// Each target 5 s from an unoptimized sanitized build (`--debug`: half the CPU of the release
    /// build; the point here is that every target builds, links with libFuzzer and runs, not a
    /// long search, which `scripts/fuzz` without `--debug` is for).
    func testEveryFuzzTargetRunsWithoutACrashOrALeak() throws {
        let (status, output) = Shell.execute([scripts.appendingPathComponent("fuzz").path, "--debug", "--seconds", "5"])
        XCTAssertEqual(status, 0, output)
        let lines: [Substring] = output.split(separator: "\n")
        let fields: [[Substring]] = lines.map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        let rows = fields.filter { $0.count == 7 && $0[1] == "5" }
        XCTAssertEqual(rows.count, 7, "one row per target: \(output)")
        for row in rows {
            // It ran inputs at all. Not a rate: the slowest target (pcap) ran 2,106 in 10 s in one
            // CI run and 56 in 5 s in another, on a loaded machine.
            XCTAssertGreaterThan(Int(row[2]) ?? 0, 10, "\(row[0]) ran: \(output)")
            XCTAssertEqual(row[5], "0", "\(row[0]) crashed: \(output)")
            XCTAssertEqual(row[6], "0", "\(row[0]) leaked: \(output)")
        }
    }

    func testListenersUnderAbuseSmoke() throws {
        let (status, output) = Shell.execute([scripts.appendingPathComponent("abuse").path, "--smoke", "--bin", binDirectory])
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("every event acked in every phase"), output)
        for phase in ["receiver", "receiver-flood", "proxy", "proxy-flood"] {
            let row = output.split(separator: "\n").map { $0.split(separator: " ") }.first { $0.first.map(String.init) == phase }
            XCTAssertEqual(row?.count, 10, "\(phase): \(output)")
            guard let row, row.count == 10 else { continue }
            XCTAssertEqual(row[6], "yes", "\(phase): the listener is alive")
            guard phase.hasSuffix("flood") else { continue }
            // Past the descriptor limit: said once, and accepts paused rather than spun (a
            // spinning listener failed ~45,000 accepts a second; the 10 s flood allows 40).
            XCTAssertEqual(row[7], "1", "\(phase): one episode, one line: \(output)")
            XCTAssertLessThan(Int(row[8]) ?? .max, 400, "\(phase): failed accepts: \(output)")
        }
        XCTAssertTrue(output.contains("vtp-receiver: [Receiver] cannot accept connections"), output)
        XCTAssertTrue(output.contains("accepting connections again after"), output)
    }
}
