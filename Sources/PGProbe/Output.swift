import Foundation

/// Prints a line and flushes, so report lines reach a pipe as they happen.
func emit(_ line: String) {
    print(line)
    fflush(nil)  // all C streams; `stdout` itself is a global Swift 6 rejects
}

func emitError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
