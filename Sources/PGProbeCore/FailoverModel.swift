/// `pgprobe failover`'s pure parts: the operation mix, each worker's model of its table, the
/// ledger of acknowledged operations and what is lost from it. No connections here: the
/// runtime (FailoverProbe) feeds these values and performs what they say.

public enum OperationKind: String, Sendable, Codable, CaseIterable {
    case insert, update, delete
}

/// Insert/update/delete percentages (they sum to 100).
public struct OperationMix: Sendable, Equatable {
    public var insertPercent: Int
    public var updatePercent: Int
    public var deletePercent: Int

    public init(insert: Int, update: Int, delete: Int) throws(OperationMixError) {
        for (flag, value) in [("--insert-percent", insert), ("--update-percent", update), ("--delete-percent", delete)]
        where !(0...100).contains(value) {
            throw OperationMixError("\(flag) must be between 0 and 100 (got \(value))")
        }
        let sum = insert + update + delete  // each is 0...100: no overflow
        guard sum == 100 else {
            throw OperationMixError(
                "--insert-percent, --update-percent and --delete-percent must sum to 100 (got \(insert) + \(update) + \(delete) = \(sum))")
        }
        insertPercent = insert
        updatePercent = update
        deletePercent = delete
    }

    /// The kind for a roll in 0..<100.
    public func kind(roll: Int) -> OperationKind {
        if roll < insertPercent { return .insert }
        if roll < insertPercent + updatePercent { return .update }
        return .delete
    }
}

public struct OperationMixError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One operation a worker is about to run: `seq` numbers the worker's operations and is the
/// version an insert or update writes, so the row itself says which operation touched it last.
public struct PlannedOperation: Sendable, Equatable {
    public var seq: Int64
    public var kind: OperationKind
    public var rowID: Int64

    public init(seq: Int64, kind: OperationKind, rowID: Int64) {
        self.seq = seq
        self.kind = kind
        self.rowID = rowID
    }
}

/// What became of an operation.
public enum OperationStatus: String, Sendable, Codable {
    /// The server acknowledged it and it changed its row.
    case acked
    /// Acknowledged, but the update or delete found no row (an earlier failover lost it).
    case missing
    /// The statement was sent and no answer came: applied or not, only the new primary knows.
    case indeterminate
}

public enum Resolution: String, Sendable, Codable {
    case applied
    case notApplied = "not_applied"
}

/// One line of the ledger (also a row of the repo database's table).
public struct LedgerEntry: Sendable, Equatable {
    public var worker: Int
    public var operation: PlannedOperation
    public var status: OperationStatus
    public var resolution: Resolution?
    /// Seconds since the run started: when the acknowledgement arrived (when the statement was
    /// sent, for an indeterminate one).
    public var atSeconds: Double

    public init(worker: Int, operation: PlannedOperation, status: OperationStatus, resolution: Resolution? = nil, atSeconds: Double) {
        self.worker = worker
        self.operation = operation
        self.status = status
        self.resolution = resolution
        self.atSeconds = atSeconds
    }

    /// Its effect should be on the primary (acknowledged, or indeterminate and found applied).
    var applied: Bool { status == .acked || (status == .indeterminate && resolution == .applied) }
}

/// One worker's view of its table: which rows exist and at which version. Owned by the
/// worker's task; it plans the next operation and learns from each outcome.
public struct WorkerModel: Sendable {
    public let worker: Int
    public private(set) var nextSeq: Int64 = 1
    private var nextRowID: Int64 = 1
    /// Row id → version (the seq of the last operation that wrote it).
    public private(set) var rows: [Int64: Int64] = [:]
    // Live ids in an array for a uniform random pick, with each id's index for O(1) removal.
    private var ids: [Int64] = []
    private var index: [Int64: Int] = [:]

    public init(worker: Int) { self.worker = worker }

    /// The next operation: its kind drawn from the mix, an update or delete on a random
    /// existing row (an insert when there is none), an insert on a fresh id.
    public mutating func plan<R: RandomNumberGenerator>(
        mix: OperationMix, insertOnly: Bool = false, using rng: inout R
    ) -> PlannedOperation {
        var kind = insertOnly ? .insert : mix.kind(roll: Int.random(in: 0..<100, using: &rng))
        var rowID: Int64
        if kind != .insert, let pick = ids.randomElement(using: &rng) {
            rowID = pick
        } else {
            kind = .insert
            rowID = nextRowID
            nextRowID += 1
        }
        defer { nextSeq += 1 }
        return PlannedOperation(seq: nextSeq, kind: kind, rowID: rowID)
    }

    /// The server acknowledged `operation`; `rowsAffected` is what it reported.
    /// Returns the ledger status (an update or delete that found no row is `missing`).
    public mutating func acknowledged(_ operation: PlannedOperation, rowsAffected: Int) -> OperationStatus {
        if operation.kind != .insert, rowsAffected == 0 {
            remove(operation.rowID)
            return .missing
        }
        apply(operation)
        return .acked
    }

    /// Whether an indeterminate operation took effect, from its row as the primary has it now
    /// (`version` nil: no such row). Updates the model to what is there.
    public mutating func resolve(_ operation: PlannedOperation, version: Int64?) -> Resolution {
        let applied: Bool
        switch operation.kind {
        case .insert, .update: applied = version == operation.seq
        case .delete: applied = version == nil
        }
        if let version { set(operation.rowID, version: version) } else { remove(operation.rowID) }
        return applied ? .applied : .notApplied
    }

    private mutating func apply(_ operation: PlannedOperation) {
        switch operation.kind {
        case .insert, .update: set(operation.rowID, version: operation.seq)
        case .delete: remove(operation.rowID)
        }
    }

    private mutating func set(_ id: Int64, version: Int64) {
        if rows.updateValue(version, forKey: id) == nil {
            index[id] = ids.count
            ids.append(id)
        }
    }

    private mutating func remove(_ id: Int64) {
        guard rows.removeValue(forKey: id) != nil, let position = index.removeValue(forKey: id) else { return }
        let last = ids.removeLast()
        if position < ids.count {
            ids[position] = last
            index[last] = position
        }
    }
}

/// Acknowledged operations whose effect the primary no longer has.
///
/// Rows are written by one worker, in order, each insert on a fresh id, each write stamping
/// its seq as the row's version. So a row at version v has every operation up to v and none
/// after: the acknowledged operations on it with a larger seq are lost (a lost delete leaves
/// the row there). A missing row was deleted (an applied delete exists) or its insert and the
/// updates after it are lost. Indeterminate operations are never counted as lost.
public struct DataLoss: Sendable, Equatable {
    public var lostInserts = 0
    public var lostUpdates = 0
    public var lostDeletes = 0
    public var lost: [LedgerEntry] = []

    public init() {}

    public var total: Int { lostInserts + lostUpdates + lostDeletes }

    /// `entries`: one worker's ledger; `actual`: row id → version on the primary now.
    public mutating func add(entries: [LedgerEntry], actual: [Int64: Int64]) {
        let byRow = Dictionary(grouping: entries, by: \.operation.rowID)
        for (rowID, rowEntries) in byRow {
            let counted = rowEntries.filter { $0.status == .acked }
            let lostHere: [LedgerEntry]
            if let version = actual[rowID] {
                lostHere = counted.filter { $0.operation.seq > version }
            } else if rowEntries.contains(where: { $0.applied && $0.operation.kind == .delete }) {
                lostHere = []
            } else {
                lostHere = counted.filter { $0.operation.kind != .delete }
            }
            for entry in lostHere {
                switch entry.operation.kind {
                case .insert: lostInserts += 1
                case .update: lostUpdates += 1
                case .delete: lostDeletes += 1
                }
            }
            lost += lostHere
        }
        lost.sort { ($0.atSeconds, $0.worker, $0.operation.seq) < ($1.atSeconds, $1.worker, $1.operation.seq) }
    }

    /// How long before the outage that followed it the newest / oldest lost commit was
    /// acknowledged (ms); the run's end stands in when no outage followed. nil: nothing lost.
    public func lostAgesMilliseconds(outageStarts: [Double], endSeconds: Double) -> (newest: Double?, oldest: Double?) {
        func age(_ entry: LedgerEntry) -> Double {
            let next = outageStarts.filter { $0 >= entry.atSeconds }.min() ?? max(endSeconds, entry.atSeconds)
            return (next - entry.atSeconds) * 1000
        }
        guard let newest = lost.last, let oldestAge = lost.map(age).max() else { return (nil, nil) }
        return (age(newest), oldestAge)
    }
}

/// Indeterminate operations and how they resolved.
public struct IndeterminateCounts: Sendable, Equatable, Codable {
    public var total = 0
    public var applied = 0
    public var not_applied = 0
    /// Still unknown at the end (no primary could be reached to look).
    public var unresolved = 0

    public init() {}

    public init(entries: [LedgerEntry]) {
        for entry in entries where entry.status == .indeterminate {
            total += 1
            switch entry.resolution {
            case .applied: applied += 1
            case .notApplied: not_applied += 1
            case nil: unresolved += 1
            }
        }
    }
}

/// The row text for (id, version): deterministic, so the expected table can be rebuilt from
/// the ledger and compared byte for byte (`--full-data-validation`).
public enum FailoverRows {
    public static let payloadBytes = 64

    public static func payload(id: Int64, version: Int64) -> String {
        let base = "row \(id) v\(version) "
        return base.count >= payloadBytes ? base : base + String(repeating: ".", count: payloadBytes - base.count)
    }

    /// What the md5 is taken over, the same text the server aggregates: `id:version:t`, rows
    /// ordered by id, joined with commas.
    public static func validationText(_ rows: [Int64: Int64]) -> String {
        rows.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value):\(payload(id: $0.key, version: $0.value))" }
            .joined(separator: ",")
    }

    /// The first ids (up to `limit`) whose row differs between the model and the table.
    public static func differingIDs(expected: [Int64: Int64], actual: [Int64: Int64], limit: Int = 10) -> [Int64] {
        let ids = Set(expected.keys).union(actual.keys).filter { expected[$0] != actual[$0] }
        return Array(ids.sorted().prefix(limit))
    }
}
