import CommandLineKit
import Foundation
import ResultsStore

/// `vtp-report export`: the run's merged histogram as `.hgrm`, its intervals as CSV.
public enum ReportExport {
    /// HdrHistogram's percentile distribution (what wrk2 -L prints), values in milliseconds.
    public static func hgrm(_ digest: RunDigest) -> String {
        digest.histogram.percentileDistribution()
    }

    public static let csvHeader = [
        "seq", "started_at", "duration_s", "events", "count", "min_s", "mean_s", "max_s", "p50_s", "p90_s", "p99_s",
        "p999_s", "naks", "errors", "duplicates", "missing", "backlog", "open_connections",
    ]

    public static func csv(_ digest: RunDigest) -> String {
        func real(_ value: Double?) -> String { value.map { String($0) } ?? "" }
        func int(_ value: Int?) -> String { value.map(String.init) ?? "" }
        var lines = [CSV.row(csvHeader)]
        for i in digest.intervals {
            lines.append(
                CSV.row([
                    String(i.seq), StoreTime.string(i.startedAt), String(i.durationSeconds), String(i.events), String(i.count),
                    real(i.min), real(i.mean), real(i.max), real(i.p50), real(i.p90), real(i.p99), real(i.p999),
                    String(i.naks), String(i.errors), int(i.duplicates), int(i.missing), int(i.backlog),
                    int(i.openConnections),
                ]))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
