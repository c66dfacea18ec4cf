import CommandLineKit
import Foundation
import LiveMetrics
import PGProbeCore
import ResultsStore

/// Prints a line at once, so report lines reach a pipe as they happen; a stdout that cannot be
/// written (a full disk) is said once on stderr and the run goes on.
func emit(_ line: String) {
    StandardStreams.out(line)
}

func emitError(_ line: String) {
    StandardStreams.err(line)
}

/// Starts recording a pgprobe run (`--store` & co; nil with `--no-store`); waits until the store
/// is open so that a line about it comes before any measurement.
func startRecording(_ store: StoreOptions, command: String, metadata: RunMetadata, settings: [String: Any]) async
    -> RunRecorder?
{
    let recorder = store.recorder(
        tool: "pgprobe", metadata: metadata, config: settings.merging(["command": command]) { old, _ in old },
        tags: ["command": command], warn: { emitError("pgprobe \(command): \($0)") })
    _ = try? await recorder?.ready.get()
    return recorder
}

/// Ends the recording with the summary the JSON file gets (or an error), and says where it is.
func finishRecording<T: Encodable>(
    _ recorder: RunRecorder?, command: String, summary: T?, error: String? = nil, metadata: RunMetadata,
    settings: [String: Any], extra: [String: Any] = [:], quiet: Bool = false
) async {
    guard let recorder else { return }
    var object = summary.flatMap { try? SummaryJSON.object($0, metadata: metadata, settings: settings) } ?? [:]
    object.merge(extra) { _, new in new }
    if let error { object["error"] = error }
    let outcome = try? await recorder.finish(summary: object, config: settings).get()
    outcome?.print(tool: "pgprobe \(command)", quiet: quiet)
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
