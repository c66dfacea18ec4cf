import DequeModule

/// An event that arrived through a `--subscribe` broker (its index in the flag's order).
struct BrokerEvent: Sendable, Equatable {
    var ivorn: String
    var broker: Int
}

/// Events arriving through several brokers, matched by ivorn (the one identity every VOEvent
/// has, whoever wrote it): per broker, how many of the events it delivered had already arrived,
/// through it or another. A plain value owned by the receiver's home loop.
///
/// Copies of one event arrive within seconds of each other, so the last `capacity` ivorns are
/// remembered, oldest forgotten first: memory stays bounded on a run of any length.
public struct BrokerDuplicates: Sendable, Equatable {
    /// 2¹⁷ ivorns, about 15 MB at 100 bytes each: minutes of a survey's alert stream.
    public static let defaultCapacity = 1 << 17

    public let capacity: Int
    public private(set) var duplicates: [Int]
    private var seen: Set<String> = []
    private var order: Deque<String> = []

    public init(brokers: Int, capacity: Int = BrokerDuplicates.defaultCapacity) {
        self.capacity = max(1, capacity)
        duplicates = Array(repeating: 0, count: max(0, brokers))
    }

    /// Counts one arrival; true when the ivorn had already arrived.
    @discardableResult
    public mutating func record(ivorn: String, broker: Int) -> Bool {
        guard duplicates.indices.contains(broker) else { return false }
        guard seen.insert(ivorn).inserted else {
            duplicates[broker] += 1
            return true
        }
        order.append(ivorn)
        if order.count > capacity, let oldest = order.popFirst() { seen.remove(oldest) }
        return false
    }

    /// Arrivals of an ivorn already seen, over every broker.
    public var totalDuplicates: Int { duplicates.reduce(0, +) }
}
