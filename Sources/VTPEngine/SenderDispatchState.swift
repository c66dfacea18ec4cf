import BenchConfig
import DequeModule

public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let raw: Int
    public init(_ raw: Int) { self.raw = raw }
    public var description: String { "#\(raw)" }
}

/// Why a connection was given up, as the summary counts them.
public enum ConnectionFailure: String, Sendable, CaseIterable, Codable, Comparable {
    case refused = "refused"
    case connectTimeout = "connect timeout"
    /// The host name did not resolve.
    case unknownHost = "unknown host"
    /// Any other connect failure (unreachable network, too many open files, ...).
    case connectError = "connect error"
    /// Closed or reset by the peer with an event in flight (or before any reply).
    case closedBeforeAck = "closed before ack"
    /// Unparseable frame, or a message that is not the ack/nak in flight.
    case badReply = "bad reply"
    case ackTimeout = "ack timeout"
    case ioError = "I/O error"

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// One event waiting for (or on) a connection. Its payload is built when it is sent.
public struct PendingEvent: Sendable, Hashable {
    public var sequence: UInt64
    /// Wall-clock moment the event was scheduled: its embedded send timestamp, so time
    /// spent queued in the sender counts as latency.
    public var scheduledNanos: Int64
    /// Times it was written without getting a reply (0 for a first send).
    public var attempts: Int
}

/// The sender's dispatch logic: which event goes on which connection, when to open and
/// close connections, retry and back-off. A pure value type: every input returns the
/// actions to perform, so it is tested without sockets.
///
/// Times are monotonic nanoseconds (for back-off); event timestamps are wall-clock.
public struct SenderDispatchState: Sendable {
    public enum Action: Hashable, Sendable {
        case connect(ConnectionID)
        case send(ConnectionID, PendingEvent)
        case close(ConnectionID)
        /// Call `wakeUp(now:)` at this monotonic time (back-off expiry).
        case wakeUp(atNanos: Int64)
        /// Every event has been acked or nak'd.
        case finished
        /// No connection ever opened before the connect deadline: the run stops here.
        case unreachable
    }

    enum ConnectionState: Equatable, Sendable {
        /// Per-event connections carry their event from the start.
        case connecting(PendingEvent?)
        /// Open, nothing in flight.
        case idle
        /// Open, this many events written and awaiting replies (at most `window`).
        case busy(inFlight: Int)
    }

    struct Connection: Equatable, Sendable {
        var isConnecting = true
        /// The event a per-event connection carries while it connects.
        var carried: PendingEvent?
        /// Events written on it awaiting their ack or nak, by sequence.
        var window: AckWindow<UInt64, PendingEvent>
        /// Counted against max_connect (false once released under the `setup` scope).
        var holdsSlot: Bool
        /// An ack or nak arrived on it: the peer speaks VTP.
        var replied = false

        var state: ConnectionState {
            if isConnecting { return .connecting(carried) }
            return window.isEmpty ? .idle : .busy(inFlight: window.count)
        }
    }

    public let mode: SenderMode
    public let scope: MaxConnectScope
    public let maxConnect: Int
    public let totalEvents: UInt64
    /// Time between scheduled instants: between events, or between bursts.
    public let intervalNanos: Int64
    public let startWallNanos: Int64
    /// Events scheduled at each instant: 1 spreads them evenly; more makes bursts.
    public let burstSize: Int
    /// Events a persistent connection may have awaiting replies at once (`--window`); per-event
    /// connections carry one.
    public let window: Int
    public static let initialBackoffNanos: Int64 = 50_000_000
    public static let maximumBackoffNanos: Int64 = 2_000_000_000
    /// Persistent connections are opened at most this many at a time: thousands of
    /// simultaneous SYNs overflow the receiver's accept queue (somaxconn) and time out.
    public static let persistentConnectBurst = 256

    private(set) var connections: [ConnectionID: Connection] = [:]
    /// Open connections with room in their window; the most recently freed last.
    private var ready: Deque<ConnectionID> = []
    private var retries: Deque<PendingEvent> = []
    private var due: UInt64 = 0
    private var nextFresh: UInt64 = 0
    private var slotsUsed = 0
    private var nextConnectionID = 0
    private var backoffUntil: Int64 = .min
    /// Failures since the last ack or nak. A successful connect does not reset it: a peer
    /// that accepts and then closes (or answers garbage) must be backed off from too.
    private var consecutiveFailures = 0
    /// While failing, only this one connection is tried at a time, each after the
    /// back-off, until a reply proves the receiver healthy again.
    private var probe: ConnectionID?
    private var connecting = 0
    private var pendingWakeUp: Int64?
    private var stopped = false
    private var finishedSignalled = false
    /// Failback: connections to a target no longer preferred, closed after their last reply.
    private var retiring: Set<ConnectionID> = []

    public private(set) var sent = 0
    public private(set) var resent = 0
    public private(set) var acked = 0
    public private(set) var nakked = 0
    public private(set) var errors = 0
    public private(set) var errorsByCause: [ConnectionFailure: Int] = [:]
    /// Connections that opened (connect attempts that failed are not counted).
    public private(set) var connectionsOpened = 0
    /// Idle persistent connections the peer closed (not errors).
    public private(set) var peerClosedIdle = 0
    public private(set) var maxBacklog = 0

    public init(
        mode: SenderMode, scope: MaxConnectScope, maxConnect: Int, totalEvents: Int, intervalNanos: Int64,
        startWallNanos: Int64, window: Int = 1, burstSize: Int = 1
    ) {
        self.mode = mode
        self.scope = scope
        self.maxConnect = max(1, maxConnect)
        self.totalEvents = UInt64(max(0, totalEvents))
        self.intervalNanos = max(0, intervalNanos)
        self.startWallNanos = startWallNanos
        self.window = mode == .persistent ? max(1, window) : 1
        self.burstSize = max(1, burstSize)
    }

    // MARK: the schedule

    public var schedule: EventSchedule {
        EventSchedule(intervalNanos: intervalNanos, burstSize: burstSize, totalEvents: totalEvents)
    }

    /// When event `sequence` is due, after the start (see `EventSchedule`).
    public func scheduledOffsetNanos(of sequence: UInt64) -> Int64 { schedule.scheduledOffsetNanos(of: sequence) }

    /// How many events are due `elapsedNanos` after the start (see `EventSchedule`).
    public func dueCount(elapsedNanos: Int64) -> UInt64 { schedule.dueCount(elapsedNanos: elapsedNanos) }

    /// Events scheduled but not yet on a connection.
    public var backlog: Int { retries.count + Int(due - nextFresh) }
    public var openConnections: Int { connections.count }
    public var inFlight: Int {
        connections.values.reduce(0) { n, c in n + c.window.count + (c.carried == nil ? 0 : 1) }
    }
    public var isFinished: Bool { UInt64(acked + nakked) == totalEvents }
    /// Events neither acked nor nak'd (meaningful once the run is over).
    public var unfinished: Int { Int(totalEvents) - acked - nakked }
    /// Of those, the ones that were scheduled: failed, once the run is over.
    public var scheduledUnfinished: Int { Int(due) - acked - nakked }
    /// Events never scheduled (the run was stopped first): not sent, rather than failed.
    public var notScheduled: Int { Int(totalEvents - due) }

    // MARK: inputs

    /// The generator says the first `count` events are now due.
    public mutating func eventsDue(_ count: UInt64, now: Int64) -> [Action] {
        let newDue = min(count, totalEvents)
        if newDue > due { due = newDue }
        maxBacklog = max(maxBacklog, backlog)
        return fill(now: now)
    }

    public mutating func connected(_ id: ConnectionID, now: Int64) -> [Action] {
        guard var connection = connections[id], connection.isConnecting else { return [] }
        connecting -= 1
        connectionsOpened += 1
        connection.isConnecting = false
        var actions: [Action] = []
        if let event = connection.carried {
            connection.carried = nil
            connection.window.insert(event, for: event.sequence)
            actions.append(send(event, on: id))
        }
        connections[id] = connection
        if !connection.window.isFull { ready.append(id) }
        return actions + fill(now: now)
    }

    /// The event's bytes are written: under the `setup` scope this frees the slot.
    public mutating func written(_ id: ConnectionID, now: Int64) -> [Action] {
        guard scope == .setup, mode == .perEvent, var connection = connections[id], connection.holdsSlot else {
            return []
        }
        connection.holdsSlot = false
        connections[id] = connection
        slotsUsed -= 1
        return fill(now: now)
    }

    /// The ack or nak for event `sequence` arrived on `id` (nil: the oldest event in flight there,
    /// for a window of 1). A reply for an event not in flight there is a bad reply.
    public mutating func replied(_ id: ConnectionID, sequence: UInt64? = nil, accepted: Bool, now: Int64) -> [Action] {
        // In place (no copy of the connection): a copy would duplicate its window's storage.
        guard let isConnecting = connections[id]?.isConnecting else { return [] }
        let wasFull = connections[id]?.window.isFull ?? false
        var event: PendingEvent?
        if !isConnecting {
            if let sequence { event = connections[id]?.window.remove(sequence) } else { event = connections[id]?.window.removeOldest() }
        }
        guard event != nil else { return failed(id, cause: .badReply, now: now) }
        if accepted { acked += 1 } else { nakked += 1 }
        consecutiveFailures = 0
        probe = nil
        connections[id]?.replied = true
        var actions: [Action] = []
        switch mode {
        case .perEvent:
            release(id)
            actions.append(.close(id))
        case .persistent:
            if retiring.contains(id) {
                if connections[id]?.window.isEmpty ?? false {
                    release(id)
                    actions.append(.close(id))
                }
            } else if wasFull {
                ready.append(id)
            }
        }
        actions += fill(now: now)
        return actions + finishIfDone()
    }

    /// Connect failure, ack timeout, protocol error or unexpected close: the event in
    /// flight (if any) goes back to the front of the queue and new connections back off.
    public mutating func failed(_ id: ConnectionID, cause: ConnectionFailure = .ioError, now: Int64) -> [Action] {
        guard !stopped, let connection = connections[id] else { return [] }
        errors += 1
        errorsByCause[cause, default: 0] += 1
        release(id)
        requeue([connection])
        backOff(now: now)
        return [.close(id)] + fill(now: now)
    }

    /// The peer closed the connection. Closing an idle connection is the peer's right
    /// (Comet closes after every reply; receivers close idle ones): not an error. Reopen
    /// at once if it had replied; a connection closed before ever replying may be a peer
    /// that closes every connection, so the next one waits for the back-off. With an
    /// event on it, it is a failure.
    public mutating func peerClosed(_ id: ConnectionID, now: Int64) -> [Action] {
        guard !stopped, let connection = connections[id] else { return [] }
        guard connection.state == .idle else { return failed(id, cause: .closedBeforeAck, now: now) }
        release(id)
        peerClosedIdle += 1
        if !connection.replied { backOff(now: now) }
        return fill(now: now)
    }

    public mutating func wakeUp(now: Int64) -> [Action] {
        if let pending = pendingWakeUp, pending <= now { pendingWakeUp = nil }
        return fill(now: now)
    }

    /// The connect deadline (connect_timeout after the start) has come: if no connection has
    /// ever opened, the receiver is unreachable and retrying would only hide that, so stop.
    /// A receiver that was reachable and went away is retried as before.
    public mutating func connectDeadlineReached() -> [Action] {
        guard !stopped, connectionsOpened == 0 else { return [] }
        return stop() + [.unreachable]
    }

    /// Stop (SIGINT or drain timeout): close everything, send nothing more.
    public mutating func stop() -> [Action] {
        stopped = true
        let ids = connections.keys.sorted { $0.raw < $1.raw }
        return ids.map { .close($0) }
    }

    // MARK: failover (the engine decides which target each connection goes to)

    /// These connections' target failed (`failure`: the one error that showed it, counted once):
    /// close them and requeue their events, those written to be resent. No back-off: the next
    /// target is another receiver. Returns the actions and the events that had been written and
    /// not acked.
    public mutating func reroute(_ ids: [ConnectionID], failure: ConnectionFailure?, now: Int64)
        -> (actions: [Action], unacked: [PendingEvent])
    {
        guard !stopped else { return ([], []) }
        if let failure {
            errors += 1
            errorsByCause[failure, default: 0] += 1
        }
        let gone = ids.filter { connections[$0] != nil }
        let closed = gone.compactMap { connections[$0] }
        for id in gone { release(id) }
        let unacked = requeue(closed)
        return (gone.map { .close($0) } + fill(now: now), unacked)
    }

    /// A new target: start afresh (the old target's back-off is not this one's), or wait until
    /// `notBeforeNanos` when every target is backing off.
    public mutating func restartBackoff(notBeforeNanos: Int64?) {
        consecutiveFailures = notBeforeNanos == nil ? 0 : max(1, consecutiveFailures)
        backoffUntil = notBeforeNanos ?? .min
        probe = nil
    }

    /// Failback: these connections' target is no longer preferred. Open ones with nothing in
    /// flight (and persistent ones still connecting) close now; the others take no new events
    /// and close after their last reply. Per-event connections carrying an event go on.
    public mutating func retire(_ ids: [ConnectionID], now: Int64) -> [Action] {
        var actions: [Action] = []
        for id in ids {
            guard let connection = connections[id], connection.carried == nil else { continue }
            if connection.window.isEmpty {
                release(id)
                actions.append(.close(id))
            } else {
                retiring.insert(id)
                if let index = ready.lastIndex(of: id) { ready.remove(at: index) }
            }
        }
        return actions + fill(now: now)
    }

    // MARK: internals

    /// Geometric back-off: each failure after the previous back-off expired doubles it.
    private mutating func backOff(now: Int64) {
        guard now >= backoffUntil else { return }  // the same outage, seen by another connection
        consecutiveFailures += 1
        let exponent = min(consecutiveFailures - 1, 16)
        let delay = min(Self.initialBackoffNanos << exponent, Self.maximumBackoffNanos)
        backoffUntil = now + delay
    }

    /// Connections are gone: their events go back to the front of the queue, lowest sequence
    /// first; a written one counts an attempt (a carried one was never written). Returns the
    /// written ones.
    @discardableResult
    private mutating func requeue(_ gone: [Connection]) -> [PendingEvent] {
        var written: [PendingEvent] = []
        var events: [PendingEvent] = []
        for connection in gone {
            var window = connection.window
            written += window.removeAll()
            if let event = connection.carried { events.append(event) }
        }
        events += written.map { event in
            var event = event
            event.attempts += 1
            return event
        }
        for event in events.sorted(by: { $0.sequence > $1.sequence }) { retries.prepend(event) }
        return written
    }

    private mutating func release(_ id: ConnectionID) {
        guard let connection = connections.removeValue(forKey: id) else { return }
        if connection.holdsSlot { slotsUsed -= 1 }
        if case .connecting = connection.state { connecting -= 1 }
        if probe == id { probe = nil }
        retiring.remove(id)
        if !connection.isConnecting, let index = ready.lastIndex(of: id) { ready.remove(at: index) }
    }

    private mutating func takeNext() -> PendingEvent? {
        if let event = retries.popFirst() { return event }
        guard nextFresh < due else { return nil }
        let sequence = nextFresh
        nextFresh += 1
        return PendingEvent(
            sequence: sequence, scheduledNanos: startWallNanos &+ scheduledOffsetNanos(of: sequence), attempts: 0)
    }

    private mutating func send(_ event: PendingEvent, on id: ConnectionID) -> Action {
        if event.attempts == 0 { sent += 1 } else { resent += 1 }
        return .send(id, event)
    }

    private mutating func openConnection(carrying event: PendingEvent?) -> ConnectionID {
        let id = ConnectionID(nextConnectionID)
        nextConnectionID += 1
        connections[id] = Connection(carried: event, window: AckWindow(capacity: window), holdsSlot: true)
        slotsUsed += 1
        connecting += 1
        if consecutiveFailures > 0 { probe = id }
        return id
    }

    private mutating func fill(now: Int64) -> [Action] {
        guard !stopped else { return [] }
        var actions: [Action] = []
        // Open persistent connections with room take work first: they cost no set-up. Most
        // recently freed first: usually the connection whose ack was just read, on the current
        // loop. Each gets as much as its window holds, so its events go out in one write.
        fillReady: while let id = ready.last {
            while let room = connections[id]?.window.room, room > 0 {
                guard let event = takeNext() else { break fillReady }
                connections[id]?.window.insert(event, for: event.sequence)
                actions.append(send(event, on: id))
            }
            ready.removeLast()
        }
        // Persistent: no more connections than the events not yet acked or nak'd need, a
        // window each (30000 connections for 3 events only hurt).
        let needed = (unfinished + window - 1) / window
        let limit = mode == .persistent ? min(maxConnect, needed) : maxConnect
        guard slotsUsed < limit, wantsConnection else { return actions }
        if now < backoffUntil {
            if pendingWakeUp != backoffUntil {
                pendingWakeUp = backoffUntil
                actions.append(.wakeUp(atNanos: backoffUntil))
            }
            return actions
        }
        if consecutiveFailures > 0 && probe != nil { return actions }  // one probe at a time
        while slotsUsed < limit, wantsConnection {
            switch mode {
            case .perEvent:
                guard let event = takeNext() else { return actions }
                actions.append(.connect(openConnection(carrying: event)))
            case .persistent:
                actions.append(.connect(openConnection(carrying: nil)))
            }
            if probe != nil { break }
        }
        return actions
    }

    /// Per-event: an event is waiting. Persistent: ramping up, not too many connects at once.
    private var wantsConnection: Bool {
        switch mode {
        case .perEvent: return !retries.isEmpty || nextFresh < due
        case .persistent: return connecting < Self.persistentConnectBurst
        }
    }

    private mutating func finishIfDone() -> [Action] {
        guard isFinished, !finishedSignalled else { return [] }
        finishedSignalled = true
        // Persistent connections are no longer needed.
        let ids = connections.keys.sorted { $0.raw < $1.raw }
        ready.removeAll()
        for id in ids { release(id) }
        return ids.map { .close($0) } + [.finished]
    }
}
