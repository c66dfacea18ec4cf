/// Bytes of one TCP direction that have become contiguous, with when they were seen.
public struct StreamChunk: Sendable, Equatable {
    /// Stream offset of the first byte (0 = the first byte after the SYN).
    public var offset: UInt64
    public var bytes: [UInt8]
    /// Capture time of the first copy of the segment that carried these bytes.
    public var capturedNanos: Int64
    /// When the bytes became deliverable in order: `capturedNanos`, or later if they
    /// arrived ahead of a hole and waited for it to be filled.
    public var deliveredNanos: Int64

    public init(offset: UInt64, bytes: [UInt8], capturedNanos: Int64, deliveredNanos: Int64) {
        self.offset = offset
        self.bytes = bytes
        self.capturedNanos = capturedNanos
        self.deliveredNanos = deliveredNanos
    }

    public var endOffset: UInt64 { offset + UInt64(bytes.count) }
}

/// Reassembles one direction of a TCP connection into an in-order byte stream.
///
/// A pure value type: feed it segments (sequence number, payload, capture time) in capture
/// order and it returns the bytes that became contiguous. Sequence numbers are unwrapped to
/// 64-bit stream offsets relative to the last delivered byte, so wraparound past 2³² is
/// transparent. Retransmitted bytes are delivered once (first copy wins); segments ahead of a
/// hole wait until it is filled, or until `skipGap` gives up on the hole (capture loss).
public struct TCPByteStream: Sendable {
    struct Pending: Sendable {
        var offset: UInt64
        var bytes: [UInt8]
        var capturedNanos: Int64
        var end: UInt64 { offset + UInt64(bytes.count) }
    }

    /// Sequence number of stream offset 0 (ISN + 1); nil until a SYN or the first data.
    public private(set) var initialSequence: UInt32?
    /// Offset of the next byte expected in order (= bytes delivered + bytes skipped).
    public private(set) var nextOffset: UInt64 = 0
    /// Segments carrying at least one byte already seen.
    public private(set) var retransmittedSegments = 0
    public private(set) var retransmittedBytes = 0
    /// Segments that arrived ahead of a hole.
    public private(set) var outOfOrderSegments = 0
    /// Bytes given up on by `skipGap` (never captured) and how many holes that was.
    public private(set) var skippedBytes: UInt64 = 0
    public private(set) var gaps = 0
    /// Bound on bytes held ahead of a hole; past it the hole is skipped.
    public var maximumBufferedBytes: Int
    /// A hole open this long (capture time) is taken as capture loss and skipped; nil = wait
    /// (until `maximumBufferedBytes` or `skipGap`). Live captures set it: a drop must not
    /// stall a long-lived connection.
    public var maximumHoleAgeNanos: Int64?
    private var holeOpenedNanos: Int64?
    private var pending: [Pending] = []  // sorted by offset
    public private(set) var bufferedBytes = 0

    public init(maximumBufferedBytes: Int = 16 << 20) {
        self.maximumBufferedBytes = maximumBufferedBytes
    }

    /// Anchors the stream at a SYN: data starts at `isn + 1`. Ignored once anchored.
    public mutating func anchor(synSequence isn: UInt32) {
        if initialSequence == nil { initialSequence = isn &+ 1 }
    }

    /// Stream offset of a sequence number, relative to the in-order position (nil before anchoring).
    public func offset(ofSequence sequence: UInt32) -> Int64? {
        guard let initialSequence else { return nil }
        let expected = initialSequence &+ UInt32(truncatingIfNeeded: nextOffset)
        return Int64(nextOffset) + Int64(Int32(bitPattern: sequence &- expected))
    }

    /// Adds a segment's payload; returns the bytes that are now contiguous, in order.
    public mutating func accept(sequence: UInt32, payload: [UInt8], timestampNanos: Int64) -> [StreamChunk] {
        guard !payload.isEmpty else { return [] }
        if initialSequence == nil { initialSequence = sequence }  // joined mid-stream
        guard let start64 = offset(ofSequence: sequence) else { return [] }
        let end64 = start64 + Int64(payload.count)
        if end64 <= Int64(nextOffset) {
            retransmittedSegments += 1
            retransmittedBytes += payload.count
            return []
        }
        var bytes = payload
        var start = start64
        if start < Int64(nextOffset) {
            let overlap = Int(Int64(nextOffset) - start)
            retransmittedSegments += 1
            retransmittedBytes += overlap
            bytes.removeFirst(overlap)
            start = Int64(nextOffset)
        }
        let offset = UInt64(start)
        if offset > nextOffset {
            if pending.contains(where: { $0.offset <= offset && $0.end >= offset + UInt64(bytes.count) }) {
                retransmittedSegments += 1
                retransmittedBytes += bytes.count
                return []
            }
            outOfOrderSegments += 1
            insertPending(Pending(offset: offset, bytes: bytes, capturedNanos: timestampNanos))
            if holeOpenedNanos == nil { holeOpenedNanos = timestampNanos }
            if bufferedBytes > maximumBufferedBytes { return skipGap(nowNanos: timestampNanos) }
            if let limit = maximumHoleAgeNanos, let opened = holeOpenedNanos, timestampNanos - opened > limit {
                return skipGap(nowNanos: timestampNanos)
            }
            return []
        }
        var chunks = [
            StreamChunk(offset: offset, bytes: bytes, capturedNanos: timestampNanos, deliveredNanos: timestampNanos)
        ]
        nextOffset = offset + UInt64(bytes.count)
        drainPending(nowNanos: timestampNanos, into: &chunks)
        holeOpenedNanos = pending.isEmpty ? nil : timestampNanos
        return chunks
    }

    /// Gives up on the hole before the earliest buffered segment (the capture lost it) and
    /// returns what becomes contiguous. Consumers must treat the stream as broken at the hole.
    public mutating func skipGap(nowNanos: Int64) -> [StreamChunk] {
        guard let first = pending.first, first.offset > nextOffset else { return [] }
        skippedBytes += first.offset - nextOffset
        gaps += 1
        nextOffset = first.offset
        var chunks: [StreamChunk] = []
        drainPending(nowNanos: nowNanos, into: &chunks)
        holeOpenedNanos = pending.isEmpty ? nil : nowNanos
        return chunks
    }

    /// True when segments wait behind a hole.
    public var hasHole: Bool { !pending.isEmpty }

    private mutating func insertPending(_ segment: Pending) {
        var low = 0
        var high = pending.count
        while low < high {
            let mid = (low + high) / 2
            if pending[mid].offset < segment.offset { low = mid + 1 } else { high = mid }
        }
        pending.insert(segment, at: low)
        bufferedBytes += segment.bytes.count
    }

    private mutating func drainPending(nowNanos: Int64, into chunks: inout [StreamChunk]) {
        while let first = pending.first, first.offset <= nextOffset {
            pending.removeFirst()
            bufferedBytes -= first.bytes.count
            guard first.end > nextOffset else {
                retransmittedSegments += 1  // a buffered duplicate, now fully covered
                retransmittedBytes += first.bytes.count
                continue
            }
            let overlap = Int(nextOffset - first.offset)
            if overlap > 0 {
                retransmittedSegments += 1
                retransmittedBytes += overlap
            }
            let bytes = Array(first.bytes[overlap...])
            chunks.append(
                StreamChunk(
                    offset: nextOffset, bytes: bytes, capturedNanos: first.capturedNanos,
                    deliveredNanos: max(first.capturedNanos, nowNanos)))
            nextOffset += UInt64(bytes.count)
        }
    }
}

/// Remembers which capture times cover which stream offsets, so a framer that consumes a
/// stream can ask when a message's first and last bytes were seen.
public struct StreamTimeline: Sendable {
    public struct Span: Sendable, Equatable {
        public var start: UInt64
        public var end: UInt64
        public var capturedNanos: Int64
        public var deliveredNanos: Int64
    }

    /// Timing of one message (a byte range) in the stream.
    public struct MessageTiming: Sendable, Equatable {
        public var startOffset: UInt64
        public var endOffset: UInt64
        public var firstByteCapturedNanos: Int64
        /// Capture time of the segment carrying the message's last byte.
        public var lastByteCapturedNanos: Int64
        /// When the whole message was available in order (≥ lastByteCapturedNanos; larger only
        /// when the last byte arrived ahead of a hole).
        public var completedNanos: Int64
    }

    private var spans: [Span] = []
    private var head = 0

    public init() {}

    public mutating func append(_ chunk: StreamChunk) {
        guard !chunk.bytes.isEmpty else { return }
        spans.append(
            Span(
                start: chunk.offset, end: chunk.endOffset, capturedNanos: chunk.capturedNanos,
                deliveredNanos: chunk.deliveredNanos))
    }

    /// Timing of bytes `start..<end`; spans wholly before `end` are then forgotten.
    public mutating func consume(from start: UInt64, to end: UInt64) -> MessageTiming? {
        guard end > start else { return nil }
        var first: Span?
        var last: Span?
        var completed = Int64.min
        var index = head
        while index < spans.count, spans[index].start < end {
            let span = spans[index]
            if span.end > start {
                if first == nil { first = span }
                last = span
                completed = max(completed, span.deliveredNanos)
            }
            index += 1
        }
        while head < spans.count, spans[head].end <= end { head += 1 }
        if head > 256 {
            spans.removeFirst(head)
            head = 0
        }
        guard let first, let last else { return nil }
        return MessageTiming(
            startOffset: start, endOffset: end, firstByteCapturedNanos: first.capturedNanos,
            lastByteCapturedNanos: last.capturedNanos, completedNanos: completed)
    }

    public mutating func reset() {
        spans.removeAll()
        head = 0
    }
}
