import BenchConfig

/// Why a target was marked failed, as the summary's `failovers[].cause` spells it.
public enum FailoverCause: String, Codable, Sendable, CaseIterable {
    case refused
    /// Closed or reset by the peer with events unacked.
    case reset
    case ackTimeout = "ack_timeout"
    case connectTimeout = "connect_timeout"
    /// Anything else: unknown host, unreachable network, an unparseable reply.
    case error

    public init(_ failure: ConnectionFailure) {
        switch failure {
        case .refused: self = .refused
        case .closedBeforeAck: self = .reset
        case .ackTimeout: self = .ackTimeout
        case .connectTimeout: self = .connectTimeout
        case .unknownHost, .connectError, .badReply, .ioError: self = .error
        }
    }
}

/// The sender's choice among several targets, and its bookkeeping: which target is healthy,
/// when a failed one may be tried again (geometric back-off per target), when to move on
/// (`ordered`) or come back (`failback`), which unacked events were handed to the next target,
/// and the recovery time of each failover. A pure value type: every input returns the actions
/// to perform, so it is tested without sockets. Times are monotonic nanoseconds.
public struct FailoverPolicy: Sendable {
    public enum Action: Hashable, Sendable {
        var isFailover: Bool {
            if case .failover = self { return true }
            return false
        }

        /// Ordered: connect to `to` from now on (not before `notBeforeNanos`, when every target
        /// is backing off). Close `from`'s connections and resend their unacked events; report
        /// those with `requeued(_:)`.
        case failover(from: Int, to: Int, notBeforeNanos: Int64?)
        /// `--failback`: the earlier target `to` accepts connections again; new work goes there.
        case failback(from: Int, to: Int)
        /// `--failback`: open a bare connection to this earlier target and report `probed`.
        case probe(Int)
        /// Call `wakeUp(now:)` at this monotonic time.
        case wakeUp(atNanos: Int64)
    }

    struct Health: Equatable, Sendable {
        /// Marked failed and not acked since.
        var failed = false
        /// Failures without an ack in between: the back-off doubles with each.
        var consecutiveFailures = 0
        /// Not tried again before this time.
        var retryAtNanos: Int64 = .min
        var failures = 0
        var sent = 0
        var acked = 0
        var nakked = 0
    }

    /// The first back-off after a target fails; it doubles with each further failure.
    public static let initialBackoffNanos: Int64 = 500_000_000
    public static let maximumBackoffNanos: Int64 = 30_000_000_000

    public let targets: [SenderTarget]
    public let mode: FailoverMode
    public let failback: Bool
    public let startNanos: Int64
    /// Ordered: the target new connections go to.
    public private(set) var current = 0
    private(set) var health: [Health]
    public private(set) var failovers: [FailoverRecord] = []
    public private(set) var failbacks: [FailbackRecord] = []
    private var lastAckNanos: Int64?
    /// The failover whose new target has not acked yet, and the last ack before it.
    private var recovering: (record: Int, sinceNanos: Int64)?
    /// Events written to a failed target and not acked: sequence → its failover record.
    private var awaitingResend: [UInt64: Int] = [:]
    private var probing: Int?
    private var pendingWakeUp: Int64?

    public init(targets: [SenderTarget], mode: FailoverMode, failback: Bool, startNanos: Int64) {
        self.targets = targets
        self.mode = mode
        self.failback = failback
        self.startNanos = startNanos
        health = Array(repeating: Health(), count: max(1, targets.count))
    }

    public var currentTarget: SenderTarget { targets[current] }

    /// Healthy, or failed with its back-off over.
    public func isUsable(_ target: Int, now: Int64) -> Bool {
        !health[target].failed || now >= health[target].retryAtNanos
    }

    /// Per-target counts: a write neither acked nor nak'd by the end failed.
    public var targetSummaries: [TargetSummary] {
        zip(targets, health).map { target, h in
            TargetSummary(
                target: target.description, sent: h.sent, acked: h.acked, nakked: h.nakked,
                failed: max(0, h.sent - h.acked - h.nakked), failures: h.failures)
        }
    }

    // MARK: inputs

    /// An event is written to `target`: counted there, and as resent if a failover handed it on.
    public mutating func sending(sequence: UInt64, to target: Int) {
        health[target].sent += 1
        if let record = awaitingResend.removeValue(forKey: sequence) { failovers[record].resent += 1 }
    }

    /// `target` acked an event (or nak'd it as seen before: delivered all the same).
    public mutating func acked(target: Int, now: Int64) -> [Action] {
        health[target].acked += 1
        health[target].failed = false
        health[target].consecutiveFailures = 0
        lastAckNanos = now
        if let (record, since) = recovering, failovers[record].to == targets[target].description {
            failovers[record].rtoSeconds = Double(now - since) / 1e9
            recovering = nil
        }
        return []
    }

    /// `target` rejected an event for good: the target works, the event is not delivered.
    public mutating func nakked(target: Int) {
        health[target].nakked += 1
    }

    /// A connection to `target` refused, reset or timed out. Ordered: when it is the current
    /// target, move to the next usable one (in order, wrapping), or the one whose back-off ends
    /// first; the failover is recorded. Several connections seeing the same outage count once.
    public mutating func failed(target: Int, cause: FailoverCause, now: Int64) -> [Action] {
        if probing == target { probing = nil }
        var h = health[target]
        guard !(h.failed && now < h.retryAtNanos) else { return [] }  // the same outage
        h.failed = true
        h.failures += 1
        h.consecutiveFailures += 1
        h.retryAtNanos = now + Self.backoff(failures: h.consecutiveFailures)
        health[target] = h
        guard mode == .ordered, target == current, targets.count > 1, let next = nextTarget(after: target, now: now)
        else { return [] }
        let since = recovering.map { $0.sinceNanos } ?? lastAckNanos ?? startNanos
        failovers.append(
            FailoverRecord(
                from: targets[target].description, to: targets[next].description,
                detectedAtSeconds: Double(now - startNanos) / 1e9, cause: cause, unackedAtFailure: 0, resent: 0,
                rtoSeconds: nil))
        recovering = (failovers.count - 1, since)
        current = next
        let notBefore = isUsable(next, now: now) ? nil : health[next].retryAtNanos
        return [.failover(from: target, to: next, notBeforeNanos: notBefore)] + scheduleProbe(now: now)
    }

    /// After a `.failover`: the events written to the failed target and not acked, now queued
    /// for the next one.
    public mutating func requeued(_ sequences: [UInt64]) {
        guard let record = failovers.indices.last else { return }
        failovers[record].unackedAtFailure += sequences.count
        for sequence in sequences { awaitingResend[sequence] = record }
    }

    /// The result of a `.probe`: accepted connections mean the earlier target is back.
    public mutating func probed(target: Int, accepted: Bool, now: Int64) -> [Action] {
        guard probing == target else { return [] }
        probing = nil
        guard accepted else {
            health[target].consecutiveFailures += 1
            health[target].retryAtNanos = now + Self.backoff(failures: health[target].consecutiveFailures)
            return scheduleProbe(now: now)
        }
        // Healthy until it fails again; its failure count stays, so a flapping target backs off longer.
        health[target].failed = false
        guard mode == .ordered, target < current else { return scheduleProbe(now: now) }
        let from = current
        failbacks.append(
            FailbackRecord(
                from: targets[from].description, to: targets[target].description,
                atSeconds: Double(now - startNanos) / 1e9))
        current = target
        return [.failback(from: from, to: target)] + scheduleProbe(now: now)
    }

    public mutating func wakeUp(now: Int64) -> [Action] {
        if let pending = pendingWakeUp, pending <= now { pendingWakeUp = nil }
        return scheduleProbe(now: now)
    }

    /// A nak whose reason says the event was seen before (Comet: "Previously seen by this
    /// broker"): the target has it, so it counts as delivered.
    public static func isSeenBefore(nakReason: String?) -> Bool {
        guard let reason = nakReason?.lowercased() else { return false }
        return reason.contains("previously seen") || reason.contains("seen before")
    }

    // MARK: internals

    /// Geometric: initial × 2^(failures − 1), at most the maximum.
    public static func backoff(failures: Int) -> Int64 {
        let exponent = min(max(failures - 1, 0), 16)
        return min(initialBackoffNanos << exponent, maximumBackoffNanos)
    }

    /// The next target in order (wrapping) that is usable, else the one whose back-off ends
    /// first; nil when that is `failed` itself (nothing better to move to).
    private func nextTarget(after failed: Int, now: Int64) -> Int? {
        let order = (1..<targets.count).map { (failed + $0) % targets.count }
        if let usable = order.first(where: { isUsable($0, now: now) }) { return usable }
        let soonest = (order + [failed]).min { health[$0].retryAtNanos < health[$1].retryAtNanos }
        return soonest == failed ? nil : soonest
    }

    /// `--failback`: probe the first earlier target whose back-off is over, or wake up then.
    private mutating func scheduleProbe(now: Int64) -> [Action] {
        guard failback, mode == .ordered, probing == nil else { return [] }
        let earlier = (0..<current).filter { health[$0].failed }
        guard let first = earlier.min(by: { health[$0].retryAtNanos < health[$1].retryAtNanos }) else { return [] }
        if let ready = earlier.first(where: { now >= health[$0].retryAtNanos }) {
            probing = ready
            return [.probe(ready)]
        }
        let at = health[first].retryAtNanos
        guard pendingWakeUp.map({ at < $0 }) ?? true else { return [] }
        pendingWakeUp = at
        return [.wakeUp(atNanos: at)]
    }
}

/// One move from a failed target to the next (`failovers` in the summary JSON).
public struct FailoverRecord: Codable, Sendable, Equatable {
    public var from: String
    public var to: String
    /// Seconds since the start of the run when the failure was seen.
    public var detectedAtSeconds: Double
    public var cause: FailoverCause
    /// Events written to `from` and not acked when it failed.
    public var unackedAtFailure: Int
    /// Of those, how many were written again (to `to` or a later target).
    public var resent: Int
    /// Last ack before the failure (or the start, with none) → first ack from `to`; nil when
    /// `to` never acked.
    public var rtoSeconds: Double?

    public init(
        from: String, to: String, detectedAtSeconds: Double, cause: FailoverCause, unackedAtFailure: Int, resent: Int,
        rtoSeconds: Double?
    ) {
        self.from = from
        self.to = to
        self.detectedAtSeconds = detectedAtSeconds
        self.cause = cause
        self.unackedAtFailure = unackedAtFailure
        self.resent = resent
        self.rtoSeconds = rtoSeconds
    }

    enum CodingKeys: String, CodingKey {
        case from, to, cause, resent
        case detectedAtSeconds = "detected_at_s"
        case unackedAtFailure = "unacked_at_failure"
        case rtoSeconds = "rto_s"
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(from, forKey: .from)
        try c.encode(to, forKey: .to)
        try c.encode(detectedAtSeconds, forKey: .detectedAtSeconds)
        try c.encode(cause, forKey: .cause)
        try c.encode(unackedAtFailure, forKey: .unackedAtFailure)
        try c.encode(resent, forKey: .resent)
        try c.encode(rtoSeconds, forKey: .rtoSeconds)  // null: never recovered
    }
}

/// `--failback`: the sender went back to an earlier target (`failbacks` in the summary JSON).
public struct FailbackRecord: Codable, Sendable, Equatable {
    public var from: String
    public var to: String
    public var atSeconds: Double

    public init(from: String, to: String, atSeconds: Double) {
        self.from = from
        self.to = to
        self.atSeconds = atSeconds
    }

    enum CodingKeys: String, CodingKey {
        case from, to
        case atSeconds = "at_s"
    }
}

/// One target's counts (`targets` in the summary JSON).
public struct TargetSummary: Codable, Sendable, Equatable {
    public var target: String
    /// Writes of events to it (resends included).
    public var sent: Int
    public var acked: Int
    public var nakked: Int
    /// Writes that got neither ack nor nak.
    public var failed: Int
    /// Times it was marked failed.
    public var failures: Int

    public init(target: String, sent: Int, acked: Int, nakked: Int, failed: Int, failures: Int) {
        self.target = target
        self.sent = sent
        self.acked = acked
        self.nakked = nakked
        self.failed = failed
        self.failures = failures
    }
}
