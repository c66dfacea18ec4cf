import CommandLineKit
import LatencyStats
import NIOCore
import PacketCapture
import Protocol

/// A VOEvent seen on the wire.
public struct WireEvent: Sendable, Equatable {
    public var connectionID: Int
    public var client: Endpoint
    public var server: Endpoint
    public var ivorn: String
    public var sequence: UInt64?
    /// The sender's embedded send timestamp (nil if the event carried none that parses).
    public var sentNanos: Int64?
    /// Capture time of the segment carrying the frame's last byte.
    public var wireNanos: Int64
    public var firstByteNanos: Int64
    /// When the whole frame was available in order (later than `wireNanos` only after reordering).
    public var completedNanos: Int64
    /// Capture time of the matching ack's (or nak's) last byte, on the reverse direction.
    public var responseNanos: Int64?
    public var nakked = false

    public init(
        connectionID: Int, client: Endpoint, server: Endpoint, ivorn: String, sequence: UInt64?, sentNanos: Int64?,
        wireNanos: Int64, firstByteNanos: Int64, completedNanos: Int64, responseNanos: Int64? = nil, nakked: Bool = false
    ) {
        self.connectionID = connectionID
        self.client = client
        self.server = server
        self.ivorn = ivorn
        self.sequence = sequence
        self.sentNanos = sentNanos
        self.wireNanos = wireNanos
        self.firstByteNanos = firstByteNanos
        self.completedNanos = completedNanos
        self.responseNanos = responseNanos
        self.nakked = nakked
    }

    /// nil also when the embedded send time is so far off that the difference overflows (the
    /// time comes off the wire: `sent_ns` may be any Int64).
    public var wireLatencyNanos: Int64? {
        sentNanos.flatMap { sent in
            let (latency, overflow) = wireNanos.subtractingReportingOverflow(sent)
            return overflow ? nil : latency
        }
    }
    /// Event last byte → response last byte, both on the capture's clock.
    public var ackRoundTripNanos: Int64? { responseNanos.map { $0 - wireNanos } }
}

/// Counters of everything the analysis saw or skipped.
public struct WireAnalysisCounts: Sendable, Equatable, Encodable {
    /// The frames, as every capture tool counts them.
    public var decode = DecodeCounters()
    /// TCP segments to or from the analysed port.
    public var tcpSegments = 0
    public var frames = 0
    public var events = 0
    public var acks = 0
    public var naks = 0
    public var otherTransportMessages = 0
    /// Frames whose XML did not parse as a VTP message.
    public var unparsableFrames = 0
    /// Events whose send timestamp is missing or invalid (no wire latency).
    public var eventsWithoutTimestamp = 0
    /// Acks/naks naming no event seen on their connection.
    public var unmatchedResponses = 0
    public var framingErrors = 0
    public var abandonedDirections = 0

    public init() {}

    public var packets: Int { decode.packets }
    public var notTCP: Int { decode.notTCP }
    public var ipFragments: Int { decode.fragments }
    public var truncatedPackets: Int { decode.truncated }
    public var malformedPackets: Int { decode.malformed }

    enum CodingKeys: String, CodingKey {
        case packets, bytes, frames, events, acks, naks
        case tcpSegments = "tcp_segments"
        case notTCP = "not_tcp"
        case ipFragments = "ip_fragments"
        case truncatedPackets = "truncated_packets"
        case malformedPackets = "malformed_packets"
        case otherTransportMessages = "other_transport_messages"
        case unparsableFrames = "unparsable_frames"
        case eventsWithoutTimestamp = "events_without_timestamp"
        case unmatchedResponses = "unmatched_responses"
        case framingErrors = "framing_errors"
        case abandonedDirections = "abandoned_directions"
        case connectionsSkipped = "connections_skipped"
    }

    // The decode counters sit flat beside the others, under the keys this JSON has always had.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(decode.packets, forKey: .packets)
        try c.encode(decode.bytes, forKey: .bytes)
        try c.encode(decode.notTCP, forKey: .notTCP)
        try c.encode(decode.fragments, forKey: .ipFragments)
        try c.encode(decode.truncated, forKey: .truncatedPackets)
        try c.encode(decode.malformed, forKey: .malformedPackets)
        try c.encode(tcpSegments, forKey: .tcpSegments)
        try c.encode(frames, forKey: .frames)
        try c.encode(events, forKey: .events)
        try c.encode(acks, forKey: .acks)
        try c.encode(naks, forKey: .naks)
        try c.encode(otherTransportMessages, forKey: .otherTransportMessages)
        try c.encode(unparsableFrames, forKey: .unparsableFrames)
        try c.encode(eventsWithoutTimestamp, forKey: .eventsWithoutTimestamp)
        try c.encode(unmatchedResponses, forKey: .unmatchedResponses)
        try c.encode(framingErrors, forKey: .framingErrors)
        try c.encode(abandonedDirections, forKey: .abandonedDirections)
        try c.encode(decode.connectionsSkipped, forKey: .connectionsSkipped)
    }
}

/// Captured packets in, VTP events with wire times out: decode → reassemble → frame → parse,
/// matching each event with its ack on the reverse direction. Works the same on a file and on
/// a live capture (feed packets in capture order).
public struct VTPWireAnalyzer: Sendable {
    /// Only segments to or from this port (nil: every TCP segment).
    public let port: UInt16?
    public var reassembler: TCPReassembler
    private var framer: VTPWireFramer
    public private(set) var counts = WireAnalysisCounts()
    public private(set) var problems: [WireStreamProblem] = []
    /// Every event seen, in wire order, with its response once it was seen.
    public private(set) var events: [WireEvent] = []
    /// Keep `events` (off for long live runs that only need the stream of new events).
    public var keepsEvents: Bool
    /// Take only the ivorn of events, by a quick scan of the root tag instead of a full XML
    /// parse (falls back to parsing when unsure). For a live correlation that already knows
    /// each event's send time from the application: keeps the capture thread ahead at high rates.
    public var identifiesEventsOnly = false
    private var awaitingResponse: [AwaitKey: Int] = [:]
    public private(set) var handshakeSynToSynAck = LatencyRecorder()
    public private(set) var handshakeSynAckToAck = LatencyRecorder()
    /// Cap on `problems` kept for display (all are counted).
    static let maximumProblemsKept = 100

    struct AwaitKey: Hashable, Sendable {
        var connectionID: Int
        var ivorn: String
    }

    public init(port: UInt16? = nil, maximumFrameSize: Int = VTPFraming.defaultMaximumFrameSize, keepsEvents: Bool = true) {
        self.port = port
        self.keepsEvents = keepsEvents
        reassembler = TCPReassembler(serverPorts: port.map { [$0] } ?? [])
        framer = VTPWireFramer(maximumFrameSize: maximumFrameSize)
    }

    /// Processes one captured packet; returns the events whose frames completed in it.
    public mutating func add(_ packet: CapturedPacket, linkType: UInt32) -> [WireEvent] {
        guard let segment = counts.decode.segment(from: packet, linkType: linkType) else { return [] }
        return add(segment)
    }

    /// Processes one TCP segment already decoded (and counted) by a capture driver.
    public mutating func add(_ segment: TCPSegment) -> [WireEvent] {
        if let port, segment.source.port != port && segment.destination.port != port { return [] }
        counts.tcpSegments += 1
        return handle(reassembler.process(segment))
    }

    /// End of capture: gives up on holes and frames what follows them.
    public mutating func finish() -> [WireEvent] {
        defer { counts.decode.update(from: reassembler.totals) }
        return handle(reassembler.flush())
    }

    private mutating func handle(_ reassembly: [ReassemblyEvent]) -> [WireEvent] {
        for event in reassembly {
            if case .handshakeCompleted(_, let times) = event {
                if let n = times.synToSynAckNanos { handshakeSynToSynAck.record(nanos: n) }
                if let n = times.synAckToAckNanos { handshakeSynAckToAck.record(nanos: n) }
            }
            if case .closed(let id) = event {
                // Late responses on a closed connection cannot come: forget what still waits.
                awaitingResponse = awaitingResponse.filter { $0.key.connectionID != id }
            }
        }
        var frames: [WireFrame] = []
        var newProblems: [WireStreamProblem] = []
        framer.process(reassembly, frames: &frames, problems: &newProblems)
        for problem in newProblems {
            counts.abandonedDirections += 1
            if case .framing = problem { counts.framingErrors += 1 }
            if problems.count < Self.maximumProblemsKept { problems.append(problem) }
        }
        var seen: [WireEvent] = []
        for frame in frames {
            counts.frames += 1
            // Without kept events there is nothing to match responses to: skip their XML.
            if !keepsEvents && frame.direction == .serverToClient { continue }
            if identifiesEventsOnly, let ivorn = QuickIVORN.scan(frame.payload) {
                counts.events += 1
                seen.append(
                    WireEvent(
                        connectionID: frame.connectionID, client: frame.key.client, server: frame.key.server, ivorn: ivorn,
                        sequence: nil, sentNanos: nil, wireNanos: frame.timestampNanos,
                        firstByteNanos: frame.timing.firstByteCapturedNanos, completedNanos: frame.timing.completedNanos))
                continue
            }
            let message: VTPMessage
            do {
                message = try VTPMessage.parse(frame.payload)
            } catch {
                counts.unparsableFrames += 1
                continue
            }
            switch message {
            case .voEvent(let summary):
                counts.events += 1
                let sent = try? summary.sendTimestampNanos()
                if sent == nil { counts.eventsWithoutTimestamp += 1 }
                let event = WireEvent(
                    connectionID: frame.connectionID, client: frame.key.client, server: frame.key.server,
                    ivorn: summary.ivorn, sequence: summary.sequence, sentNanos: sent, wireNanos: frame.timestampNanos,
                    firstByteNanos: frame.timing.firstByteCapturedNanos, completedNanos: frame.timing.completedNanos)
                seen.append(event)
                if keepsEvents {
                    awaitingResponse[AwaitKey(connectionID: frame.connectionID, ivorn: summary.ivorn)] = events.count
                    events.append(event)
                }
            case .transport(let transport):
                switch transport.role {
                case .ack: counts.acks += 1
                case .nak: counts.naks += 1
                default:
                    counts.otherTransportMessages += 1
                    continue
                }
                let key = AwaitKey(connectionID: frame.connectionID, ivorn: transport.origin)
                guard keepsEvents else { continue }
                guard let index = awaitingResponse.removeValue(forKey: key) else {
                    counts.unmatchedResponses += 1
                    continue
                }
                events[index].responseNanos = frame.timestampNanos
                events[index].nakked = transport.role == .nak
            }
        }
        return seen
    }

    /// Statistics over everything seen so far.
    public func report() -> WireAnalysisReport {
        var wire = LatencyRecorder()
        var ack = LatencyRecorder()
        var withoutResponse = 0
        var first = Int64.max
        var last = Int64.min
        for event in events {
            if let n = event.wireLatencyNanos { wire.record(nanos: n) }
            if let n = event.ackRoundTripNanos { ack.record(nanos: n) } else { withoutResponse += 1 }
            first = min(first, event.wireNanos)
            last = max(last, event.wireNanos)
        }
        // Events per second of capture time, first event to last (none below two events).
        let rate = events.count > 1 && last > first ? Double(events.count - 1) / (Double(last - first) / 1e9) : nil
        let totals = reassembler.totals
        return WireAnalysisReport(
            counts: counts, connections: totals.connections, handshakes: totals.handshakesCompleted,
            retransmittedSegments: totals.retransmittedSegments, retransmittedBytes: totals.retransmittedBytes,
            outOfOrderSegments: totals.outOfOrderSegments, captureGaps: totals.gaps, gapBytes: totals.gapBytes,
            eventsWithoutResponse: withoutResponse, wireLatency: wire.summary, ackRoundTrip: ack.summary,
            handshakeSynToSynAck: handshakeSynToSynAck.summary, handshakeSynAckToAck: handshakeSynAckToAck.summary,
            eventsPerSecond: rate)
    }
}

/// What `vtp-capture analyze --json` prints.
public struct WireAnalysisReport: Sendable, Equatable, Encodable {
    public var counts: WireAnalysisCounts
    public var connections: Int
    public var handshakes: Int
    public var retransmittedSegments: Int
    public var retransmittedBytes: Int
    public var outOfOrderSegments: Int
    public var captureGaps: Int
    public var gapBytes: UInt64
    public var eventsWithoutResponse: Int
    /// Capture time of the event's last byte − its embedded send time.
    public var wireLatency: LatencySummary
    /// Event's last byte → its ack's last byte, on the capture host's clock.
    public var ackRoundTrip: LatencySummary
    public var handshakeSynToSynAck: LatencySummary
    public var handshakeSynAckToAck: LatencySummary
    /// Events per second of capture time (nil below two events).
    public var eventsPerSecond: Double?

    enum CodingKeys: String, CodingKey {
        case counts, connections, handshakes
        case eventsPerSecond = "events_per_s"
        case retransmittedSegments = "retransmitted_segments"
        case retransmittedBytes = "retransmitted_bytes"
        case outOfOrderSegments = "out_of_order_segments"
        case captureGaps = "capture_gaps"
        case gapBytes = "gap_bytes"
        case eventsWithoutResponse = "events_without_ack"
        case wireLatency = "wire_latency_s"
        case ackRoundTrip = "ack_rtt_s"
        case handshakeSynToSynAck = "handshake_syn_to_synack_s"
        case handshakeSynAckToAck = "handshake_synack_to_ack_s"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(counts, forKey: .counts)
        try c.encode(connections, forKey: .connections)
        try c.encode(handshakes, forKey: .handshakes)
        try c.encode(retransmittedSegments, forKey: .retransmittedSegments)
        try c.encode(retransmittedBytes, forKey: .retransmittedBytes)
        try c.encode(outOfOrderSegments, forKey: .outOfOrderSegments)
        try c.encode(captureGaps, forKey: .captureGaps)
        try c.encode(gapBytes, forKey: .gapBytes)
        try c.encode(eventsWithoutResponse, forKey: .eventsWithoutResponse)
        try c.encode(wireLatency, nullIf: wireLatency.count == 0, forKey: .wireLatency)
        try c.encode(ackRoundTrip, nullIf: ackRoundTrip.count == 0, forKey: .ackRoundTrip)
        try c.encode(handshakeSynToSynAck, nullIf: handshakeSynToSynAck.count == 0, forKey: .handshakeSynToSynAck)
        try c.encode(handshakeSynAckToAck, nullIf: handshakeSynAckToAck.count == 0, forKey: .handshakeSynAckToAck)
        try c.encode(eventsPerSecond, forKey: .eventsPerSecond)
    }
}
