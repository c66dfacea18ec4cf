@testable import BenchConfig
import Foundation
import XCTest

/// `window`, `burst`, `burst_every`: one declaration each, flags named in their errors.
final class WindowAndBurstKeyTests: XCTestCase {
    func testFlagsSetTheKeysAndBadValuesAreNamed() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("wb-\(UUID()).json")
        try Data("{}".utf8).write(to: url)
        defer { try? FileManager.default.removeItem(at: url) }
        let c = try SenderSettings.parse(
            ["--config", url.path, "--window", "64", "--events", "20000", "--burst", "10000", "--burst-every", "40s"]
        ).resolve()
        XCTAssertEqual(c.window, 64)
        XCTAssertEqual(c.burst, 10000)
        XCTAssertEqual(c.burstEvery, 40)
        XCTAssertEqual(BenchConfiguration.defaults.window, 1, "default: today's one event in flight")
        XCTAssertEqual(BenchConfiguration.defaults.burst, 0, "default: no bursts")
        let cases: [([String], String)] = [
            (["--window", "0"], "--window must be an integer from 1 to 65535 (got 0)"),
            (["--window", "-5"], "--window must be an integer from 1 to 65535 (got -5)"),
            (["--burst", "5000"], "--burst must be an integer from 0 to events (1000) (got 5000)"),
            (["--burst", "10", "--burst-every", "0"], "--burst-every must be a positive number of seconds"),
        ]
        for (args, message) in cases {
            XCTAssertThrowsError(try SenderSettings.parse(["--config", url.path] + args).resolve(), "\(args)") { error in
                XCTAssertTrue("\(error)".contains(message), "\(args): \(error)")
            }
        }
    }
}
