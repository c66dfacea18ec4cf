import Dispatch
import Foundation

enum RunOutcome {
    case finished
    case interrupted
    case failed(any Error)
}

/// Runs `body` until it ends or SIGINT/SIGTERM arrives (then cancels it and returns), so the
/// caller can still print its final summary and write its JSON.
func runUntilInterrupted(_ body: @escaping @Sendable () async throws -> Void) async -> RunOutcome {
    signal(SIGINT, SIG_IGN)
    signal(SIGTERM, SIG_IGN)
    let task = Task { try await body() }
    let sources = [SIGINT, SIGTERM].map { number in
        let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
        source.setEventHandler { task.cancel() }
        source.resume()
        return source
    }
    defer { sources.forEach { $0.cancel() } }
    do {
        try await task.value
        return task.isCancelled ? .interrupted : .finished
    } catch {
        return task.isCancelled ? .interrupted : .failed(error)
    }
}
