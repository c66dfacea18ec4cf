#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CommandLineKit
import Dispatch
import LatencyStats
import NIOCore
import Synchronization

/// Where connections hand their CSV rows; the future completes once they are written.
protocol EventRowWriter: Sendable {
    func write(_ rows: String, on loop: EventLoop) -> EventLoopFuture<EventsCSVWriter.Outcome>
}

/// `--events-csv`: one row per event, written in one place, a serial queue.
///
/// Connections hand it a read's worth of rows at a time and send that read's acks only once
/// `write` has completed: the rows are then in the kernel (write(2)), so an acked event is in
/// the file even if the process is killed right after.
public final class EventsCSVWriter: EventRowWriter {
    public static let header = "seq,ivorn,sent_ns,received_ns,latency_s,warmup\n"

    public enum Outcome: Sendable, Equatable {
        /// Written (or a write failed earlier and was reported once: the measurement goes on).
        case written
        /// Closed: the receiver is stopping, nothing more is written, so nothing more is acked.
        case closed
    }

    private struct State {
        var descriptor: CInt?
        var failed = false
    }

    public let path: String
    private let queue = DispatchQueue(label: "vtpbench.events-csv")
    // Touched only on `queue`; the mutex is never contended and makes that checkable.
    private let state: Mutex<State>
    private let reportFailure: @Sendable (String) -> Void

    /// Creates (truncates) the file and writes the header.
    public init(path: String, reportFailure: @escaping @Sendable (String) -> Void) throws {
        self.path = path
        self.reportFailure = reportFailure
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else {
            throw TransportError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
        if let reason = Self.writeAll(Self.header, to: descriptor) {
            closeDescriptor(descriptor)
            throw TransportError.cannotWrite(path: path, reason: reason)
        }
        state = Mutex(State(descriptor: descriptor))
    }

    /// Appends one event's row to `rows`.
    public static func appendRow(_ event: ReceivedEvent, to rows: inout String) {
        if let sequence = event.sequence { rows += String(sequence) }
        rows += ","
        rows += CSV.field(event.ivorn)
        rows += ",\(event.sentNanos),\(event.receivedNanos),"
        rows += Fixed.format(Double(event.latencyNanos) / 1e9, decimals: 9)
        rows += event.inWarmup ? ",1\n" : ",0\n"
    }

    /// Writes `rows` (whole lines) after everything handed over before; completes on `loop`.
    public func write(_ rows: String, on loop: EventLoop) -> EventLoopFuture<Outcome> {
        let promise = loop.makePromise(of: Outcome.self)
        queue.async {
            let (outcome, failure) = self.state.withLock { state -> (Outcome, String?) in
                guard let descriptor = state.descriptor else { return (.closed, nil) }
                guard !state.failed, !rows.isEmpty else { return (.written, nil) }
                guard let reason = Self.writeAll(rows, to: descriptor) else { return (.written, nil) }
                state.failed = true
                return (.written, reason)
            }
            if let failure { self.reportFailure("--events-csv \(self.path): \(failure); rows from now on are lost") }
            promise.succeed(outcome)
        }
        return promise.futureResult
    }

    /// Closes the file after everything handed over before.
    public func close(on loop: EventLoop) -> EventLoopFuture<Void> {
        let promise = loop.makePromise(of: Void.self)
        queue.async {
            self.state.withLock { state in
                if let descriptor = state.descriptor { closeDescriptor(descriptor) }
                state.descriptor = nil
            }
            promise.succeed()
        }
        return promise.futureResult
    }

    deinit {
        state.withLock { state in
            if let descriptor = state.descriptor { closeDescriptor(descriptor) }
        }
    }

    /// nil when every byte was written, else why not.
    private static func writeAll(_ text: String, to descriptor: CInt) -> String? {
        StandardStreams.writeAll(text, to: descriptor)
    }
}

// At file scope: inside the class, `close` would name its own method.
private func closeDescriptor(_ descriptor: CInt) { _ = close(descriptor) }
