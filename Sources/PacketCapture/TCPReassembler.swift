/// Which way a segment travels, relative to the side that opened the connection.
public enum FlowDirection: String, Sendable, Hashable, Codable {
    case clientToServer = "client_to_server"
    case serverToClient = "server_to_client"

    public var reversed: FlowDirection { self == .clientToServer ? .serverToClient : .clientToServer }
}

/// A connection's two endpoints; the client is the side that sent the SYN.
public struct ConnectionKey: Hashable, Sendable, CustomStringConvertible {
    public var client: Endpoint
    public var server: Endpoint

    public init(client: Endpoint, server: Endpoint) {
        self.client = client
        self.server = server
    }

    public var description: String { "\(client) -> \(server)" }
}

/// Capture times of the three-way handshake (nil for what the capture did not see).
public struct HandshakeTimes: Sendable, Equatable {
    public var synNanos: Int64?
    public var synAckNanos: Int64?
    public var ackNanos: Int64?
    /// SYNs after the first (the client retransmitted its SYN).
    public var synRetransmissions = 0

    public init(synNanos: Int64? = nil, synAckNanos: Int64? = nil, ackNanos: Int64? = nil) {
        self.synNanos = synNanos
        self.synAckNanos = synAckNanos
        self.ackNanos = ackNanos
    }

    /// SYN → SYN-ACK: the network round trip as seen from the client's side.
    public var synToSynAckNanos: Int64? { synAckNanos.flatMap { a in synNanos.map { a - $0 } } }
    /// SYN-ACK → ACK: the network round trip as seen from the server's side.
    public var synAckToAckNanos: Int64? { ackNanos.flatMap { a in synAckNanos.map { a - $0 } } }
    public var isComplete: Bool { synNanos != nil && synAckNanos != nil && ackNanos != nil }
}

/// State of one TCP connection: both byte streams and the handshake.
public struct TCPConnection: Sendable {
    public let id: Int
    public let key: ConnectionKey
    public internal(set) var handshake = HandshakeTimes()
    public internal(set) var clientStream = TCPByteStream()
    public internal(set) var serverStream = TCPByteStream()
    public internal(set) var clientFinished = false
    public internal(set) var serverFinished = false
    public internal(set) var reset = false
    public internal(set) var firstSeenNanos: Int64
    public internal(set) var lastSeenNanos: Int64
    var clientISN: UInt32?
    var serverISN: UInt32?

    public var isClosed: Bool { reset || (clientFinished && serverFinished) }

    public func stream(_ direction: FlowDirection) -> TCPByteStream {
        direction == .clientToServer ? clientStream : serverStream
    }
}

/// What the reassembler observed in one segment.
public enum ReassemblyEvent: Sendable, Equatable {
    case opened(connectionID: Int, key: ConnectionKey)
    /// The third packet of the handshake was seen.
    case handshakeCompleted(connectionID: Int, times: HandshakeTimes)
    case data(connectionID: Int, direction: FlowDirection, chunk: StreamChunk)
    /// The capture lost `bytes` bytes of this direction; the stream continues after the hole.
    case gap(connectionID: Int, direction: FlowDirection, bytes: UInt64)
    /// Both FINs or a RST were seen.
    case closed(connectionID: Int)
}

/// Splits captured TCP segments into connections and reassembles both directions of each.
///
/// Protocol-agnostic: consumers put a framer (VTP, PostgreSQL, ...) on the `.data` chunks.
/// Segments must be fed in capture order. A new SYN on a 4-tuple whose old connection is
/// closed starts a new connection (port reuse in long per-connection runs).
public struct TCPReassembler: Sendable {
    /// Ports known to be servers: decide the direction of connections whose SYN was not captured.
    public var serverPorts: Set<UInt16>
    /// Closed connections are forgotten this long (capture time) after their last segment.
    public var closedRetentionNanos: Int64 = 5_000_000_000
    /// Connections silent this long (capture time) are forgotten too (a lost FIN/RST, or a
    /// capture that started mid-connection and never saw it end). 0 = never.
    public var idleRetentionNanos: Int64 = 900_000_000_000
    /// Passed to every new stream: `TCPByteStream.maximumHoleAgeNanos`.
    public var maximumHoleAgeNanos: Int64?
    /// Connections followed at once. A capture (a hostile file, a SYN flood) can name millions;
    /// past the limit closed ones are forgotten early, then new ones are not followed (counted
    /// in `Totals.connectionsSkipped`), so memory stays bounded whatever the input.
    public var maximumConnections = 100_000
    /// Bytes held ahead of holes over all streams; past it the stream taking more skips its
    /// hole (counted as a gap) instead of growing further.
    public var maximumBufferedBytes = 256 << 20
    /// Bytes held ahead of holes now, over all streams.
    public private(set) var bufferedBytes = 0
    public private(set) var connections: [Int: TCPConnection] = [:]
    /// Connections removed from `connections`, kept only as counts.
    public private(set) var forgottenConnections = 0
    /// Of those, the ones forgotten after `idleRetentionNanos` of silence without being closed.
    public private(set) var expiredConnections = 0
    /// Running totals over every connection, including forgotten ones.
    public private(set) var totals = Totals()
    private var byFlow: [FlowPair: Int] = [:]
    /// Ids of connections in the order they closed (some may be gone already): what a full
    /// table forgets first, without a scan of the table per new connection.
    private var closedOrder: [Int] = []
    private var closedHead = 0
    private var nextID = 1
    private var lastPruneNanos: Int64?

    struct FlowPair: Hashable, Sendable {
        var a: Endpoint
        var b: Endpoint
        init(_ x: Endpoint, _ y: Endpoint) { (a, b) = x < y ? (x, y) : (y, x) }
    }

    public struct Totals: Sendable, Equatable, Codable {
        public var connections = 0
        public var handshakesCompleted = 0
        public var retransmittedSegments = 0
        public var retransmittedBytes = 0
        public var outOfOrderSegments = 0
        public var gaps = 0
        public var gapBytes: UInt64 = 0
        /// Segments that would have opened a connection while `maximumConnections` were followed.
        public var connectionsSkipped = 0

        public init() {}
    }

    public init(serverPorts: Set<UInt16> = []) {
        self.serverPorts = serverPorts
    }

    public mutating func process(_ segment: TCPSegment) -> [ReassemblyEvent] {
        var events: [ReassemblyEvent] = []
        // Once a second of capture time: a sweep costs one pass over the table.
        if let last = lastPruneNanos {
            if segment.timestampNanos - last >= 1_000_000_000 {
                lastPruneNanos = segment.timestampNanos
                events += prune(nowNanos: segment.timestampNanos)
            }
        } else {
            lastPruneNanos = segment.timestampNanos
        }
        let pair = FlowPair(segment.source, segment.destination)
        let isSyn = segment.flags.contains(.syn) && !segment.flags.contains(.ack)
        var id = byFlow[pair]
        if let existing = id, isSyn, let connection = connections[existing] {
            // A SYN with a new ISN on a finished (or abandoned) connection is a new connection.
            let sameSyn = connection.clientISN == segment.sequence && connection.key.client == segment.source
            if !sameSyn && (connection.isClosed || connection.clientISN != nil || connection.handshake.ackNanos != nil) {
                if !connection.isClosed { events.append(.closed(connectionID: existing)) }
                // The 4-tuple now names the new connection: nothing can reach the old one.
                release(connection)
                connections[existing] = nil
                forgottenConnections += 1
                id = nil
            }
        }
        if id == nil {
            // Only a SYN or data opens a connection: a stray ACK, FIN or RST of a forgotten
            // connection must not create one that never ends.
            if !segment.flags.contains(.syn) && segment.payload.isEmpty { return events }
            if connections.count >= maximumConnections {
                forgetClosedConnections()
                guard connections.count < maximumConnections else {
                    totals.connectionsSkipped += 1
                    return events
                }
            }
            let key = orient(segment)
            let newID = nextID
            nextID += 1
            var connection = TCPConnection(
                id: newID, key: key, firstSeenNanos: segment.timestampNanos, lastSeenNanos: segment.timestampNanos)
            connection.clientStream.maximumHoleAgeNanos = maximumHoleAgeNanos
            connection.serverStream.maximumHoleAgeNanos = maximumHoleAgeNanos
            connections[newID] = connection
            byFlow[pair] = newID
            id = newID
            events.append(.opened(connectionID: newID, key: key))
            totals.connections += 1
        }
        guard let id, var connection = connections[id] else { return events }
        let direction: FlowDirection = segment.source == connection.key.client ? .clientToServer : .serverToClient
        update(&connection, with: segment, direction: direction, events: &events)
        connections[id] = connection
        return events
    }

    /// Skips every remaining hole (end of capture) and returns the bytes that become contiguous.
    public mutating func flush() -> [ReassemblyEvent] {
        var events: [ReassemblyEvent] = []
        for id in connections.keys.sorted() {
            guard var connection = connections[id] else { continue }
            for direction in [FlowDirection.clientToServer, .serverToClient] {
                var stream = connection.stream(direction)
                while stream.hasHole {
                    let before = stream.skippedBytes
                    let chunks = stream.skipGap(nowNanos: connection.lastSeenNanos)
                    totals.gaps += 1
                    totals.gapBytes += stream.skippedBytes - before
                    events.append(.gap(connectionID: id, direction: direction, bytes: stream.skippedBytes - before))
                    events += chunks.map { .data(connectionID: id, direction: direction, chunk: $0) }
                }
                if direction == .clientToServer { connection.clientStream = stream } else { connection.serverStream = stream }
            }
            connections[id] = connection
        }
        bufferedBytes = 0
        return events
    }

    /// The table is full: forgets closed connections, longest closed first, whatever their
    /// retention, until there is room (or none is left).
    private mutating func forgetClosedConnections() {
        while connections.count >= maximumConnections, closedHead < closedOrder.count {
            let id = closedOrder[closedHead]
            closedHead += 1
            guard let c = connections[id], c.isClosed else { continue }  // gone already
            release(c)
            connections[id] = nil
            let pair = FlowPair(c.key.client, c.key.server)
            if byFlow[pair] == id { byFlow[pair] = nil }
            forgottenConnections += 1
        }
        compactClosedOrder()
    }

    /// Drops ids already consumed or forgotten, once they outnumber the table.
    private mutating func compactClosedOrder() {
        guard closedOrder.count - closedHead > max(1024, 2 * connections.count) || closedHead > 4096 else { return }
        closedOrder = closedOrder[closedHead...].filter { connections[$0]?.isClosed == true }
        closedHead = 0
    }

    /// A connection leaves the table: its held bytes leave the budget.
    private mutating func release(_ connection: TCPConnection) {
        bufferedBytes -= connection.clientStream.bufferedBytes + connection.serverStream.bufferedBytes
    }

    private func orient(_ segment: TCPSegment) -> ConnectionKey {
        let (s, d) = (segment.source, segment.destination)
        if segment.flags.contains(.syn) {
            return segment.flags.contains(.ack) ? ConnectionKey(client: d, server: s) : ConnectionKey(client: s, server: d)
        }
        if serverPorts.contains(d.port) && !serverPorts.contains(s.port) { return ConnectionKey(client: s, server: d) }
        if serverPorts.contains(s.port) && !serverPorts.contains(d.port) { return ConnectionKey(client: d, server: s) }
        return ConnectionKey(client: s, server: d)
    }

    private mutating func update(
        _ c: inout TCPConnection, with segment: TCPSegment, direction: FlowDirection, events: inout [ReassemblyEvent]
    ) {
        let t = segment.timestampNanos
        c.lastSeenNanos = max(c.lastSeenNanos, t)
        let flags = segment.flags
        var dataSequence = segment.sequence
        if flags.contains(.syn) {
            dataSequence = segment.sequence &+ 1
            if direction == .clientToServer && !flags.contains(.ack) {
                if c.handshake.synNanos == nil {
                    c.handshake.synNanos = t
                    c.clientISN = segment.sequence
                    c.clientStream.anchor(synSequence: segment.sequence)
                } else {
                    c.handshake.synRetransmissions += 1
                }
            } else if direction == .serverToClient && flags.contains(.ack) {
                if c.handshake.synAckNanos == nil {
                    c.handshake.synAckNanos = t
                    c.serverISN = segment.sequence
                    c.serverStream.anchor(synSequence: segment.sequence)
                }
            }
        } else if direction == .clientToServer, flags.contains(.ack), c.handshake.ackNanos == nil,
            c.handshake.synAckNanos != nil, let serverISN = c.serverISN, segment.acknowledgment == serverISN &+ 1
        {
            c.handshake.ackNanos = t
            totals.handshakesCompleted += 1
            events.append(.handshakeCompleted(connectionID: c.id, times: c.handshake))
        }
        var stream = c.stream(direction)
        let gapsBefore = stream.gaps
        let skippedBefore = stream.skippedBytes
        let (retransmitted, retransmittedBytes, outOfOrder) =
            (stream.retransmittedSegments, stream.retransmittedBytes, stream.outOfOrderSegments)
        let bufferedBefore = stream.bufferedBytes
        var chunks = stream.accept(sequence: dataSequence, payload: segment.payload, timestampNanos: t)
        if bufferedBytes + stream.bufferedBytes - bufferedBefore > maximumBufferedBytes {
            // Over the budget of all streams: this one gives up its holes rather than grow.
            while stream.hasHole { chunks += stream.skipGap(nowNanos: t) }
        }
        bufferedBytes += stream.bufferedBytes - bufferedBefore
        totals.retransmittedSegments += stream.retransmittedSegments - retransmitted
        totals.retransmittedBytes += stream.retransmittedBytes - retransmittedBytes
        totals.outOfOrderSegments += stream.outOfOrderSegments - outOfOrder
        totals.gaps += stream.gaps - gapsBefore
        totals.gapBytes += stream.skippedBytes - skippedBefore
        if stream.gaps > gapsBefore {
            events.append(.gap(connectionID: c.id, direction: direction, bytes: stream.skippedBytes - skippedBefore))
        }
        events += chunks.map { .data(connectionID: c.id, direction: direction, chunk: $0) }
        if direction == .clientToServer { c.clientStream = stream } else { c.serverStream = stream }
        let wasClosed = c.isClosed
        if flags.contains(.rst) { c.reset = true }
        if flags.contains(.fin) {
            if direction == .clientToServer { c.clientFinished = true } else { c.serverFinished = true }
        }
        if !wasClosed && c.isClosed {
            events.append(.closed(connectionID: c.id))
            closedOrder.append(c.id)
        }
    }

    /// Forgets finished and long-idle connections; idle ones are reported closed.
    private mutating func prune(nowNanos: Int64) -> [ReassemblyEvent] {
        var events: [ReassemblyEvent] = []
        for (pair, id) in byFlow {
            guard let c = connections[id] else { continue }
            let idle = nowNanos - c.lastSeenNanos
            guard (c.isClosed && idle > closedRetentionNanos) || (idleRetentionNanos > 0 && idle > idleRetentionNanos)
            else { continue }
            if !c.isClosed {
                events.append(.closed(connectionID: id))
                expiredConnections += 1
            }
            release(c)
            connections[id] = nil
            byFlow[pair] = nil
            forgottenConnections += 1
        }
        compactClosedOrder()
        return events
    }
}
