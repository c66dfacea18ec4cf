import Protocol

/// One `--subscribe` broker over the whole run (the subscriber role of VTP): a long-lived
/// connection that acks every event, answers `iamalive` and `authenticate` with a copy naming
/// this receiver, and is reopened with geometric back-off whenever it fails or closes.
///
/// A pure value type: every input returns the actions to perform, so it is tested without
/// sockets. Times are monotonic nanoseconds.
public struct SubscriptionState: Sendable {
    /// A frame read from the broker, as much of it as the decision needs.
    public enum Incoming: Sendable, Equatable {
        /// A VOEvent; `valid` when its send time could be read (it can then be timed).
        case event(ivorn: String, valid: Bool)
        case transport(TransportMessage)
        /// Not a VTP message at all.
        case unparseable
    }

    public enum Action: Sendable, Equatable {
        case connect
        /// Count the event in the receiver's statistics.
        case record(ivorn: String)
        case ack(ivorn: String)
        case send(TransportMessage)
        case close
        /// Call `reconnectDue(now:)` at this monotonic time.
        case reconnect(atNanos: Int64)
    }

    public enum Phase: Sendable, Equatable {
        case idle
        case connecting
        case connected(sinceNanos: Int64)
        case waiting(untilNanos: Int64)
        case stopped
    }

    /// Comet's subscriber starts from 1 s and multiplies by e; a benchmark wants a broker back
    /// sooner, so 100 ms doubling, at most 10 s.
    public static let initialBackoffNanos: Int64 = 100_000_000
    public static let maximumBackoffNanos: Int64 = 10_000_000_000
    /// A connection that stayed up this long proves the broker healthy: the back-off starts
    /// over (Comet's RESET_DELAY). One that opens and closes at once keeps backing off.
    public static let resetAfterNanos: Int64 = 5_000_000_000

    public let localIVO: String
    public private(set) var phase = Phase.idle
    /// Failures in a row since the back-off last started over.
    private var failures = 0

    public private(set) var connections = 0
    public private(set) var connectFailures = 0
    /// Open connections that closed or failed (each is reopened).
    public private(set) var disconnects = 0
    /// Connections closed because the broker was silent past the idle timeout.
    public private(set) var silentDisconnects = 0
    public private(set) var events = 0
    /// Events acked although their send time could not be read: a subscriber never naks (a
    /// broker drops a subscriber that does), so they are acked and left out of the statistics.
    public private(set) var untimedEvents = 0
    public private(set) var iamalivesAnswered = 0
    public private(set) var authenticatesAnswered = 0
    /// Acks, naks and unparseable frames from the broker: nothing to answer.
    public private(set) var ignored = 0

    public init(localIVO: String) { self.localIVO = localIVO }

    public var isConnected: Bool {
        if case .connected = phase { return true }
        return false
    }

    // MARK: inputs

    public mutating func start() -> [Action] {
        guard phase == .idle else { return [] }
        phase = .connecting
        return [.connect]
    }

    public mutating func connected(now: Int64) -> [Action] {
        guard phase == .connecting else { return [] }
        phase = .connected(sinceNanos: now)
        connections += 1
        return []
    }

    /// The connect failed, or the open connection closed or failed: try again after the back-off.
    public mutating func closed(now: Int64) -> [Action] {
        switch phase {
        case .connecting:
            connectFailures += 1
        case .connected(let since):
            disconnects += 1
            let (upFor, overflow) = now.subtractingReportingOverflow(since)
            if !overflow && upFor >= Self.resetAfterNanos { failures = 0 }
        case .idle, .waiting, .stopped:
            return []
        }
        let delay = Self.backoffNanos(afterFailures: failures)
        failures += 1
        let (until, overflow) = now.addingReportingOverflow(delay)
        phase = .waiting(untilNanos: overflow ? .max : until)
        return [.reconnect(atNanos: overflow ? .max : until)]
    }

    public mutating func reconnectDue(now: Int64) -> [Action] {
        guard case .waiting(let until) = phase, now >= until else { return [] }
        phase = .connecting
        return [.connect]
    }

    /// The broker said nothing for the idle timeout (Comet waits 120 s for an iamalive): it has
    /// probably forgotten us, so close; `closed` then reconnects.
    public mutating func silent() -> [Action] {
        guard isConnected else { return [] }
        silentDisconnects += 1
        return [.close]
    }

    /// A frame from the broker; `wallNanos` stamps the answers.
    public mutating func received(_ message: Incoming, wallNanos: Int64) -> [Action] {
        guard isConnected else { return [] }
        switch message {
        case .event(let ivorn, let valid):
            events += 1
            guard valid else {
                untimedEvents += 1
                return [.ack(ivorn: ivorn)]
            }
            return [.record(ivorn: ivorn), .ack(ivorn: ivorn)]
        case .transport(let transport):
            guard let answer = transport.answer(from: localIVO, nowNanos: wallNanos) else {
                ignored += 1
                return []
            }
            if transport.role == .iamalive { iamalivesAnswered += 1 } else { authenticatesAnswered += 1 }
            return [.send(answer)]
        case .unparseable:
            ignored += 1  // as Comet: a subscriber never naks, and there is nothing to ack
            return []
        }
    }

    /// The receiver stops: close, and never reconnect.
    public mutating func stop() -> [Action] {
        let wasOpen = phase == .connecting || isConnected
        phase = .stopped
        return wasOpen ? [.close] : []
    }

    /// The wait after `failures` failures in a row: 100 ms, 200 ms, 400 ms, … up to 10 s.
    public static func backoffNanos(afterFailures failures: Int) -> Int64 {
        let exponent = min(max(failures, 0), 16)
        return min(initialBackoffNanos << exponent, maximumBackoffNanos)
    }
}
