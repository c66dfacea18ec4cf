import Foundation

/// The tools one lab case started: each tracked for Ctrl-C, and all stopped (newest first) when
/// the case ends, however it ends.
final class LabChildren {
    private(set) var all: [ChildProcess] = []
    private let logPath: (String) -> String
    private let workDirectory: URL

    /// `logPath`: where a child's output goes, from its name.
    init(logPath: @escaping (String) -> String, workDirectory: URL) {
        self.logPath = logPath
        self.workDirectory = workDirectory
    }

    func start(_ name: String, namespace: String, _ arguments: [String]) throws(LabError) -> ChildProcess {
        let child = try ChildProcess(
            name: name, namespace: namespace, arguments: arguments, logPath: logPath(name), workDirectory: workDirectory)
        all.append(child)
        Interruption.shared.track(child)
        return child
    }

    /// Stops every child; one stopped by SIGSTOP is continued first, so that it can end.
    func stopAll() {
        for child in all.reversed() {
            child.signal(SIGCONT)
            child.stop()
            Interruption.shared.untrack(child)
        }
    }
}
