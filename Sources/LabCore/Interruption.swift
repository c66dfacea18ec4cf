import CommandLineKit
import Foundation
import Synchronization

/// Turns the first SIGINT/SIGTERM (the kit's `TerminationSignals`; a second one exits at once)
/// into an orderly stop: the running children get SIGTERM and write their summaries, the run
/// loop sees `isInterrupted`, keeps the partial row and unwinds through its clean-up.
public final class Interruption: Sendable {
    public static let shared = Interruption()

    private struct State {
        var interrupted = false
        var children: [ObjectIdentifier: ChildProcess] = [:]
        var signals: TerminationSignals?
    }

    private let state = Mutex(State())

    public var isInterrupted: Bool { state.withLock { $0.interrupted } }

    /// Starts watching the signals (once); `log` gets one line when one arrives.
    public func install(log: @escaping @Sendable (String) -> Void) {
        state.withLock { state in
            guard state.signals == nil else { return }
            state.signals = TerminationSignals(queueLabel: "vtp-lab.signals") { [self] name in
                log("vtp-lab: \(name): stopping the tools; the rows so far follow (a second \(name) quits at once)")
                interrupt()
            }
        }
    }

    /// Marks the run interrupted and asks every running child to stop.
    func interrupt() {
        let running = state.withLock { state in
            state.interrupted = true
            return Array(state.children.values)
        }
        for child in running { child.signal(SIGTERM) }
    }

    func track(_ child: ChildProcess) {
        let stopNow = state.withLock { state in
            state.children[ObjectIdentifier(child)] = child
            return state.interrupted
        }
        if stopNow { child.signal(SIGTERM) }
    }

    func untrack(_ child: ChildProcess) { _ = state.withLock { $0.children.removeValue(forKey: ObjectIdentifier(child)) } }
}
