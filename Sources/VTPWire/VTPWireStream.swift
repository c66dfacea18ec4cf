import NIOCore
import PacketCapture
import Protocol

/// One VTP frame recovered from a capture, with the wire times of its bytes.
public struct WireFrame: Sendable {
    public var connectionID: Int
    public var key: ConnectionKey
    public var direction: FlowDirection
    /// The XML payload (without the 4-byte length prefix).
    public var payload: ByteBuffer
    public var timing: StreamTimeline.MessageTiming

    /// The frame's wire time: capture time of the segment carrying its last byte.
    public var timestampNanos: Int64 { timing.lastByteCapturedNanos }
}

/// Why a direction of a connection stopped yielding frames.
public enum WireStreamProblem: Sendable, Equatable {
    case framing(connectionID: Int, direction: FlowDirection, error: String)
    /// The capture lost bytes; framing resumes at the next frame header after the hole (the
    /// frames the hole touched are lost).
    case captureGap(connectionID: Int, direction: FlowDirection, bytes: UInt64)
}

/// Splits reassembled TCP streams into VTP frames (`VTPFrameDecoder.nextFrame`).
public struct VTPWireFramer: Sendable {
    struct DirectionState: Sendable {
        var buffer = ByteBufferAllocator().buffer(capacity: 0)
        /// Stream offset of `buffer.readerIndex`.
        var offset: UInt64 = 0
        var timeline = StreamTimeline()
        var broken = false
        /// After a capture gap: looking for the next frame header.
        var resynchronising = false
    }

    struct FlowKey: Hashable, Sendable {
        var connectionID: Int
        var direction: FlowDirection
    }

    public let maximumFrameSize: Int
    private var states: [FlowKey: DirectionState] = [:]
    private var keys: [Int: ConnectionKey] = [:]

    public init(maximumFrameSize: Int = VTPFraming.defaultMaximumFrameSize) {
        self.maximumFrameSize = maximumFrameSize
    }

    /// Feeds reassembler events; returns complete frames and any streams that broke.
    public mutating func process(
        _ events: [ReassemblyEvent], frames: inout [WireFrame], problems: inout [WireStreamProblem]
    ) {
        for event in events {
            switch event {
            case .opened(let id, let key):
                keys[id] = key
            case .data(let id, let direction, let chunk):
                consume(id: id, direction: direction, chunk: chunk, frames: &frames, problems: &problems)
            case .gap(let id, let direction, let bytes):
                let flow = FlowKey(connectionID: id, direction: direction)
                var state = states[flow] ?? DirectionState()
                if !state.broken {
                    // Drop the partial frame before the hole; the next chunk sets the offset.
                    state.buffer.clear()
                    state.timeline.reset()
                    state.resynchronising = true
                    problems.append(.captureGap(connectionID: id, direction: direction, bytes: bytes))
                }
                states[flow] = state
            case .closed(let id):
                // Keep nothing per closed connection: long per-event runs open one per event.
                states[FlowKey(connectionID: id, direction: .clientToServer)] = nil
                states[FlowKey(connectionID: id, direction: .serverToClient)] = nil
                keys[id] = nil
            case .handshakeCompleted:
                break
            }
        }
    }

    private mutating func consume(
        id: Int, direction: FlowDirection, chunk: StreamChunk, frames: inout [WireFrame],
        problems: inout [WireStreamProblem]
    ) {
        let flow = FlowKey(connectionID: id, direction: direction)
        var state = states.removeValue(forKey: flow) ?? DirectionState(offset: chunk.offset)
        defer { states[flow] = state }
        guard !state.broken else { return }
        if state.resynchronising && state.buffer.readableBytes == 0 { state.offset = chunk.offset }
        state.buffer.writeBytes(chunk.bytes)
        state.timeline.append(chunk)
        if state.resynchronising {
            guard let skip = Self.nextHeader(in: state.buffer, maximumFrameSize: maximumFrameSize) else {
                // Keep only the last bytes: a header may straddle the next chunk.
                let keep = min(state.buffer.readableBytes, 5)
                let drop = state.buffer.readableBytes - keep
                state.buffer.moveReaderIndex(forwardBy: drop)
                state.offset += UInt64(drop)
                state.buffer.discardReadBytes()
                return
            }
            state.buffer.moveReaderIndex(forwardBy: skip)
            state.offset += UInt64(skip)
            state.resynchronising = false
        }
        while true {
            let before = state.buffer.readerIndex
            let frame: ByteBuffer?
            do {
                frame = try VTPFrameDecoder.nextFrame(from: &state.buffer, maximumFrameSize: maximumFrameSize)
            } catch {
                state.broken = true
                state.buffer.clear()
                problems.append(.framing(connectionID: id, direction: direction, error: "\(error)"))
                return
            }
            guard let frame else { break }
            let consumed = UInt64(state.buffer.readerIndex - before)
            let start = state.offset
            state.offset += consumed
            guard let timing = state.timeline.consume(from: start, to: state.offset) else { continue }
            let key = keys[id] ?? ConnectionKey(client: Endpoint(IPAddress(ipv4: 0), 0), server: Endpoint(IPAddress(ipv4: 0), 0))
            frames.append(
                WireFrame(connectionID: id, key: key, direction: direction, payload: frame, timing: timing))
        }
        state.buffer.discardReadBytes()
    }

    /// Offset of the first plausible frame header: a length within the maximum, followed by
    /// `<`. Unambiguous in practice: a length ≤ 16 MiB starts with a 0x00 byte, which UTF-8 XML
    /// text never contains.
    static func nextHeader(in buffer: ByteBuffer, maximumFrameSize: Int) -> Int? {
        buffer.withUnsafeReadableBytes { bytes -> Int? in
            guard bytes.count >= 5 else { return nil }
            for i in 0...(bytes.count - 5) where bytes[i] == 0 && bytes[i + 4] == UInt8(ascii: "<") {
                let length = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
                if length > 0 && length <= maximumFrameSize { return i }
            }
            return nil
        }
    }
}
