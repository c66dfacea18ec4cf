import NIOCore
import PGWire
import PacketCapture

/// What kind of client request a timing belongs to.
public enum PGRequestKind: String, Sendable, Codable {
    /// A simple-protocol Query ('Q').
    case simpleQuery = "simple"
    /// Parse/Bind/Describe/Execute… up to Sync (postgres-nio, JDBC, libpq's PQexecParams).
    case extendedQuery = "extended"
    /// The startup packet through authentication to the first ReadyForQuery.
    case startup
    /// A FunctionCall ('F').
    case functionCall = "function"
}

/// The wire timing of one client request, all times being capture times (ns since the epoch).
public struct PGQueryTiming: Sendable {
    public var flow: PGFlowKey
    public var kind: PGRequestKind
    /// The SQL text (Query, or the first Parse of an extended request), at most 1 KiB.
    public var text: String
    /// The packet that carried the request's last byte seen before the server answered
    /// (the server cannot answer before it has the whole request).
    public var requestNanos: Int64
    /// The first server packet carrying a byte of the response.
    public var firstResponseNanos: Int64
    /// The server packet carrying the end of ReadyForQuery: the response is complete.
    public var readyNanos: Int64
    /// TCP sequence number just past ReadyForQuery's last byte; the client's ACK must reach it.
    public var readyEndSequence: UInt32
    /// The client's pure ACK covering ReadyForQuery; nil when the client acked it only by
    /// piggybacking on data (then there is no ACK delay to measure) or never did.
    public var ackNanos: Int64?
    /// The client acknowledged ReadyForQuery inside a data (or FIN) segment.
    public var ackPiggybacked: Bool
    /// The server's ErrorResponse message for this request, if any (SQLSTATE: message).
    public var error: String?

    /// Request packet → first response packet.
    public var responseNanos: Int64 { firstResponseNanos - requestNanos }
    /// Request packet → ReadyForQuery packet: the request's round trip as seen on the wire.
    public var completionNanos: Int64 { readyNanos - requestNanos }
    /// ReadyForQuery packet → the client's pure ACK covering it.
    public var ackDelayNanos: Int64? { ackNanos.map { $0 - readyNanos } }
}

/// Health and coverage of an inference run.
public struct PGSniffCounters: Sendable, Equatable, Codable {
    public var segments = 0
    /// Segments not to or from the server port.
    public var ignoredSegments = 0
    public var flows = 0
    /// Connections already open when capture started (message boundaries found by heuristics).
    public var midStreamFlows = 0
    /// Connections that switched to TLS or GSS encryption: unreadable, skipped.
    public var encryptedFlows = 0
    public var retransmittedSegments = 0
    public var outOfOrderSegments = 0
    /// Segments skipped while looking for message boundaries in a mid-stream connection.
    public var unsyncedSegments = 0
    /// Undecodable bytes or a lost segment; the connection is resynchronised.
    public var protocolErrors = 0
    /// Requests answered by ReadyForQuery.
    public var requests = 0
    public var pureAcks = 0
    public var piggybackedAcks = 0
    /// Answered requests whose ReadyForQuery was never acknowledged in the capture.
    public var unacknowledged = 0
    /// Requests still without ReadyForQuery when their connection ended or capture stopped.
    public var unanswered = 0
    /// Server messages with no outstanding request to belong to.
    public var unsolicitedResponses = 0
    /// Connections forgotten after `idleTimeoutNanos` without a packet (FIN/RST never seen).
    public var expiredFlows = 0

    public init() {}
}

/// Infers PostgreSQL latency from TCP segments alone.
///
/// Feed it every captured segment in capture order. It follows each connection (by
/// 5-tuple) separately, reassembles both directions by sequence number (dropping
/// retransmitted bytes, holding out-of-order segments until the gap fills), frames the
/// PostgreSQL protocol with PGWire, pairs requests with responses in order (so pipelined
/// requests are right), and pairs each ReadyForQuery with the first client segment whose
/// acknowledgment number covers it. A pure value type: tests drive it with crafted segments.
public struct PGLatencyInference: Sendable {
    public let serverPorts: Set<UInt16>
    public private(set) var counters = PGSniffCounters()
    private var flows: [PGFlowKey: FlowState] = [:]
    /// Longest SQL text kept per timing.
    static let maximumTextLength = 1024
    /// Out-of-order segments held per direction before the gap is declared lost.
    static let maximumHeldSegments = 512
    /// A connection silent this long (capture time) is forgotten, so that a long live run
    /// whose capture missed some FIN/RST does not grow without bound.
    public let idleTimeoutNanos: Int64
    private var lastSweepNanos: Int64?

    public init(serverPorts: Set<UInt16>, idleTimeoutNanos: Int64 = 600_000_000_000) {
        self.serverPorts = serverPorts
        self.idleTimeoutNanos = idleTimeoutNanos
    }

    public init(serverPort: UInt16) { self.init(serverPorts: [serverPort]) }

    /// Connections currently tracked.
    public var openFlows: Int { flows.count }

    /// Processes one segment; returns the timings it completed (usually zero or one).
    public mutating func ingest(_ segment: TCPSegment) -> [PGQueryTiming] {
        counters.segments += 1
        var expired: [PGQueryTiming] = []
        if lastSweepNanos == nil { lastSweepNanos = segment.timestampNanos }
        if segment.timestampNanos - lastSweepNanos! >= idleTimeoutNanos / 10 {
            lastSweepNanos = segment.timestampNanos
            expired = expireIdleFlows(now: segment.timestampNanos)
        }
        return expired + process(segment)
    }

    private mutating func expireIdleFlows(now: Int64) -> [PGQueryTiming] {
        var output: [PGQueryTiming] = []
        for (key, flow) in flows where now - flow.lastSeenNanos > idleTimeoutNanos {
            flows.removeValue(forKey: key)
            counters.expiredFlows += 1
            output += close(flow)
        }
        return output
    }

    private mutating func process(_ segment: TCPSegment) -> [PGQueryTiming] {
        let fromClient: Bool
        let key: PGFlowKey
        if serverPorts.contains(segment.destination.port) {
            fromClient = true
            key = PGFlowKey(client: segment.source, server: segment.destination)
        } else if serverPorts.contains(segment.source.port) {
            fromClient = false
            key = PGFlowKey(client: segment.destination, server: segment.source)
        } else {
            counters.ignoredSegments += 1
            return []
        }
        var output: [PGQueryTiming] = []
        let flags = segment.flags

        if flags.contains(.syn) {
            if fromClient && !flags.contains(.ack) {
                // A new connection (or the port reused): start from scratch, parsing from the startup packet.
                if let old = flows.removeValue(forKey: key) { output += close(old) }
                var flow = FlowState(key: key, midStream: false)
                flow.client.startAt(sequence: segment.sequence &+ 1)
                flow.lastSeenNanos = segment.timestampNanos
                flows[key] = flow
                counters.flows += 1
            } else if !fromClient {
                if flows[key] == nil {
                    // Capture began between SYN and SYN-ACK: the SYN-ACK still pins both sides.
                    var flow = FlowState(key: key, midStream: false)
                    flow.client.startAt(sequence: segment.acknowledgment)
                    flows[key] = flow
                    counters.flows += 1
                }
                flows[key]!.server.startAt(sequence: segment.sequence &+ 1)
                flows[key]!.lastSeenNanos = segment.timestampNanos
            }
            return output
        }

        if flows[key] == nil {
            // Only data can start following a connection joined mid-stream (a bare ACK or FIN
            // is often the tail of one that just closed).
            if segment.payload.isEmpty || flags.contains(.rst) { return [] }
            flows[key] = FlowState(key: key, midStream: true)
            flows[key]!.lastSeenNanos = segment.timestampNanos
            counters.flows += 1
            counters.midStreamFlows += 1
        }
        var flow = flows.removeValue(forKey: key)!
        flow.lastSeenNanos = segment.timestampNanos

        if fromClient && flags.contains(.ack) {
            output += flow.acknowledge(segment, counters: &counters)
        }
        if !segment.payload.isEmpty && !flow.encrypted {
            flow.receive(segment, fromClient: fromClient, counters: &counters)
        }
        if flags.contains(.fin) {
            if fromClient { flow.clientFinished = true } else { flow.serverFinished = true }
        }
        if flags.contains(.rst) || (flow.clientFinished && flow.serverFinished) {
            output += close(flow)
        } else {
            flows[key] = flow
        }
        return output
    }

    /// End of capture: reports what is still waiting for an ACK (without one) and forgets everything.
    public mutating func finish() -> [PGQueryTiming] {
        var output: [PGQueryTiming] = []
        for key in flows.keys.sorted(by: { ($0.client, $0.server) < ($1.client, $1.server) }) {
            output += close(flows[key]!)
        }
        flows.removeAll()
        return output
    }

    private mutating func close(_ flow: FlowState) -> [PGQueryTiming] {
        counters.unacknowledged += flow.awaitingAck.count
        counters.unanswered += flow.requests.count
        return flow.awaitingAck
    }
}

/// A request sent by the client and not yet answered by ReadyForQuery.
struct PendingRequest {
    var kind: PGRequestKind
    var text: String
    var requestNanos: Int64
    /// Sync / Query / FunctionCall / startup seen: no more client messages belong to it.
    var terminated: Bool
    var firstResponseNanos: Int64?
    var error: String?
}

/// One direction's byte stream: reassembly by sequence number, then message framing.
struct StreamState {
    /// Sequence number of the next byte expected; nil until the stream's start is known.
    var nextSequence: UInt32?
    /// Sequence number of stream offset 0.
    var baseSequence: UInt32 = 0
    /// Bytes received in order and not yet framed.
    var buffer = ByteBuffer()
    /// Stream offset of `buffer.readerIndex`.
    var consumedOffset: Int64 = 0
    var deliveredOffset: Int64 = 0
    /// Capture time of each delivered segment, by the stream offset just past it.
    var chunks: [(endOffset: Int64, nanos: Int64)] = []
    var held: [UInt32: (payload: [UInt8], nanos: Int64)] = [:]

    var synced: Bool { nextSequence != nil }

    mutating func startAt(sequence: UInt32) {
        self = StreamState()
        nextSequence = sequence
        baseSequence = sequence
    }

    /// Adds a segment's payload; returns false if the gap before it grew too long to wait for.
    mutating func add(_ payload: [UInt8], sequence: UInt32, nanos: Int64, counters: inout PGSniffCounters) -> Bool {
        guard let expected = nextSequence else { return true }
        let offset = SequenceNumber.distance(from: expected, to: sequence)
        if offset + Int64(payload.count) <= 0 {
            counters.retransmittedSegments += 1
            return true
        }
        if offset > 0 {
            counters.outOfOrderSegments += 1
            if held[sequence] == nil || held[sequence]!.payload.count < payload.count {
                held[sequence] = (payload, nanos)
            }
            return held.count <= PGLatencyInference.maximumHeldSegments
        }
        if offset < 0 { counters.retransmittedSegments += 1 }  // partly new: keep the new tail
        deliver(payload[Int(-offset)...], nanos: nanos)
        // Held segments that now fit (in sequence order).
        while !held.isEmpty, let next = nextSequence {
            var progressed = false
            for (sequence, entry) in held {
                let offset = SequenceNumber.distance(from: next, to: sequence)
                guard offset <= 0 else { continue }
                held.removeValue(forKey: sequence)
                if offset + Int64(entry.payload.count) > 0 {
                    deliver(entry.payload[Int(-offset)...], nanos: entry.nanos)
                }
                progressed = true
                break
            }
            if !progressed { break }
        }
        return true
    }

    private mutating func deliver(_ bytes: ArraySlice<UInt8>, nanos: Int64) {
        guard !bytes.isEmpty else { return }
        buffer.writeBytes(bytes)
        deliveredOffset += Int64(bytes.count)
        nextSequence = nextSequence! &+ UInt32(truncatingIfNeeded: bytes.count)
        chunks.append((deliveredOffset, nanos))
    }

    /// Capture time of the segment that carried the byte at `offset`.
    func nanos(ofByteAt offset: Int64) -> Int64 {
        for chunk in chunks where chunk.endOffset > offset { return chunk.nanos }
        return chunks.last?.nanos ?? 0
    }

    /// After framing a message that ended at `consumedOffset`: forget what is behind us.
    mutating func trim() {
        while let first = chunks.first, first.endOffset <= consumedOffset { chunks.removeFirst() }
        if buffer.readerIndex > 65_536 { buffer.discardReadBytes() }
    }
}

/// A framed message with where it sat in time and sequence space.
struct FramedMessage<Message> {
    var message: Message
    var firstByteNanos: Int64
    var lastByteNanos: Int64
    /// Sequence number just past the message's last byte.
    var endSequence: UInt32
}

struct FlowState {
    let key: PGFlowKey
    var client = StreamState()
    var server = StreamState()
    /// Both directions' decoders from the startup packet on; nil for connections joined
    /// mid-stream, which are framed message by message after resynchronising.
    var conversation: PGConversation?
    var encrypted = false
    var requests: [PendingRequest] = []
    var awaitingAck: [PGQueryTiming] = []
    var clientFinished = false
    var serverFinished = false
    var lastSeenNanos: Int64 = 0

    init(key: PGFlowKey, midStream: Bool) {
        self.key = key
        conversation = midStream ? nil : PGConversation()
    }

    mutating func acknowledge(_ segment: TCPSegment, counters: inout PGSniffCounters) -> [PGQueryTiming] {
        guard !awaitingAck.isEmpty else { return [] }
        var done: [PGQueryTiming] = []
        let pure = segment.isPureAck
        while let first = awaitingAck.first, SequenceNumber.lessOrEqual(first.readyEndSequence, segment.acknowledgment) {
            var timing = awaitingAck.removeFirst()
            if pure {
                timing.ackNanos = segment.timestampNanos
                counters.pureAcks += 1
            } else {
                timing.ackPiggybacked = true
                counters.piggybackedAcks += 1
            }
            done.append(timing)
        }
        return done
    }

    mutating func receive(_ segment: TCPSegment, fromClient: Bool, counters: inout PGSniffCounters) {
        if fromClient {
            if !client.synced {
                guard Self.tiles(segment.payload, allowedTypes: Self.frontendTypes) else {
                    counters.unsyncedSegments += 1
                    return
                }
                client.startAt(sequence: segment.sequence)
            }
            guard client.add(segment.payload, sequence: segment.sequence, nanos: segment.timestampNanos, counters: &counters)
            else { return lostSync(&counters) }
        } else {
            if !server.synced {
                // Only worth locking on once there is a request for the answer to belong to.
                guard client.synced, !requests.isEmpty, Self.tiles(segment.payload, allowedTypes: Self.backendTypes) else {
                    counters.unsyncedSegments += 1
                    return
                }
                server.startAt(sequence: segment.sequence)
            }
            guard server.add(segment.payload, sequence: segment.sequence, nanos: segment.timestampNanos, counters: &counters)
            else { return lostSync(&counters) }
        }
        do {
            if fromClient {
                while let framed = try nextClientMessage() { handleClient(framed) }
            } else {
                while let framed = try nextServerMessage() {
                    handleServer(framed, counters: &counters)
                    if encrypted { return }
                }
            }
        } catch {
            lostSync(&counters)
        }
    }

    /// Undecodable bytes or a gap that never filled: drop what is outstanding and
    /// find message boundaries again as for a connection joined mid-stream.
    private mutating func lostSync(_ counters: inout PGSniffCounters) {
        counters.protocolErrors += 1
        counters.unanswered += requests.count
        requests.removeAll()
        client = StreamState()
        server = StreamState()
        conversation = nil
    }

    private mutating func nextClientMessage() throws -> FramedMessage<PGFrontendMessage>? {
        let start = client.buffer.readerIndex
        let message: PGFrontendMessage?
        if conversation != nil {
            message = try conversation!.nextFromClient(&client.buffer)
        } else {
            message = try PGFraming.nextTypedMessage(from: &client.buffer).map(PGFrontendDecoder.decode)
        }
        guard let message else { return nil }
        return framed(message, size: client.buffer.readerIndex - start, stream: &client)
    }

    private mutating func nextServerMessage() throws -> FramedMessage<PGBackendMessage>? {
        let start = server.buffer.readerIndex
        let message: PGBackendMessage?
        if conversation != nil {
            message = try conversation!.nextFromServer(&server.buffer)
        } else {
            message = try PGFraming.nextTypedMessage(from: &server.buffer).map(PGBackendDecoder.decode)
        }
        guard let message else { return nil }
        return framed(message, size: server.buffer.readerIndex - start, stream: &server)
    }

    private func framed<Message>(_ message: Message, size: Int, stream: inout StreamState) -> FramedMessage<Message> {
        let startOffset = stream.consumedOffset
        stream.consumedOffset += Int64(size)
        let result = FramedMessage(
            message: message,
            firstByteNanos: stream.nanos(ofByteAt: startOffset),
            lastByteNanos: stream.nanos(ofByteAt: max(startOffset, stream.consumedOffset - 1)),
            endSequence: stream.baseSequence &+ UInt32(truncatingIfNeeded: stream.consumedOffset))
        stream.trim()
        return result
    }

    private mutating func handleClient(_ framed: FramedMessage<PGFrontendMessage>) {
        let nanos = framed.lastByteNanos
        switch framed.message {
        case .startup:
            requests.append(PendingRequest(kind: .startup, text: "", requestNanos: nanos, terminated: true))
        case .query(let sql):
            closeOpenExtended()
            requests.append(
                PendingRequest(kind: .simpleQuery, text: Self.clipped(sql), requestNanos: nanos, terminated: true))
        case .parse(_, let sql, _):
            openExtended(at: nanos, text: sql)
        case .bind, .describe, .execute, .close, .flush:
            openExtended(at: nanos, text: nil)
        case .sync:
            openExtended(at: nanos, text: nil)
            requests[requests.count - 1].terminated = true
        case .functionCall:
            closeOpenExtended()
            requests.append(PendingRequest(kind: .functionCall, text: "", requestNanos: nanos, terminated: true))
        case .sslRequest, .gssEncRequest, .cancelRequest, .authenticationResponse, .copyData, .copyDone, .copyFail,
            .terminate, .unknown:
            break  // part of a request already under way, or no answer expected
        }
    }

    /// Extended-protocol messages up to Sync form one request.
    private mutating func openExtended(at nanos: Int64, text: String?) {
        if let last = requests.last, last.kind == .extendedQuery, !last.terminated {
            if last.firstResponseNanos == nil { requests[requests.count - 1].requestNanos = nanos }
            if last.text.isEmpty, let text { requests[requests.count - 1].text = Self.clipped(text) }
        } else {
            requests.append(
                PendingRequest(kind: .extendedQuery, text: text.map(Self.clipped) ?? "", requestNanos: nanos, terminated: false))
        }
    }

    /// A Query after unsynced extended messages: the server answers those first anyway.
    private mutating func closeOpenExtended() {
        if let last = requests.last, last.kind == .extendedQuery, !last.terminated {
            requests[requests.count - 1].terminated = true
        }
    }

    private mutating func handleServer(_ framed: FramedMessage<PGBackendMessage>, counters: inout PGSniffCounters) {
        switch framed.message {
        case .encryptionResponse(let accepted):
            if accepted {
                encrypted = true
                counters.encryptedFlows += 1
                requests.removeAll()
            }
            return
        case .notification:
            return  // asynchronous, answers nothing
        default:
            break
        }
        guard !requests.isEmpty else {
            counters.unsolicitedResponses += 1
            return
        }
        if requests[0].firstResponseNanos == nil { requests[0].firstResponseNanos = framed.firstByteNanos }
        switch framed.message {
        case .errorResponse(let fields):
            if requests[0].error == nil {
                requests[0].error = (fields.sqlState.map { $0 + ": " } ?? "") + (fields.message ?? "error")
            }
        case .readyForQuery:
            let request = requests.removeFirst()
            counters.requests += 1
            awaitingAck.append(
                PGQueryTiming(
                    flow: key, kind: request.kind, text: request.text, requestNanos: request.requestNanos,
                    firstResponseNanos: request.firstResponseNanos ?? framed.firstByteNanos,
                    readyNanos: framed.lastByteNanos, readyEndSequence: framed.endSequence, ackNanos: nil,
                    ackPiggybacked: false, error: request.error))
        default:
            break
        }
    }

    static func clipped(_ text: String) -> String {
        text.utf8.count <= PGLatencyInference.maximumTextLength
            ? text : String(decoding: text.utf8.prefix(PGLatencyInference.maximumTextLength), as: UTF8.self)
    }

    static let frontendTypes: Set<UInt8> = Set("QPBDECSHXpdcfF".utf8)
    static let backendTypes: Set<UInt8> = Set("RSKZTDCEN123nsItAGHWdcVv".utf8)

    /// Whether `bytes` is exactly a run of complete typed messages with plausible types and
    /// lengths: the test used to find message boundaries in a connection joined mid-stream.
    static func tiles(_ bytes: [UInt8], allowedTypes: Set<UInt8>) -> Bool {
        var index = 0
        while index < bytes.count {
            guard bytes.count - index >= 5, allowedTypes.contains(bytes[index]) else { return false }
            let length =
                Int(bytes[index + 1]) << 24 | Int(bytes[index + 2]) << 16 | Int(bytes[index + 3]) << 8 | Int(bytes[index + 4])
            guard length >= 4, length <= 1 << 24 else { return false }
            index += 1 + length
        }
        return index == bytes.count
    }
}
