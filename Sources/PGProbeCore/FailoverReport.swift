import Foundation
import CommandLineKit

/// `pgprobe failover --summary-json`: `operations_acked`, `failovers`, `rpo`, `indeterminate`,
/// `validation`. What was not measured is `null` (no RPO without a primary to look at, no
/// validation without `--full-data-validation`).
public struct FailoverSummary: Encodable, Sendable {
    public var duration_s: Double
    public var operations_acked: Int
    /// Failed for certain (an error answer, or no connection to send on): not applied.
    public var operations_failed: Int
    public var operations_per_s: Double?
    /// Share of the run (after warm-up) during which writes were possible, in percent.
    public var availability_percent: Double?
    public var failovers: [FailoverJSON]
    public var rpo: RPOJSON?
    public var indeterminate: IndeterminateCounts
    public var validation: [TableValidation]?

    enum CodingKeys: String, CodingKey {
        case duration_s, operations_acked, operations_failed, operations_per_s, availability_percent, failovers, rpo
        case indeterminate, validation
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(duration_s, forKey: .duration_s)
        try c.encode(operations_acked, forKey: .operations_acked)
        try c.encode(operations_failed, forKey: .operations_failed)
        try c.encode(operations_per_s, forKey: .operations_per_s)
        try c.encode(availability_percent, forKey: .availability_percent)
        try c.encode(failovers, forKey: .failovers)
        try c.encode(rpo, forKey: .rpo)
        try c.encode(indeterminate, forKey: .indeterminate)
        try c.encode(validation, forKey: .validation)
    }

    /// Every worker's data is where it should be (nil: it could not be checked).
    public var noDataLoss: Bool? { rpo.map { $0.lost_total == 0 } }
}

public struct FailoverJSON: Encodable, Sendable, Equatable {
    public var started_at_s: Double
    public var service_available_s: Double?
    public var read_write_s: Double?
    public var first_write_s: Double?
    public var rto_s: Double?
    public var workers: [WorkerJSON]

    public struct WorkerJSON: Encodable, Sendable, Equatable {
        public var worker: Int
        public var last_acked_at_s: Double
        public var first_failed_at_s: Double
        public var service_available_s: Double?
        public var read_write_s: Double?
        public var first_acked_at_s: Double?
        public var rto_s: Double?

        enum CodingKeys: String, CodingKey {
            case worker, last_acked_at_s, first_failed_at_s, service_available_s, read_write_s, first_acked_at_s, rto_s
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(worker, forKey: .worker)
            try c.encode(last_acked_at_s, forKey: .last_acked_at_s)
            try c.encode(first_failed_at_s, forKey: .first_failed_at_s)
            try c.encode(service_available_s, forKey: .service_available_s)
            try c.encode(read_write_s, forKey: .read_write_s)
            try c.encode(first_acked_at_s, forKey: .first_acked_at_s)
            try c.encode(rto_s, forKey: .rto_s)
        }
    }

    enum CodingKeys: String, CodingKey { case started_at_s, service_available_s, read_write_s, first_write_s, rto_s, workers }

    public init(_ failover: Failover) {
        started_at_s = failover.startedAt
        service_available_s = failover.serviceAvailable
        read_write_s = failover.readWrite
        first_write_s = failover.firstWrite
        rto_s = failover.rto
        workers = failover.workers.map { outage in
            WorkerJSON(
                worker: outage.worker, last_acked_at_s: outage.lastAckedAt, first_failed_at_s: outage.firstFailedAt,
                service_available_s: outage.firstConnectedAt.map { $0 - outage.firstFailedAt },
                read_write_s: outage.firstReadWriteAt.map { $0 - outage.firstFailedAt },
                first_acked_at_s: outage.firstAckedAt, rto_s: outage.rto)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(started_at_s, forKey: .started_at_s)
        try c.encode(service_available_s, forKey: .service_available_s)
        try c.encode(read_write_s, forKey: .read_write_s)
        try c.encode(first_write_s, forKey: .first_write_s)
        try c.encode(rto_s, forKey: .rto_s)
        try c.encode(workers, forKey: .workers)
    }
}

public struct RPOJSON: Encodable, Sendable, Equatable {
    public var lost_inserts: Int
    public var lost_updates: Int
    public var lost_deletes: Int
    public var lost_total: Int
    /// How long before the outage that followed it the newest lost commit was acknowledged.
    public var newest_lost_age_ms: Double?
    /// The same for the oldest: the window of acknowledged writes that is gone.
    public var oldest_lost_age_ms: Double?

    enum CodingKeys: String, CodingKey {
        case lost_inserts, lost_updates, lost_deletes, lost_total, newest_lost_age_ms, oldest_lost_age_ms
    }

    public init(_ loss: DataLoss, outageStarts: [Double], endSeconds: Double) {
        lost_inserts = loss.lostInserts
        lost_updates = loss.lostUpdates
        lost_deletes = loss.lostDeletes
        lost_total = loss.total
        (newest_lost_age_ms, oldest_lost_age_ms) = loss.lostAgesMilliseconds(outageStarts: outageStarts, endSeconds: endSeconds)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(lost_inserts, forKey: .lost_inserts)
        try c.encode(lost_updates, forKey: .lost_updates)
        try c.encode(lost_deletes, forKey: .lost_deletes)
        try c.encode(lost_total, forKey: .lost_total)
        try c.encode(newest_lost_age_ms, forKey: .newest_lost_age_ms)
        try c.encode(oldest_lost_age_ms, forKey: .oldest_lost_age_ms)
    }
}

/// `--full-data-validation`, one table: the primary's rows against the probe's model of them.
public struct TableValidation: Encodable, Sendable, Equatable {
    public var table: String
    public var count: Int
    public var expected_count: Int
    public var md5_match: Bool
    public var first_differing_ids: [Int64]

    public init(table: String, count: Int, expected_count: Int, md5_match: Bool, first_differing_ids: [Int64]) {
        self.table = table
        self.count = count
        self.expected_count = expected_count
        self.md5_match = md5_match
        self.first_differing_ids = first_differing_ids
    }
}

extension FailoverSummary {
    /// Availability over `seconds` given the failovers' write gaps (an unrecovered one lasts
    /// to the end).
    public static func availability(failovers: [Failover], endSeconds: Double, measuredSeconds: Double) -> Double? {
        guard measuredSeconds > 0, measuredSeconds.isFinite else { return nil }
        let down = failovers.reduce(0.0) { total, failover in
            total + (failover.rto ?? max(0, endSeconds - (failover.workers.map(\.lastAckedAt).min() ?? failover.startedAt)))
        }
        return max(0, min(100, 100 * (1 - down / measuredSeconds)))
    }

    /// The boxed summary in ptor's spirit.
    public var boxLines: [String] {
        var rows: [(String, String)] = [
            ("Availability", availability_percent.map { Human.fixed($0, decimals: 3) + " %" } ?? "n/a"),
            (
                "Operations",
                "\(Human.grouped(Int64(operations_acked))) acked, \(Human.grouped(Int64(operations_failed))) failed ("
                    + Human.rate(operations_per_s, unit: "operations") + ")"
            ),
            ("Failovers", "\(failovers.count)"),
        ]
        for (number, failover) in failovers.enumerated() {
            let label = failovers.count == 1 ? "" : " #\(number + 1)"
            rows.append(("Outage\(label) at", Human.duration(seconds: failover.started_at_s) + " into the run"))
            rows.append(("Service available\(label)", Human.duration(seconds: failover.service_available_s)))
            rows.append(("Read-write\(label)", Human.duration(seconds: failover.read_write_s)))
            rows.append(
                ("RTO\(label)", failover.rto_s.map { Human.duration(seconds: $0) + " (write gap, worst worker)" } ?? "n/a (writes had not resumed)"))
        }
        if let rpo {
            rows.append(
                (
                    "RPO",
                    "\(rpo.lost_total) lost (inserts \(rpo.lost_inserts), updates \(rpo.lost_updates), deletes \(rpo.lost_deletes))"
                ))
            if let newest = rpo.newest_lost_age_ms, let oldest = rpo.oldest_lost_age_ms {
                rows.append(
                    ("Lost window", "acked " + Human.duration(seconds: oldest / 1000) + " to " + Human.duration(seconds: newest / 1000) + " before the outage"))
            }
        } else {
            rows.append(("RPO", "n/a (no primary to check)"))
        }
        let i = indeterminate
        rows.append(
            ("Indeterminate", "\(i.total) (\(i.applied) applied, \(i.not_applied) not applied" + (i.unresolved > 0 ? ", \(i.unresolved) unresolved)" : ")")))
        if let validation {
            let bad = validation.filter { !$0.md5_match || $0.count != $0.expected_count }
            rows.append(("Validation", bad.isEmpty ? "\(validation.count) tables match" : "\(bad.count) of \(validation.count) tables differ"))
        }
        let verdict: String
        switch noDataLoss {
        case true?: verdict = "NO DATA LOSS"
        case false?: verdict = "DATA LOSS DETECTED"
        case nil: verdict = "DATA LOSS NOT CHECKED"
        }
        let labelWidth = rows.map(\.0.count).max() ?? 0
        let body = rows.map { $0.0.padding(toLength: labelWidth, withPad: " ", startingAt: 0) + "  " + $0.1 } + ["", verdict]
        let width = body.map(\.count).max() ?? 0
        let rule = "+" + String(repeating: "-", count: width + 2) + "+"
        return [rule] + body.map { "| " + $0.padding(toLength: width, withPad: " ", startingAt: 0) + " |" } + [rule]
    }
}
