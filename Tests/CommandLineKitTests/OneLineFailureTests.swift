import ArgumentParser
import CommandLineKit
import XCTest

final class OneLineFailureTests: XCTestCase {
    func testAFailureBecomesItsExitStatusAndOtherErrorsPassThrough() {
        XCTAssertThrowsError(
            try OneLineFailure.reporting(tool: "vtp-test") {
                throw OneLineFailure("--bin-dir /x: no such directory", status: ExitStatus.usage)
            }
        ) { error in
            XCTAssertEqual((error as? ExitCode)?.rawValue, 64)
        }
        struct Other: Error {}
        XCTAssertThrowsError(try OneLineFailure.reporting(tool: "vtp-test") { throw Other() }) { error in
            XCTAssertTrue(error is Other)
        }
        XCTAssertNoThrow(try OneLineFailure.reporting(tool: "vtp-test") {})
    }
}
