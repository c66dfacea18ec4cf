/// Classifies received sequence numbers, per sender run (a run's numbers start at 0).
///
/// The numbers come off the network. A sender counts its events from 0, so a number
/// beyond `maximumSequence`, or more than `maximumJump` past the run's highest (past 0
/// for a new run), is not one it sent: it is counted as out of range and otherwise
/// ignored, so one event cannot make `missing` absurd, and no arithmetic here can trap.
/// At most `maximumRuns` runs are tracked, each named in at most `maximumRunIDBytes`: events
/// of any further run are counted as untracked, so a peer inventing run IDs cannot grow the
/// receiver's memory without bound.
public struct SequenceTracker: Sendable {
    public enum Outcome: Equatable, Sendable { case inOrder, outOfOrder, duplicate, outOfRange, untracked }

    /// 2⁴⁰: twelve days of events at a million a second.
    public static let maximumSequence: UInt64 = 1 << 40
    /// 2³²: a longer gap than any real run loses between two events that do arrive, yet a
    /// receiver that joins a run late (its first number far above 0) still tracks it.
    public static let maximumJump: UInt64 = 1 << 32
    /// Far more senders than one receiver serves at a time.
    public static let maximumRuns = 1_024
    /// Our senders' run IDs are UUIDs (36 bytes).
    public static let maximumRunIDBytes = 256

    private struct Run {
        var seen = Set<UInt64>()
        var highest: UInt64?
    }

    private var runs: [String: Run] = [:]
    public private(set) var unique = 0
    public private(set) var duplicates = 0
    public private(set) var outOfOrder = 0
    public private(set) var outOfRange = 0
    /// Events of runs beyond `maximumRuns` (or with an overlong run ID): counted, not tracked.
    public private(set) var untrackedRuns = 0
    public var trackedRuns: Int { runs.count }

    public init() {}

    public mutating func record(run: String, sequence: UInt64) -> Outcome {
        // index(forKey:) does not copy the run out: a live copy would make the insert below
        // copy the whole Set.
        if runs.index(forKey: run) == nil, runs.count >= Self.maximumRuns || run.utf8.count > Self.maximumRunIDBytes {
            untrackedRuns += 1
            return .untracked
        }
        let highest = runs[run]?.highest
        // highest ≤ maximumSequence, so the sum cannot overflow.
        guard sequence <= Self.maximumSequence, sequence <= (highest ?? 0) + Self.maximumJump else {
            outOfRange += 1
            return .outOfRange
        }
        // Mutate the run in place (Dictionary's modify accessor): copying it out and back
        // would copy its whole Set on every insert.
        guard runs[run, default: Run()].seen.insert(sequence).inserted else {
            duplicates += 1
            return .duplicate
        }
        unique += 1
        if let highest, sequence < highest {
            outOfOrder += 1
            return .outOfOrder
        }
        runs[run]?.highest = sequence
        return .inOrder
    }

    /// Gaps: numbers below a run's highest that never arrived.
    public var missing: Int {
        var total = 0
        for run in runs.values {
            guard let highest = run.highest else { continue }
            // highest ≤ maximumSequence, and every seen number is ≤ highest, so a run's gap
            // fits; the total saturates (only millions of hostile runs could reach Int.max).
            let gaps = Int(exactly: highest + 1).map { $0 - run.seen.count } ?? .max
            let (sum, overflow) = total.addingReportingOverflow(gaps)
            total = overflow ? .max : sum
        }
        return total
    }
}
