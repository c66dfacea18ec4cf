import DequeModule

/// Events written on one connection and not yet acked or nak'd: at most `capacity` of them
/// (`--window`). Replies may come in any order and are matched by key (the event's ivorn in a
/// connection handler, its sequence in the dispatch state). A pure value type, shared by every
/// role that pipelines events (sender connections, broadcaster subscribers, failover).
///
/// Each entry has a deadline (its write time + ack_timeout). Entries are written in order and
/// share one timeout, so the oldest entry still waiting holds the earliest deadline: one timer
/// per connection, re-armed at `nextDeadline`, enforces every event's own timeout.
public struct AckWindow<Key: Hashable & Sendable, Entry: Sendable>: Sendable {
    public let capacity: Int
    private var entries: [Key: (entry: Entry, deadline: Int64, serial: UInt64)] = [:]
    /// Keys in write order, with the serial of their insertion. An entry replied to out of order
    /// stays here until it reaches the front (skipped then): removal stays O(1). The serial tells
    /// a key written again from its stale place.
    private var order: Deque<(key: Key, serial: UInt64)> = []
    private var nextSerial: UInt64 = 0

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        entries.reserveCapacity(self.capacity)
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var isFull: Bool { entries.count >= capacity }
    /// How many more events may be written now.
    public var room: Int { max(0, capacity - entries.count) }

    public func contains(_ key: Key) -> Bool { entries[key] != nil }

    /// Adds a written event; false (and nothing changes) when the window is full or the key is
    /// already waiting.
    @discardableResult
    public mutating func insert(_ entry: Entry, for key: Key, deadline: Int64 = .max) -> Bool {
        guard !isFull, entries[key] == nil else { return false }
        entries[key] = (entry, deadline, nextSerial)
        order.append((key, nextSerial))
        nextSerial &+= 1
        return true
    }

    /// The reply for `key` arrived: its entry, or nil when no such event is waiting.
    public mutating func remove(_ key: Key) -> Entry? {
        guard let removed = entries.removeValue(forKey: key) else { return nil }
        if entries.isEmpty { order.removeAll(keepingCapacity: true) } else { dropRepliedFront() }
        return removed.entry
    }

    /// Removes the oldest waiting entry (a reply that names no event takes the first written).
    public mutating func removeOldest() -> Entry? {
        guard let first = order.first(where: isWaiting) else { return nil }
        return remove(first.key)
    }

    /// The oldest waiting entry (first written), if any.
    public var oldest: Entry? { firstWaiting?.entry }

    /// The earliest deadline of a waiting entry, or nil when none waits.
    public var nextDeadline: Int64? { firstWaiting?.deadline }

    /// Whether an entry has waited past its deadline at `now`.
    public func hasExpired(now: Int64) -> Bool { nextDeadline.map { $0 <= now } ?? false }

    /// Empties the window (the connection failed or closed): the entries in write order.
    public mutating func removeAll() -> [Entry] {
        var result: [Entry] = []
        result.reserveCapacity(entries.count)
        for (key, serial) in order where entries[key]?.serial == serial {
            if let waiting = entries.removeValue(forKey: key) { result.append(waiting.entry) }
        }
        entries.removeAll(keepingCapacity: true)
        order.removeAll(keepingCapacity: true)
        return result
    }

    private func isWaiting(_ position: (key: Key, serial: UInt64)) -> Bool {
        entries[position.key]?.serial == position.serial
    }

    /// The front is kept waiting (see `remove`), so this is the first position.
    private var firstWaiting: (entry: Entry, deadline: Int64, serial: UInt64)? {
        for position in order where isWaiting(position) { return entries[position.key] }
        return nil
    }

    private mutating func dropRepliedFront() {
        while let first = order.first, !isWaiting(first) { order.removeFirst() }
    }
}

extension AckWindow: Equatable where Entry: Equatable {
    public static func == (a: Self, b: Self) -> Bool {
        guard a.capacity == b.capacity, a.entries.count == b.entries.count else { return false }
        return a.entries.allSatisfy { key, value in
            b.entries[key].map { $0.entry == value.entry && $0.deadline == value.deadline } ?? false
        }
    }
}
