import CDelayLink
import Foundation

/// A delay link forwarding on its own thread: for tools (vtp-lab) and tests that run the link
/// in-process. `stop()` ends forwarding, closes the devices and deletes the namespaces.
public final class RunningLink: @unchecked Sendable {
    public let link: EmulatedLink
    private let forwarder: DelayLinkForwarder
    private let stopPipe: [Int32]
    private let finished = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var report: LinkReport?
    private var failure: DelayLinkError?
    private var stopped = false

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
            lock.withLock {
                switch outcome {
                case .success(let value): report = value
                case .failure(let error): failure = error
                }
            }
            finished.signal()
        }
        thread.name = "delay-link"
        thread.start()
    }

    /// Stops forwarding and removes everything; idempotent. Returns the link's report.
    @discardableResult
    public func stop() -> LinkReport? {
        let first = lock.withLock {
            defer { stopped = true }
            return !stopped
        }
        if first {
            var byte: UInt8 = 1
            _ = write(stopPipe[1], &byte, 1)
            finished.wait()
            close(stopPipe[0])
            close(stopPipe[1])
            link.tearDown()
        }
        return lock.withLock { report }
    }

    /// Why forwarding stopped early, if it did.
    public var error: DelayLinkError? { lock.withLock { failure } }
}
