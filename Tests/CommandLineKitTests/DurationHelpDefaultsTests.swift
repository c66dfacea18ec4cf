import ArgumentParser
import CommandLineKit
import XCTest

final class DurationHelpDefaultsTests: XCTestCase {
    struct Command: ParsableCommand {
        @Option(help: "Seconds.") var wait = SecondsArgument(seconds: 10)
        @Option(help: "Milliseconds.") var pause = MillisecondsArgument(seconds: 0.05)
    }

    func testHelpShowsDurationDefaultsAsDurations() {
        let help = Command.helpMessage(columns: 200)
        XCTAssertTrue(help.contains("(default: 10.0 s)"), help)
        XCTAssertTrue(help.contains("(default: 50.0 ms)"), help)
        XCTAssertFalse(help.contains("SecondsArgument"), help)
    }
}
