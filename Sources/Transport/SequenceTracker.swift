/// Classifies received sequence numbers, per sender run (a run's numbers start at 0).
///
/// The numbers come off the network. A sender counts its events from 0, so a number
/// beyond `maximumSequence`, or more than `maximumJump` past the run's highest (past 0
/// for a new run), is not one it sent: it is counted as out of range and otherwise
/// ignored, so one event cannot make `missing` absurd, and no arithmetic here can trap.
public struct SequenceTracker: Sendable {
    public enum Outcome: Equatable, Sendable { case inOrder, outOfOrder, duplicate, outOfRange }

    /// 2⁴⁰: twelve days of events at a million a second.
    public static let maximumSequence: UInt64 = 1 << 40
    /// 2³²: a longer gap than any real run loses between two events that do arrive, yet a
    /// receiver that joins a run late (its first number far above 0) still tracks it.
    public static let maximumJump: UInt64 = 1 << 32

    private struct Run {
        var seen = Set<UInt64>()
        var highest: UInt64?
    }

    private var runs: [String: Run] = [:]
    public private(set) var unique = 0
    public private(set) var duplicates = 0
    public private(set) var outOfOrder = 0
    public private(set) var outOfRange = 0

    public init() {}

    public mutating func record(run: String, sequence: UInt64) -> Outcome {
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
