import Foundation
import LatencyStats

/// `vtp-sender --summary-json`.
public struct SenderSummary: Codable, Sendable, Equatable {
    public var events: Int
    public var sent: Int
    public var acked: Int
    public var nakked: Int
    public var failed: Int
    public var maxBacklog: Int
    public var backlogEnd: Int
    public var connectionsOpened: Int
    public var durationSeconds: Double
    /// Round trip from the event's write to its ack, on the monotonic clock.
    public var ackRoundTrip: LatencySummary
    public var retries: Int
    public var errors: Int
    public var mode: String
    public var maxConnect: Int
    public var maxConnectScope: String
    /// Receiver clock − sender clock, from the acks' receive/reply times (nil without them).
    public var clockOffset: ClockOffsetSummary?

    enum CodingKeys: String, CodingKey {
        case events, sent, acked, nakked, failed, retries, errors, mode
        case clockOffset = "clock_offset_s"
        case maxBacklog = "max_backlog"
        case backlogEnd = "backlog_end"
        case connectionsOpened = "connections_opened"
        case durationSeconds = "duration_s"
        case ackRoundTrip = "ack_rtt_s"
        case maxConnect = "max_connect"
        case maxConnectScope = "max_connect_scope"
    }
}

public enum SummaryFile {
    public static func write<T: Encodable>(_ value: T, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var data = try encoder.encode(value)
        data.append(0x0A)
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TransportError.cannotWrite(path: path, reason: (error as NSError).localizedDescription)
        }
    }
}

public enum TransportError: Error, CustomStringConvertible {
    case cannotWrite(path: String, reason: String)
    case cannotBind(host: String, port: Int, reason: String)

    public var description: String {
        switch self {
        case .cannotWrite(let path, let reason): return "cannot write \(path): \(reason)"
        case .cannotBind(let host, let port, let reason): return "cannot listen on \(host):\(port): \(reason)"
        }
    }
}

/// Writes report lines and flushes at once: stdout may be a pipe (block-buffered).
public enum LineOutput {
    public static func print(_ line: String) {
        Swift.print(line)
        fflush(nil)  // all streams; naming stdout trips Swift 6 concurrency checks
    }

    public static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}
