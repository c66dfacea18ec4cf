import Foundation
import LatencyStats

/// Cuts a stream of single outcomes into report intervals of a fixed length, for tools that
/// have no report lines of their own (pgprobe: one outcome per query or write). Intervals in
/// which nothing happened are not produced. A plain value; `RunRecorder` keeps it on its loop.
public struct IntervalClock: Sendable {
    public let lengthNanos: Int64
    private var current: ReportInterval?

    public init(lengthSeconds: Double = 1) {
        let nanos = (lengthSeconds * 1e9).rounded()
        lengthNanos = nanos.isFinite && nanos >= 1_000_000 && nanos < 1e15 ? Int64(nanos) : 1_000_000_000
    }

    /// Counts one outcome at `atNanos` (wall clock): a latency, or a failure (nil). Returns the
    /// interval it closed, if the outcome falls after it.
    public mutating func record(latencyNanos: Int64?, atNanos: Int64) -> ReportInterval? {
        var closed: ReportInterval?
        if let open = current, atNanos >= open.endNanos {
            closed = open
            current = nil
        }
        if current == nil {
            // Aligned to the length, so intervals of runs side by side line up.
            let start = atNanos - ((atNanos % lengthNanos) + lengthNanos) % lengthNanos
            let (end, overflow) = start.addingReportingOverflow(lengthNanos)
            current = ReportInterval(startNanos: start, endNanos: overflow ? .max : end, events: 0, latency: LatencyRecorder())
        }
        if let latencyNanos {
            current?.events += 1
            current?.latency.record(nanos: latencyNanos)
        } else {
            current?.errors += 1
        }
        return closed
    }

    /// The open interval, cut short at `atNanos` (the end of the run).
    public mutating func finish(atNanos: Int64) -> ReportInterval? {
        guard var open = current else { return nil }
        current = nil
        open.endNanos = min(max(atNanos, open.startNanos), open.endNanos)
        return open
    }

    /// Now, on the wall clock, in nanoseconds since 1970.
    public static func wallNanos() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }
}
