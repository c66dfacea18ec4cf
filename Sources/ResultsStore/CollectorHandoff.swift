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

    /// Runs `vtp-report push --store FROM --to URL [selection…]` and waits for it (it has its own
    /// connect timeout). The selection is run ids and/or `--tag k=v` arguments.
    public static func push(runID: String? = nil, selection: [String] = [], from path: String, to url: CollectorURL)
        async -> Outcome
    {
        guard let executable = reportExecutable() else {
            return Outcome(problem: "cannot upload to \(url.redacted): vtp-report is neither next to this tool nor on PATH")
        }
        var arguments = ["push", "--store", path, "--to", url.text, "--quiet"]
        if let runID { arguments.append(runID) }
        arguments += selection
        return await withCheckedContinuation { continuation in
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            process.terminationHandler = { process in
                let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                let line = text.split(whereSeparator: \.isNewline).last.map(String.init)
                if process.terminationStatus == 0 {
                    continuation.resume(returning: Outcome(problem: nil))
                } else {
                    let reason = line.map { $0.hasPrefix("vtp-report: ") ? String($0.dropFirst(12)) : $0 }
                    continuation.resume(
                        returning: Outcome(problem: reason ?? "vtp-report push exited with status \(process.terminationStatus)"))
                }
            }
            do {
                try process.run()
            } catch {
                continuation.resume(returning: Outcome(problem: "cannot run \(executable): \(error.localizedDescription)"))
            }
        }
    }
}
