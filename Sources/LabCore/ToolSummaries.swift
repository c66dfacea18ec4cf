import CommandLineKit
import Foundation

/// The parts of `vtp-sender --summary-json` the lab reads. The lab runs the tools as processes
/// and only reads their files, so it decodes them with these small types instead of linking the
/// engine. Every field a newer or older sender may lack (or write as `null`) is optional.
struct SenderSummaryFile: Decodable, Equatable {
    struct Statistics: Decodable, Equatable {
        var p50: Double?
    }

    var events: Int
    var sent: Int
    var acked: Int
    var nakked: Int?
    var failed: Int?
    /// Events never scheduled because the sender was stopped early (senders that count them).
    var not_sent: Int?
    var max_backlog: Int
    var backlog_end: Int
    /// How long the sender ran: from its start to its summary.
    var duration_s: Double
    var ack_rtt_s: Statistics?
    /// With `--burst`: each burst's drain time.
    var bursts: Bursts?

    struct Bursts: Decodable, Equatable {
        struct Burst: Decodable, Equatable {
            var burst: Int
            var drain_s: Double?
        }
        var per_burst: [Burst]?
    }
}

/// The parts of `vtp-receiver --summary-json` the lab reads.
struct ReceiverSummaryFile: Decodable, Equatable {
    struct Statistics: Decodable, Equatable {
        var count: Int?
        var min: Double?
        var mean: Double?
        var max: Double?
        var p50: Double?
        var p99: Double?
    }

    var received: Int
    var latency_s: Statistics?
}

enum SummaryFileReader {
    enum Failure: Error, Equatable {
        case missing
        case unreadable(String)
    }

    /// The decoded file; `.missing` when the tool wrote none, `.unreadable` with a reason a
    /// user can act on when it is not what the lab expects.
    static func read<T: Decodable>(_ type: T.Type, path: String) -> Result<T, Failure> {
        guard let data = FileManager.default.contents(atPath: path) else { return .failure(.missing) }
        do {
            return .success(try JSONDecoder().decode(type, from: data))
        } catch {
            return .failure(.unreadable(UserMessage.describe(error)))
        }
    }
}
