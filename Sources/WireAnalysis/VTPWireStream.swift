import NIOCore
import PacketCapture
import VTPProtocol

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
    /// The capture lost bytes; VTP has no resynchronisation marker, so the direction is abandoned.
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
                if states[flow]?.broken != true {
                    states[flow, default: DirectionState()].broken = true
                    problems.append(.captureGap(connectionID: id, direction: direction, bytes: bytes))
                }
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
        state.buffer.writeBytes(chunk.bytes)
        state.timeline.append(chunk)
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
}
