import CommandLineKit
import Foundation

/// Prints a line at once, so report lines reach a pipe as they happen; a stdout that cannot be
/// written (a full disk) is said once on stderr and the run goes on.
func emit(_ line: String) {
    StandardStreams.out(line)
}

func emitError(_ line: String) {
    StandardStreams.err(line)
}
