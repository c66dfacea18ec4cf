/// RTO bookkeeping from timestamps alone (seconds since the run started). Each worker reports
/// what happened to it; an outage is a worker's run of failed writes between two acknowledged
/// ones; outages of different workers that overlap form one failover.
public enum WorkerEvent: Sendable, Equatable {
    /// A write was acknowledged.
    case acked(at: Double)
    /// A write (or the connection it needed) failed: error, timeout, no answer.
    case failed(at: Double)
    /// A new connection logged in; `readWrite`: `pg_is_in_recovery()` was false.
    case connected(at: Double, readWrite: Bool)
}

/// One worker's outage.
public struct WorkerOutage: Sendable, Equatable {
    public var worker: Int
    /// Its last acknowledged write before (the run's start when there was none).
    public var lastAckedAt: Double
    public var firstFailedAt: Double
    public var firstConnectedAt: Double?
    public var firstReadWriteAt: Double?
    /// nil: writes had not resumed when the run ended.
    public var firstAckedAt: Double?

    /// The write gap: last acknowledged write before → first acknowledged write after.
    public var rto: Double? { firstAckedAt.map { $0 - lastAckedAt } }
}

/// Per worker: the outage in progress and those finished.
public struct FailoverTimeline: Sendable {
    private var lastAcked: [Int: Double] = [:]
    private var open: [Int: WorkerOutage] = [:]
    public private(set) var closed: [WorkerOutage] = []

    public init() {}

    public mutating func record(worker: Int, _ event: WorkerEvent) {
        switch event {
        case .acked(let at):
            if var outage = open.removeValue(forKey: worker) {
                outage.firstAckedAt = at
                closed.append(outage)
            }
            lastAcked[worker] = at
        case .failed(let at):
            if open[worker] == nil {
                open[worker] = WorkerOutage(worker: worker, lastAckedAt: lastAcked[worker] ?? 0, firstFailedAt: at)
            }
        case .connected(let at, let readWrite):
            guard var outage = open[worker] else { return }
            if outage.firstConnectedAt == nil { outage.firstConnectedAt = at }
            if readWrite, outage.firstReadWriteAt == nil { outage.firstReadWriteAt = at }
            open[worker] = outage
        }
    }

    /// Workers in an outage right now.
    public var workersDown: Int { open.count }

    /// Finished outages and those still open, grouped into failovers in time order.
    public var failovers: [Failover] {
        let outages = (closed + open.values).sorted { ($0.firstFailedAt, $0.worker) < ($1.firstFailedAt, $1.worker) }
        var groups: [[WorkerOutage]] = []
        var groupEnd = -Double.infinity
        for outage in outages {
            // Overlapping outages are one event; an unrecovered one reaches to the end.
            let end = outage.firstAckedAt ?? .infinity
            if let last = groups.indices.last, outage.firstFailedAt <= groupEnd {
                groups[last].append(outage)
                groupEnd = max(groupEnd, end)
            } else {
                groups.append([outage])
                groupEnd = end
            }
        }
        return groups.map(Failover.init)
    }
}

/// One failover as every worker saw it. Times since the run started; `serviceAvailable` and
/// `readWrite` count from `startedAt` (the first failed write: ptor's clock); `rto` is the
/// worst worker's write gap (nil while a worker has not written again).
public struct Failover: Sendable, Equatable {
    public var workers: [WorkerOutage]
    public var startedAt: Double
    public var serviceAvailable: Double?
    public var readWrite: Double?
    public var rto: Double?
    /// The first acknowledged write after, any worker, from `startedAt`.
    public var firstWrite: Double?

    init(_ outages: [WorkerOutage]) {
        workers = outages.sorted { $0.worker < $1.worker }
        startedAt = outages.map(\.firstFailedAt).min() ?? 0
        let start = startedAt
        serviceAvailable = outages.compactMap(\.firstConnectedAt).min().map { $0 - start }
        readWrite = outages.compactMap(\.firstReadWriteAt).min().map { $0 - start }
        firstWrite = outages.compactMap(\.firstAckedAt).min().map { $0 - start }
        let gaps = outages.map(\.rto)
        rto = gaps.contains(where: { $0 == nil }) ? nil : gaps.compactMap { $0 }.max()
    }
}
