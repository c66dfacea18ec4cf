import Foundation
import CommandLineKit
import LiveMetrics
import PGProbeCore

/// Prints a line and flushes, so report lines reach a pipe as they happen.
func emit(_ line: String) {
    print(line)
    fflush(nil)  // all C streams; `stdout` itself is a global Swift 6 rejects
}

func emitError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// `--metrics`: serves `live` (nil without the flag); a port in use is one line and exit 2.
func startMetrics(_ address: MetricsAddress?, _ live: QueryMetrics, tool: String) async throws -> MetricsServer? {
    guard let address else { return nil }
    do {
        let server = try await MetricsServer.start(
            at: address, exporter: MetricsExporter(declaring: QueryMetrics.exported, on: live.loop) { live.snapshot() })
        emit("\(tool): metrics at \(server.url)")
        return server
    } catch {
        emitError("\(tool): \(error)")
        throw ExitStatus.runFailed
    }
}
