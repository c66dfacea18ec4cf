/// Classifies received sequence numbers, per sender run (a run's numbers start at 0).
public struct SequenceTracker: Sendable {
    public enum Outcome: Equatable, Sendable { case inOrder, outOfOrder, duplicate }

    private struct Run {
        var seen = Set<UInt64>()
        var highest: UInt64?
    }

    private var runs: [String: Run] = [:]
    public private(set) var unique = 0
    public private(set) var duplicates = 0
    public private(set) var outOfOrder = 0

    public init() {}

    public mutating func record(run: String, sequence: UInt64) -> Outcome {
        // Mutate the run in place (Dictionary's modify accessor): copying it out and back
        // would copy its whole Set on every insert.
        guard runs[run, default: Run()].seen.insert(sequence).inserted else {
            duplicates += 1
            return .duplicate
        }
        unique += 1
        if let highest = runs[run]?.highest, sequence < highest {
            outOfOrder += 1
            return .outOfOrder
        }
        runs[run]?.highest = sequence
        return .inOrder
    }

    /// Gaps: numbers below a run's highest that never arrived.
    public var missing: Int {
        runs.values.reduce(0) { total, run in
            guard let highest = run.highest else { return total }
            return total + Int(highest + 1) - run.seen.count
        }
    }
}
