import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGINT/SIGTERM handling for every tool: the first signal runs `handler` (stop measuring,
/// print the summary, flush files); a second one exits at once with 130.
public final class TerminationSignals: Sendable {
    private let sources: Mutex<[DispatchSourceSignal]>
    private let queue: DispatchQueue

    public init(queueLabel: String = "vtpbench.signals", handler: @escaping @Sendable (String) -> Void) {
        let queue = DispatchQueue(label: queueLabel)
        let fired = Flag()
        var sources: [DispatchSourceSignal] = []
        for (number, name) in [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                if fired.set() { exit(130) }
                handler(name)
            }
            source.resume()
            sources.append(source)
        }
        self.sources = Mutex(sources)
        self.queue = queue
    }

    public func cancel() {
        sources.withLock { sources in
            for source in sources { source.cancel() }
        }
    }

    /// Suspends until SIGINT or SIGTERM arrives; returns its name.
    public static func wait() async -> String {
        await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
            let once = OnceBox(continuation)
            let signals = TerminationSignals { name in once.resume(name) }
            once.keep(signals)
        }
    }
}

private final class Flag: Sendable {
    private let state = Mutex(false)
    /// Sets the flag; returns whether it was already set.
    func set() -> Bool { state.withLock { was in defer { was = true }; return was } }
}

private final class OnceBox: Sendable {
    private let continuation: Mutex<CheckedContinuation<String, Never>?>
    // Keeps the signal sources alive until the signal arrives.
    private let signals = Mutex<TerminationSignals?>(nil)
    init(_ continuation: CheckedContinuation<String, Never>) { self.continuation = Mutex(continuation) }
    func keep(_ signals: TerminationSignals) { self.signals.withLock { $0 = signals } }
    func resume(_ name: String) {
        continuation.withLock { pending in
            pending?.resume(returning: name)
            pending = nil
        }
    }
}
