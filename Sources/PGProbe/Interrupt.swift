import CommandLineKit

/// Runs `body` until it ends; the first SIGINT/SIGTERM cancels it (a second exits at once), and
/// `body` returns what it measured so far, so the caller still prints its summary and writes
/// its JSON.
func runUntilInterrupted<T: Sendable>(_ body: @escaping @Sendable () async -> T) async -> T {
    let task = Task { await body() }
    let signals = TerminationSignals { _ in task.cancel() }
    defer { signals.cancel() }
    return await task.value
}
