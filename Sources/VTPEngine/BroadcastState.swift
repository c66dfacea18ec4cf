import DequeModule

/// `vtp-sender --broadcast`: the broker → subscriber role. Every scheduled event goes to every
/// subscriber connected when it is scheduled, each subscriber with at most `window` events
/// awaiting acks (the same `AckWindow` as a sender connection's); the rest wait in its queue.
/// A subscriber silent for `iamaliveInterval` is sent an iamalive; one that leaves an ack
/// outstanding past `ackTimeout` or misses an iamalive (no answer within the interval) is
/// dropped. An event counts as acked once every subscriber it was sent to has acked it.
///
/// A pure value type: inputs return the actions to perform, so it is tested without sockets.
/// Times are monotonic nanoseconds.
public struct BroadcastState: Sendable {
    public enum Action: Sendable, Equatable {
        /// Write these events (in order, with one flush).
        case send(ConnectionID, [UInt64])
        case iamalive(ConnectionID)
        /// Close the subscriber's connection: dropped (`subscribers[id].dropReason`) or the run is over.
        case close(ConnectionID)
        /// `waitSubscribers` are connected: the schedule starts now.
        case startSchedule
        /// Every event is settled (acked, nak'd or lost).
        case finished
    }

    public enum DropReason: String, Sendable, Codable {
        case ackTimeout = "ack timeout"
        case missedIamalive = "missed iamalive"
    }

    public struct Subscriber: Sendable {
        public let peer: String
        /// Events written and awaiting replies, by sequence.
        var window: AckWindow<UInt64, Written>
        /// Events due to it and waiting for room in its window.
        var queue: Deque<UInt64> = []
        var lastTrafficNanos: Int64
        /// An iamalive was sent then and is not answered yet.
        var iamaliveSentNanos: Int64?
        public internal(set) var connected = true
        public internal(set) var sent = 0
        public internal(set) var acked = 0
        public internal(set) var nakked = 0
        public internal(set) var dropReason: DropReason?
        /// Events due to it that it never acked or nak'd because it left or was dropped.
        public internal(set) var lost = 0
    }

    struct Written: Sendable {
        var sequence: UInt64
        var atNanos: Int64
    }

    /// An event on its way to its subscribers.
    struct Delivery: Sendable {
        /// Subscribers that have not replied to it (nor left).
        var waiting: Int
        var sent = false
        var nakked = false
        var lost = false
    }

    public let window: Int
    public let ackTimeoutNanos: Int64
    public let iamaliveIntervalNanos: Int64
    public let waitSubscribers: Int
    public let totalEvents: UInt64

    public private(set) var subscribers: [ConnectionID: Subscriber] = [:]
    private var deliveries: [UInt64: Delivery] = [:]
    private var due: UInt64 = 0
    public private(set) var started = false
    private var finishedSignalled = false
    private var stopped = false

    /// Events sent to at least one subscriber.
    public private(set) var sent = 0
    /// Events acked by every subscriber they were sent to.
    public private(set) var acked = 0
    /// Events nak'd by at least one of them.
    public private(set) var nakked = 0
    /// Events that reached no subscriber, or whose subscriber left before replying.
    public private(set) var lost = 0
    public private(set) var unexpectedReplies = 0
    /// The longest a subscriber's queue behind its window has been.
    public private(set) var maxBacklog = 0

    public init(window: Int, ackTimeoutNanos: Int64, iamaliveIntervalNanos: Int64, waitSubscribers: Int, totalEvents: Int) {
        self.window = max(1, window)
        self.ackTimeoutNanos = max(1, ackTimeoutNanos)
        self.iamaliveIntervalNanos = max(1, iamaliveIntervalNanos)
        self.waitSubscribers = max(0, waitSubscribers)
        self.totalEvents = UInt64(max(0, totalEvents))
    }

    public var connectedSubscribers: Int { subscribers.values.filter(\.connected).count }
    public var droppedSubscribers: Int { subscribers.values.filter { $0.dropReason != nil }.count }
    /// Events scheduled and not yet acked, nak'd or lost.
    public var unsettled: Int { deliveries.count }
    /// Events due and not yet written to every subscriber (the longest queue).
    public var backlog: Int { subscribers.values.filter(\.connected).map(\.queue.count).max() ?? 0 }
    public var scheduled: Int { Int(due) }
    public var isFinished: Bool { due == totalEvents && deliveries.isEmpty }

    // MARK: inputs

    /// Before the schedule starts: with no subscriber to wait for, it starts at once.
    public mutating func begin() -> [Action] { startIfReady() }

    public mutating func subscriberConnected(_ id: ConnectionID, peer: String, now: Int64) -> [Action] {
        guard !stopped, subscribers[id] == nil else { return stopped ? [.close(id)] : [] }
        subscribers[id] = Subscriber(peer: peer, window: AckWindow(capacity: window), lastTrafficNanos: now)
        return startIfReady()
    }

    /// The generator says the first `count` events are due: each goes to every connected subscriber.
    public mutating func eventsDue(_ count: UInt64, now: Int64) -> [Action] {
        guard started, !stopped else { return [] }
        let ids = subscribers.keys.filter { subscribers[$0]?.connected == true }.sorted { $0.raw < $1.raw }
        let newDue = min(count, totalEvents)
        while due < newDue {
            if ids.isEmpty {
                lost += 1  // nobody to send it to
            } else {
                deliveries[due] = Delivery(waiting: ids.count)
                for id in ids { subscribers[id]?.queue.append(due) }
            }
            due += 1
        }
        let sends = ids.compactMap { fill($0, now: now) }
        maxBacklog = max(maxBacklog, backlog)
        return sends + finishIfDone()
    }

    /// An ack or nak from subscriber `id` for event `sequence`; returns when the event was sent
    /// to it (for its round trip).
    public mutating func replied(
        _ id: ConnectionID, sequence: UInt64, accepted: Bool, now: Int64
    ) -> (actions: [Action], sentAtNanos: Int64?) {
        guard subscribers[id]?.connected == true, let written = subscribers[id]?.window.remove(sequence) else {
            unexpectedReplies += 1  // as Comet: a reply for nothing in flight is ignored
            return ([], nil)
        }
        subscribers[id]?.lastTrafficNanos = now
        if accepted { subscribers[id]?.acked += 1 } else { subscribers[id]?.nakked += 1 }
        settle(sequence) { if !accepted { $0.nakked = true } }
        return ([fill(id, now: now)].compactMap { $0 } + finishIfDone(), written.atNanos)
    }

    /// The subscriber answered an iamalive (or said anything else that proves it alive).
    public mutating func heardFrom(_ id: ConnectionID, iamaliveAnswer: Bool, now: Int64) {
        guard subscribers[id]?.connected == true else { return }
        subscribers[id]?.lastTrafficNanos = now
        if iamaliveAnswer { subscribers[id]?.iamaliveSentNanos = nil }
    }

    /// The subscriber's connection closed: what it had not replied to is lost.
    public mutating func closed(_ id: ConnectionID) -> [Action] {
        guard subscribers[id]?.connected == true else { return [] }
        disconnect(id)
        return finishIfDone()
    }

    /// Time passed: iamalives due, and subscribers to drop.
    public mutating func check(now: Int64) -> [Action] {
        guard !stopped else { return [] }
        var actions: [Action] = []
        for id in subscribers.keys.sorted(by: { $0.raw < $1.raw }) {
            guard let subscriber = subscribers[id], subscriber.connected else { continue }
            if subscriber.window.hasExpired(now: now) {
                actions += drop(id, .ackTimeout)
            } else if let sentAt = subscriber.iamaliveSentNanos {
                if now - sentAt >= iamaliveIntervalNanos { actions += drop(id, .missedIamalive) }
            } else if now - subscriber.lastTrafficNanos >= iamaliveIntervalNanos {
                subscribers[id]?.iamaliveSentNanos = now
                actions.append(.iamalive(id))
            }
        }
        return actions + finishIfDone()
    }

    /// The run ends (drain timeout, signal, done): close every subscriber, send nothing more.
    public mutating func stop() -> [Action] {
        guard !stopped else { return [] }
        stopped = true
        return subscribers.keys.filter { subscribers[$0]?.connected == true }.sorted { $0.raw < $1.raw }.map { .close($0) }
    }

    // MARK: internals

    private mutating func startIfReady() -> [Action] {
        guard !started, !stopped, connectedSubscribers >= waitSubscribers else { return [] }
        started = true
        return [.startSchedule] + finishIfDone()
    }

    /// Writes what fits in the subscriber's window; nil when nothing does.
    private mutating func fill(_ id: ConnectionID, now: Int64) -> Action? {
        guard var subscriber = subscribers[id], subscriber.connected, !subscriber.queue.isEmpty, !subscriber.window.isFull
        else { return nil }
        subscribers[id] = nil  // in place from here: no second copy of its window and queue
        var batch: [UInt64] = []
        while !subscriber.window.isFull, let sequence = subscriber.queue.popFirst() {
            subscriber.window.insert(Written(sequence: sequence, atNanos: now), for: sequence, deadline: now + ackTimeoutNanos)
            batch.append(sequence)
            if deliveries[sequence]?.sent == false {
                deliveries[sequence]?.sent = true
                sent += 1
            }
        }
        subscriber.sent += batch.count
        subscriber.lastTrafficNanos = now
        subscribers[id] = subscriber
        return .send(id, batch)
    }

    private mutating func drop(_ id: ConnectionID, _ reason: DropReason) -> [Action] {
        subscribers[id]?.dropReason = reason
        disconnect(id)
        return [.close(id)]
    }

    private mutating func disconnect(_ id: ConnectionID) {
        guard var subscriber = subscribers[id] else { return }
        subscribers[id] = nil
        subscriber.connected = false
        // What it had in flight and queued no longer waits for it.
        let abandoned = subscriber.window.removeAll().map(\.sequence) + subscriber.queue
        subscriber.queue.removeAll()
        subscriber.lost += abandoned.count
        subscribers[id] = subscriber
        for sequence in abandoned { settle(sequence) { $0.lost = true } }
    }

    private mutating func settle(_ sequence: UInt64, _ change: (inout Delivery) -> Void) {
        guard var delivery = deliveries[sequence] else { return }
        change(&delivery)
        delivery.waiting -= 1
        guard delivery.waiting <= 0 else {
            deliveries[sequence] = delivery
            return
        }
        deliveries[sequence] = nil
        if delivery.nakked {
            nakked += 1
        } else if delivery.lost {
            lost += 1
        } else {
            acked += 1
        }
    }

    private mutating func finishIfDone() -> [Action] {
        guard started, isFinished, !finishedSignalled else { return [] }
        finishedSignalled = true
        return [.finished]
    }
}
