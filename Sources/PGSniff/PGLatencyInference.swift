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
/// Feed it every captured segment in capture order. PacketCapture's `TCPReassembler` follows
/// each connection and reassembles both directions (retransmitted bytes dropped, out-of-order
/// segments held until the hole fills, sequence numbers unwrapped); this type frames the
/// PostgreSQL protocol on the reassembled bytes with PGWire, pairs requests with responses in
/// order (so pipelined requests are right), and pairs each ReadyForQuery with the first client
/// segment whose acknowledgment number covers it.
///
/// Capture loss is treated one way: a hole the reassembly gives up on (open for
/// `maximumHoleAgeNanos` of capture time, or at the end) is counted (`TCPReassembler.Totals.gaps`,
/// reported as the decode counters' reassembly gaps), the connection's outstanding requests are
/// dropped (`unanswered`) and both directions are resynchronised on the next clean run of
/// messages, as for a connection joined mid-stream. A pure value type: tests drive it with
/// crafted segments.
public struct PGLatencyInference: Sendable {
    public let serverPorts: Set<UInt16>
    public private(set) var counters = PGSniffCounters()
    private var reassembler: TCPReassembler
    /// Per connection of the reassembler, by its id.
    private var flows: [Int: FlowState] = [:]
    private var flowIDs: [PGFlowKey: Int] = [:]
    /// Longest SQL text kept per timing.
    static let maximumTextLength = 1024
    /// A hole in a stream open this long (capture time) is capture loss: skipped, and the
    /// connection resynchronised. Far longer than a retransmission on loopback or a LAN.
    public static let maximumHoleAgeNanos: Int64 = 3_000_000_000
    /// A connection silent this long (capture time) is forgotten, so that a long live run
    /// whose capture missed some FIN/RST does not grow without bound.
    public let idleTimeoutNanos: Int64

    public init(serverPorts: Set<UInt16>, idleTimeoutNanos: Int64 = 600_000_000_000) {
        self.serverPorts = serverPorts
        self.idleTimeoutNanos = idleTimeoutNanos
        reassembler = TCPReassembler(serverPorts: serverPorts)
        reassembler.idleRetentionNanos = idleTimeoutNanos
        reassembler.maximumHoleAgeNanos = Self.maximumHoleAgeNanos
    }

    public init(serverPort: UInt16) { self.init(serverPorts: [serverPort]) }

    /// Connections currently tracked.
    public var openFlows: Int { flows.count }

    /// The reassembly's totals (retransmissions, holes given up on).
    public var reassemblyTotals: TCPReassembler.Totals { reassembler.totals }

    /// Processes one segment; returns the timings it completed (usually zero or one).
    public mutating func ingest(_ segment: TCPSegment) -> [PGQueryTiming] {
        counters.segments += 1
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
        // The acknowledgment first: it answers server data framed before this segment.
        if fromClient, segment.flags.contains(.ack), let id = flowIDs[key], var flow = flows[id],
            let ackOffset = serverStream(of: flow, id: id)?.offset(ofSequence: segment.acknowledgment)
        {
            output += flow.acknowledge(segment, ackOffset: ackOffset, counters: &counters)
            flows[id] = flow
        }
        output += apply(reassembler.process(segment), openedBy: segment, key: key)
        let totals = reassembler.totals
        counters.retransmittedSegments = totals.retransmittedSegments
        counters.outOfOrderSegments = totals.outOfOrderSegments
        counters.expiredFlows = reassembler.expiredConnections
        return output
    }

    /// The server → client byte stream of a connection, as the reassembler holds it.
    private func serverStream(of flow: FlowState, id: Int) -> TCPByteStream? {
        reassembler.connections[id].map { flow.flipped ? $0.clientStream : $0.serverStream }
    }

    /// Follows the reassembler: new connections, their bytes, holes and ends.
    private mutating func apply(_ events: [ReassemblyEvent], openedBy segment: TCPSegment?, key: PGFlowKey?) -> [PGQueryTiming] {
        var output: [PGQueryTiming] = []
        for event in events {
            switch event {
            case .opened(let id, let reassemblerKey):
                guard let segment, let key else { continue }
                // Only a SYN or SYN-ACK shows where the streams begin; anything else joins mid-stream.
                let midStream = !segment.flags.contains(.syn)
                flows[id] = FlowState(key: key, midStream: midStream, flipped: reassemblerKey.client != key.client)
                flowIDs[key] = id
                counters.flows += 1
                if midStream { counters.midStreamFlows += 1 }
            case .data(let id, let direction, let chunk):
                guard var flow = flows[id], !flow.encrypted else { continue }
                let clientBytes = (direction == .clientToServer) != flow.flipped
                let serverStart = clientBytes ? nil : serverStream(of: flow, id: id)?.initialSequence
                flow.receive(chunk, fromClient: clientBytes, serverInitialSequence: serverStart, counters: &counters)
                flows[id] = flow
            case .gap(let id, _, _):
                // Counted by the reassembler (reassembly gaps); the connection starts over.
                flows[id]?.lostSync(&counters)
            case .closed(let id):
                guard let flow = flows.removeValue(forKey: id) else { continue }
                if flowIDs[flow.key] == id { flowIDs[flow.key] = nil }
                output += close(flow)
            case .handshakeCompleted:
                break
            }
        }
        return output
    }

    /// End of capture: frames what follows remaining holes, reports what is still waiting for an
    /// ACK (without one) and forgets everything.
    public mutating func finish() -> [PGQueryTiming] {
        var output = apply(reassembler.flush(), openedBy: nil, key: nil)
        let remaining = flows.values.sorted { ($0.key.client, $0.key.server) < ($1.key.client, $1.key.server) }
        for flow in remaining { output += close(flow) }
        flows.removeAll()
        flowIDs.removeAll()
        counters.retransmittedSegments = reassembler.totals.retransmittedSegments
        counters.outOfOrderSegments = reassembler.totals.outOfOrderSegments
        return output
    }

    private mutating func close(_ flow: FlowState) -> [PGQueryTiming] {
        counters.unacknowledged += flow.awaitingAck.count
        counters.unanswered += flow.requests.count
        return flow.awaitingAck.map(\.timing)
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

/// One direction's reassembled bytes, framed into PostgreSQL messages.
struct DirectionFramer {
    /// A message boundary is known: the stream's start, or a clean run of messages mid-stream.
    var synced: Bool
    var buffer = ByteBuffer()
    /// Stream offset of `buffer.readerIndex`.
    var offset: UInt64 = 0
    var timeline = StreamTimeline()

    init(synced: Bool) { self.synced = synced }

    static func starting(at offset: UInt64) -> DirectionFramer {
        var framer = DirectionFramer(synced: true)
        framer.offset = offset
        return framer
    }

    /// Adds in-order bytes; false when they do not continue what is buffered.
    mutating func append(_ chunk: StreamChunk) -> Bool {
        guard chunk.offset == offset + UInt64(buffer.readableBytes) else { return false }
        buffer.writeBytes(chunk.bytes)
        timeline.append(chunk)
        return true
    }

    /// After a message of `size` bytes was read from the buffer: where it sat in time and in the stream.
    mutating func framed(size: Int) -> (timing: StreamTimeline.MessageTiming, endOffset: UInt64)? {
        let start = offset
        offset += UInt64(size)
        if buffer.readerIndex > 65_536 { buffer.discardReadBytes() }
        return timeline.consume(from: start, to: offset).map { ($0, offset) }
    }
}

/// A framed message with where it sat in time and in the stream.
struct FramedMessage<Message> {
    var message: Message
    var firstByteNanos: Int64
    var lastByteNanos: Int64
    /// Stream offset just past the message's last byte.
    var endOffset: UInt64
}

/// An answered request waiting for the client's ACK of its ReadyForQuery.
struct AwaitingAck {
    var timing: PGQueryTiming
    /// Server stream offset just past ReadyForQuery: the ACK must reach it.
    var endOffset: UInt64
}

struct FlowState {
    let key: PGFlowKey
    /// The reassembler named the other side the client (it saw no SYN and guessed otherwise).
    let flipped: Bool
    var client: DirectionFramer
    var server: DirectionFramer
    /// Both directions' decoders from the startup packet on; nil for connections joined
    /// mid-stream, which are framed message by message after resynchronising.
    var conversation: PGConversation?
    var encrypted = false
    var requests: [PendingRequest] = []
    var awaitingAck: [AwaitingAck] = []

    init(key: PGFlowKey, midStream: Bool, flipped: Bool) {
        self.key = key
        self.flipped = flipped
        conversation = midStream ? nil : PGConversation()
        client = midStream ? DirectionFramer(synced: false) : .starting(at: 0)
        server = midStream ? DirectionFramer(synced: false) : .starting(at: 0)
    }

    /// `ackOffset`: the server stream offset the segment's acknowledgment number names.
    mutating func acknowledge(_ segment: TCPSegment, ackOffset: Int64, counters: inout PGSniffCounters) -> [PGQueryTiming] {
        guard !awaitingAck.isEmpty else { return [] }
        var done: [PGQueryTiming] = []
        let pure = segment.isPureAck
        while let first = awaitingAck.first, ackOffset >= 0, UInt64(ackOffset) >= first.endOffset {
            var timing = awaitingAck.removeFirst().timing
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

    /// In-order bytes of one direction. `serverInitialSequence`: the sequence number of the
    /// server stream's offset 0 (for the timings' `readyEndSequence`).
    mutating func receive(
        _ chunk: StreamChunk, fromClient: Bool, serverInitialSequence: UInt32?, counters: inout PGSniffCounters
    ) {
        if fromClient {
            if !client.synced {
                guard Self.tiles(chunk.bytes, allowedTypes: Self.frontendTypes) else {
                    counters.unsyncedSegments += 1
                    return
                }
                client = .starting(at: chunk.offset)
            }
            guard client.append(chunk) else { return lostSync(&counters) }
        } else {
            if !server.synced {
                // Only worth locking on once there is a request for the answer to belong to.
                guard client.synced, !requests.isEmpty, Self.tiles(chunk.bytes, allowedTypes: Self.backendTypes) else {
                    counters.unsyncedSegments += 1
                    return
                }
                server = .starting(at: chunk.offset)
            }
            guard server.append(chunk) else { return lostSync(&counters) }
        }
        do {
            if fromClient {
                while let framed = try nextClientMessage() { handleClient(framed) }
            } else {
                while let framed = try nextServerMessage() {
                    handleServer(framed, serverInitialSequence: serverInitialSequence, counters: &counters)
                    if encrypted { return }
                }
            }
        } catch {
            counters.protocolErrors += 1
            lostSync(&counters)
        }
    }

    /// Undecodable bytes or lost ones: drop what is outstanding and find message boundaries
    /// again as for a connection joined mid-stream.
    mutating func lostSync(_ counters: inout PGSniffCounters) {
        counters.unanswered += requests.count
        requests.removeAll()
        client = DirectionFramer(synced: false)
        server = DirectionFramer(synced: false)
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
        return Self.framed(message, size: client.buffer.readerIndex - start, in: &client)
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
        return Self.framed(message, size: server.buffer.readerIndex - start, in: &server)
    }

    private static func framed<Message>(_ message: Message, size: Int, in framer: inout DirectionFramer)
        -> FramedMessage<Message>?
    {
        // Every framed byte came from an appended chunk, so the timeline covers it.
        guard let (timing, end) = framer.framed(size: size) else { return nil }
        return FramedMessage(
            message: message, firstByteNanos: timing.firstByteCapturedNanos, lastByteNanos: timing.lastByteCapturedNanos,
            endOffset: end)
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

    private mutating func handleServer(
        _ framed: FramedMessage<PGBackendMessage>, serverInitialSequence: UInt32?, counters: inout PGSniffCounters
    ) {
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
            let endSequence = (serverInitialSequence ?? 0) &+ UInt32(truncatingIfNeeded: framed.endOffset)
            let timing = PGQueryTiming(
                flow: key, kind: request.kind, text: request.text, requestNanos: request.requestNanos,
                firstResponseNanos: request.firstResponseNanos ?? framed.firstByteNanos,
                readyNanos: framed.lastByteNanos, readyEndSequence: endSequence, ackNanos: nil,
                ackPiggybacked: false, error: request.error)
            awaitingAck.append(AwaitingAck(timing: timing, endOffset: framed.endOffset))
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
