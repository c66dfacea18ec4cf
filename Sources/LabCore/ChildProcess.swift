import Foundation

/// A tool started inside a network namespace (`ip netns exec NS TOOL …`; ip execs the tool, so
/// the pid is the tool's own and signals reach it), its output going to a log file.
/// Immutable after init; `Process` is Sendable, so any thread may poll or signal it.
final class ChildProcess: Sendable {
    let name: String
    let logPath: String
    private let process = Process()

    init(name: String, namespace: String, arguments: [String], logPath: String, workDirectory: URL) throws(LabError) {
        self.name = name
        self.logPath = logPath
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
            let log = FileHandle(forWritingAtPath: logPath)
        else { throw .setupFailed("cannot create log file \(logPath)") }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // vtp-lab ignores SIGINT/SIGTERM (it watches them with TerminationSignals) and a child
        // inherits ignored signals across exec: without the reset, tcpdump would not stop on SIGTERM.
        process.arguments = ["--default-signal=INT,TERM", "ip", "netns", "exec", namespace] + arguments
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        // No config.json of the user's current directory sneaks in: every setting is a flag.
        process.currentDirectoryURL = workDirectory
        do { try process.run() } catch {
            throw .setupFailed("cannot start \(name): \(error.localizedDescription)")
        }
        try? log.close()
    }

    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    var isRunning: Bool { process.isRunning }
    var exitStatus: Int32? { process.isRunning ? nil : process.terminationStatus }

    /// The last line of the log that starts with `prefix` (the tools' report lines).
    func lastLine(startingWith prefix: String) -> String? {
        output.split(separator: "\n").last { $0.hasPrefix(prefix) }.map(String.init)
    }

    /// Waits until the log contains `text`; false on timeout or if the process exited first.
    func waitForOutput(containing text: String, timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if output.contains(text) { return true }
            if !process.isRunning { return output.contains(text) }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return false
    }

    /// Waits for exit; false on timeout.
    func waitForExit(timeout: Double) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
        return !process.isRunning
    }

    func signal(_ number: Int32) {
        if process.isRunning { kill(process.processIdentifier, number) }
    }

    /// SIGTERM (the tools write their summaries on it), then SIGKILL if it hangs.
    func stop(timeout: Double = 10) {
        signal(SIGTERM)
        if !waitForExit(timeout: timeout) {
            signal(SIGKILL)
            _ = waitForExit(timeout: 5)
        }
    }
}
