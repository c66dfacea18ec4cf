import CommandLineKit
import Foundation

/// Uploads a run from a local SQLite store to a PostgreSQL collector by running
/// `vtp-report push` — the same code a user runs later for runs kept locally. The tools that
/// measure thus never link postgres-nio (their build stays light), and a run recorded inside a
/// network namespace is uploaded from wherever `vtp-report` can reach the collector.
public enum CollectorHandoff {
    public struct Outcome: Sendable, Equatable {
        /// nil: uploaded.
        public var problem: String?
    }

    /// `VTPBENCH_REPORT` if set (tests), else `vtp-report` next to this executable, else on PATH.
    public static func reportExecutable(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let path = environment["VTPBENCH_REPORT"], !path.isEmpty { return path }
        let here = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let beside = here.appendingPathComponent("vtp-report").path
        if FileManager.default.isExecutableFile(atPath: beside) { return beside }
        for directory in (environment["PATH"] ?? "").split(separator: ":") {
            let candidate = "\(directory)/vtp-report"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs `vtp-report push --store FROM --to URL [run id] [selection…]` and waits for it (it has
    /// its own connect timeout), off the caller's thread.
    public static func push(runID: String? = nil, selection: [String] = [], from path: String, to url: CollectorURL)
        async -> Outcome
    {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: pushAndWait(runID: runID, selection: selection, from: path, to: url))
            }
        }
    }

    /// The same, blocking (for synchronous commands such as vtp-lab).
    public static func pushAndWait(runID: String? = nil, selection: [String] = [], from path: String, to url: CollectorURL)
        -> Outcome
    {
        guard let executable = reportExecutable() else {
            return Outcome(problem: "cannot upload to \(url.redacted): vtp-report is neither next to this tool nor on PATH")
        }
        var arguments = ["push", "--store", path, "--to", url.text, "--quiet"]
        if let runID { arguments.append(runID) }
        arguments += selection
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            return Outcome(problem: "cannot run \(executable): \(UserMessage.describe(error))")
        }
        // Read before waiting: a full pipe would otherwise block the child.
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus != 0 else { return Outcome(problem: nil) }
        let line = text.split(whereSeparator: \.isNewline).last.map(String.init)
        let reason = line.map { $0.hasPrefix("vtp-report: ") ? String($0.dropFirst(12)) : $0 }
        return Outcome(problem: reason ?? "vtp-report push exited with status \(process.terminationStatus)")
    }
}
