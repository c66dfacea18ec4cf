import CommandLineKit
import Foundation
import XCTest

/// vtp-lab and vtp-netem as processes: everything the user typed is checked before anything is
/// set up (one line, exit 64), so these need no root and take well under a second each.
final class LabCLITests: XCTestCase {
    private var binDirectory: String {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
    }

    private struct Outcome {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    private func run(_ tool: String, _ arguments: [String]) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binDirectory + "/" + tool)
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Outcome(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    private func temporaryDirectory(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    /// One line on stderr, exit 64, nothing on stdout (no lab was started).
    private func assertUsageError(
        _ outcome: Outcome, mentions texts: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertEqual(outcome.status, 64, outcome.stderr, file: file, line: line)
        let lines = outcome.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, outcome.stderr, file: file, line: line)
        for text in texts { XCTAssertTrue(outcome.stderr.contains(text), outcome.stderr, file: file, line: line) }
        XCTAssertFalse(outcome.stdout.contains("delay link"), outcome.stdout, file: file, line: line)
    }

    func testAMissingOrIncompleteBinDirIsAnError() throws {
        assertUsageError(
            try run("vtp-lab", ["run", "--bin-dir", "/nonexistent", "--duration", "1"]),
            mentions: ["vtp-lab: --bin-dir /nonexistent: no such directory"])
        let empty = try temporaryDirectory("vtplab-empty")
        assertUsageError(
            try run("vtp-lab", ["reproduce-2012", "--bin-dir", empty.path]),
            mentions: ["--bin-dir \(empty.path)", "no executable vtp-sender"])
        let half = try temporaryDirectory("vtplab-half")
        try FileManager.default.createSymbolicLink(
            atPath: half.appendingPathComponent("vtp-sender").path, withDestinationPath: binDirectory + "/vtp-sender")
        assertUsageError(
            try run("vtp-lab", ["run", "--bin-dir", half.path]), mentions: ["no executable vtp-receiver"])
        let file = half.appendingPathComponent("vtp-sender").path
        assertUsageError(try run("vtp-lab", ["run", "--bin-dir", file]), mentions: ["not a directory"])
    }

    func testOutputPathsAreCheckedBeforeTheSweep() throws {
        assertUsageError(
            try run("vtp-lab", ["run", "--bin-dir", binDirectory, "--json", "/nonexistent/dir/rows.json"]),
            mentions: ["--json /nonexistent/dir/rows.json", "does not exist"])
        let directory = try temporaryDirectory("vtplab-csv")
        assertUsageError(
            try run("vtp-lab", ["reproduce-2012", "--bin-dir", binDirectory, "--csv", directory.path]),
            mentions: ["--csv", "is a directory"])
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        assertUsageError(
            try run("vtp-netem", ["--summary-json", "/nonexistent/dir/n.json", "--delay-ms", "10ms"]),
            mentions: ["vtp-netem: --summary-json /nonexistent/dir/n.json", "does not exist"])
    }

    func testFlagValuesNameWhatIsWrong() throws {
        assertUsageError(
            try run("vtp-lab", ["run", "--delay-ms", "50,-5"]), mentions: ["--delay-ms: a duration cannot be negative"])
        assertUsageError(
            try run("vtp-lab", ["run", "--max-connect", "-1"]), mentions: ["--max-connect", "(got -1)"])
        assertUsageError(try run("vtp-lab", ["run", "--rate", "-5"]), mentions: ["--rate must be a positive"])
        // Units: a delay in ms, a window in s and a grace in ms pass the checks (the run then
        // stops at the missing --bin-dir, before anything is set up).
        assertUsageError(
            try run(
                "vtp-lab",
                ["run", "--delay-ms", "100ms,0.05s", "--duration", "3s", "--grace", "500ms", "--bin-dir", "/nonexistent"]),
            mentions: ["--bin-dir /nonexistent"])
        assertUsageError(
            try run("vtp-lab", ["reproduce-2012", "--delay-ms", "100ms", "--duration", "1m", "--bin-dir", "/nonexistent"]),
            mentions: ["--bin-dir /nonexistent"])
        let negative = try run("vtp-lab", ["run", "--duration", "-5"])
        XCTAssertEqual(negative.status, 64, negative.stderr)
        XCTAssertTrue(negative.stderr.contains("a duration cannot be negative"), negative.stderr)
        let help = try run("vtp-lab", ["run", "--help"])
        XCTAssertTrue(help.stdout.contains("bare number = ms"), help.stdout)
        XCTAssertTrue(help.stdout.contains("bare number = seconds"), help.stdout)
        XCTAssertTrue(help.stdout.contains("kept_up"), help.stdout)
    }

    func testSubcommandTyposGetASuggestion() throws {
        assertUsageError(try run("vtp-lab", ["runn"]), mentions: ["unknown subcommand 'runn'", "did you mean 'run'?"])
        assertUsageError(
            try run("vtp-lab", ["reproduce-2021"]), mentions: ["did you mean 'reproduce-2012'?"])
        let unknown = try run("vtp-lab", ["xyz"])
        XCTAssertEqual(unknown.status, 64)
        XCTAssertFalse(unknown.stderr.contains("did you mean"), unknown.stderr)
        XCTAssertTrue(unknown.stderr.contains("run, reproduce-2012"), unknown.stderr)
    }

    func testVersion() throws {
        for tool in ["vtp-lab", "vtp-netem"] {
            let outcome = try run(tool, ["--version"])
            XCTAssertEqual(outcome.status, 0, outcome.stderr)
            XCTAssertEqual(outcome.stdout.trimmingCharacters(in: .whitespacesAndNewlines), VTPBenchVersion.string)
        }
    }
}
