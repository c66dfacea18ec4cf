#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LatencyStats
import NIOConcurrencyHelpers

/// `--events-csv`: one row per event, buffered by stdio, flushed on close.
public final class EventsCSVWriter: @unchecked Sendable {
    private let lock = NIOLock()
    private var file: UnsafeMutablePointer<FILE>?
    public let path: String

    public init(path: String) throws {
        self.path = path
        guard let file = fopen(path, "w") else {
            throw TransportError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
        }
        self.file = file
        fputs("seq,ivorn,sent_ns,received_ns,latency_s,warmup\n", file)
    }

    public func write(_ event: ReceivedEvent) {
        let sequence = event.sequence.map(String.init) ?? ""
        let line = "\(sequence),\(Self.quote(event.ivorn)),\(event.sentNanos),\(event.receivedNanos),"
            + "\(Fixed.format(Double(event.latencyNanos) / 1e9, decimals: 9)),\(event.inWarmup ? 1 : 0)\n"
        lock.withLock {
            if let file { fputs(line, file) }
        }
    }

    public func close() {
        lock.withLock {
            if let file { fclose(file) }
            file = nil
        }
    }

    static func quote(_ field: String) -> String {
        guard field.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) else { return field }
        return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    deinit { close() }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
