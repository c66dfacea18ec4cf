import CDelayLink
import Foundation

/// Turns SIGINT/SIGTERM/SIGHUP into an orderly tear-down: the running children are stopped,
/// the run loop sees `isInterrupted` and unwinds through its clean-up.
public final class Interruption: @unchecked Sendable {
    public static let shared = Interruption()
    private let lock = NSLock()
    private var interrupted = false
    private var children: [ObjectIdentifier: ChildProcess] = [:]
    private var installed = false

    public var isInterrupted: Bool { lock.withLock { interrupted } }

    /// Installs the handlers and a watcher thread (once).
    public func install() {
        let first = lock.withLock {
            defer { installed = true }
            return !installed
        }
        guard first else { return }
        let fd = vtp_termination_pipe()
        guard fd >= 0 else { return }
        let thread = Thread { [self] in
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while true {
                guard poll(&poller, 1, -1) > 0 else { continue }
                let signal = vtp_termination_pipe_read(fd)
                guard signal > 0 else { continue }
                let running = lock.withLock {
                    interrupted = true
                    return Array(children.values)
                }
                FileHandle.standardError.write(Data("vtp-lab: signal \(signal), tearing down\n".utf8))
                for child in running { child.signal(SIGTERM) }
            }
        }
        thread.name = "signals"
        thread.start()
    }

    func track(_ child: ChildProcess) {
        let stopNow = lock.withLock {
            children[ObjectIdentifier(child)] = child
            return interrupted
        }
        if stopNow { child.signal(SIGTERM) }
    }

    func untrack(_ child: ChildProcess) { _ = lock.withLock { children.removeValue(forKey: ObjectIdentifier(child)) } }
}
