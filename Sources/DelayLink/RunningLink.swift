import CDelayLink
import Foundation
import Synchronization

/// A delay link forwarding on its own thread: for tools (vtp-lab) and tests that run the link
/// in-process. `stop()` ends forwarding, closes the devices and deletes the namespaces.
///
/// Why `@unchecked Sendable` is safe here: the mutable results (`outcome`, `stopped`) live in a
/// `Mutex`. `forwarder` is used only by the forwarding thread, which receives it at `start()`
/// (a happens-before edge) and nobody else touches it. `link`'s devices and ends are
/// immutable; its one mutable part, the namespaces to delete, is changed only by `tearDown()`,
/// which `stop()` runs once (guarded by `stopped`), after `finished.wait()` has seen the thread end.
public final class RunningLink: @unchecked Sendable {
    public let link: EmulatedLink
    private let forwarder: DelayLinkForwarder
    private let stopPipe: [Int32]
    private let finished = DispatchSemaphore(value: 0)
    private let state = Mutex<(outcome: Result<LinkReport, DelayLinkError>?, stopped: Bool)>((nil, false))

    public init(endA: LinkEnd, endB: LinkEnd, settings: ForwarderSettings) throws(DelayLinkError) {
        try settings.aToB.validate(direction: "A→B")
        try settings.bToA.validate(direction: "B→A")
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw .system(call: "pipe", errno: errno, hint: "") }
        stopPipe = fds
        do {
            link = try EmulatedLink(endA: endA, endB: endB, createNamespaces: true)
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        forwarder = DelayLinkForwarder(a: link.a, b: link.b, settings: settings)
        let thread = Thread { [self] in
            let outcome: Result<LinkReport, DelayLinkError>
            do throws(DelayLinkError) {
                outcome = .success(try forwarder.run(stopFd: stopPipe[0], log: { _ in }))
            } catch {
                outcome = .failure(error)
            }
            state.withLock { $0.outcome = outcome }
            finished.signal()
        }
        thread.name = "delay-link"
        thread.start()
    }

    /// Stops forwarding and removes everything; idempotent. Returns the link's report.
    @discardableResult
    public func stop() -> LinkReport? {
        let first = state.withLock { state in
            defer { state.stopped = true }
            return !state.stopped
        }
        if first {
            var byte: UInt8 = 1
            _ = write(stopPipe[1], &byte, 1)
            finished.wait()
            close(stopPipe[0])
            close(stopPipe[1])
            link.tearDown()
        }
        return state.withLock { state in
            if case .success(let report)? = state.outcome { return report }
            return nil
        }
    }

    /// Why forwarding stopped early, if it did.
    public var error: DelayLinkError? {
        state.withLock { state in
            if case .failure(let error)? = state.outcome { return error }
            return nil
        }
    }
}
