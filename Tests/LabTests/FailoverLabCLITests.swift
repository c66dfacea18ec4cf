import Foundation
import XCTest

/// `vtp-lab failover` as a user types it: bad values are one line with exit 64, before any
/// namespace is made (no root needed).
final class FailoverLabCLITests: XCTestCase {
    private func run(_ arguments: [String]) throws -> (status: Int32, stderr: String) {
        let bin = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: bin + "/vtp-lab")
        guard FileManager.default.isExecutableFile(atPath: bin + "/vtp-lab") else { throw XCTSkip("vtp-lab not built") }
        process.arguments = arguments
        let err = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = err
        try process.run()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stderr, as: UTF8.self))
    }

    func testBadValuesAreOneLineAndUsageStatus() throws {
        let cases: [([String], String)] = [
            (["--duration", "10s", "--at", "12s"], "--at must be within the window"),
            (["--rate", "0"], "--rate must be a positive number"),
            (["--max-connect", "0"], "--max-connect must be from 1 to 65535 (got 0)"),
            (["--ack-timeout", "0"], "--ack-timeout must be more than 0"),
        ]
        for (arguments, message) in cases {
            let (status, stderr) = try run(["failover"] + arguments)
            XCTAssertEqual(status, 64, "\(arguments): \(stderr)")
            XCTAssertEqual(stderr.split(separator: "\n").count, 1, stderr)
            XCTAssertTrue(stderr.contains(message), "\(arguments): \(stderr)")
        }
        let (status, stderr) = try run(["failover", "--fault", "pause"])
        XCTAssertEqual(status, 64, stderr)
        XCTAssertTrue(stderr.contains("kill") && stderr.contains("silence"), "the choices are named: \(stderr)")
    }

    func testATypoOfTheSubcommandIsAnswered() throws {
        let (status, stderr) = try run(["failovr"])
        XCTAssertEqual(status, 64)
        XCTAssertTrue(stderr.contains("did you mean 'failover'?"), stderr)
    }
}
