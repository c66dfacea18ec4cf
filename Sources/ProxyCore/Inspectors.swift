import NIOCore
import PGWire
import Protocol

/// What an inspector wants done with the bytes it saw.
public struct Inspection {
    /// Bytes to pass on (nil: hold everything back for now).
    public var forward: ByteBuffer?
    /// Bytes the proxy answers itself, back to where they came from.
    public var reply: ByteBuffer?
    public var records: [LogRecord] = []
    /// The stream is malformed or refused: log it, close this connection.
    public var failure: String?
    /// PostgreSQL: the startup packet (or a CancelRequest) is complete with these bytes; the
    /// upstream connection may be opened now.
    public var startupComplete = false

    init(forward: ByteBuffer?) { self.forward = forward }
}

/// Watches one direction of a connection.
public protocol StreamInspector {
    mutating func inspect(_ bytes: ByteBuffer, connection: UInt64) -> Inspection
}

/// Raw mode: pass everything.
public struct PassThroughInspector: StreamInspector {
    public init() {}
    public func inspect(_ bytes: ByteBuffer, connection: UInt64) -> Inspection { Inspection(forward: bytes) }
}

/// Client → server PostgreSQL. Until the startup packet, bytes are held so the proxy can answer
/// SSLRequest/GSSENCRequest with 'N' itself (a logging proxy must see plaintext); after it,
/// bytes are forwarded as they come and parsed on the side, framed by message lengths.
public struct PGClientInspector: StreamInspector {
    private var decoder: PGFrontendDecoder
    private var pending = ByteBuffer()
    private var inStartup = true

    public init(maximumStartupLength: Int = PGFraming.defaultMaximumStartupLength) {
        decoder = PGFrontendDecoder(maximumStartupLength: maximumStartupLength)
    }

    public mutating func inspect(_ bytes: ByteBuffer, connection: UInt64) -> Inspection {
        var result = Inspection(forward: nil)
        do {
            if inStartup {
                var incoming = bytes
                pending.writeBuffer(&incoming)
                try startupPhase(&result, connection: connection)
            } else if pending.readableBytes == 0 {
                result.forward = bytes
                var view = bytes  // shares storage: reading it copies nothing
                try parseMessages(&view, &result, connection: connection)
                if view.readableBytes > 0 { pending.writeBuffer(&view) }
            } else {
                result.forward = bytes
                var incoming = bytes
                var buffer = pending
                pending = ByteBuffer()  // keeps `buffer` uniquely owned: no copy on write
                buffer.writeBuffer(&incoming)
                try parseMessages(&buffer, &result, connection: connection)
                buffer.discardReadBytes()
                pending = buffer
            }
        } catch {
            result.failure = "\(error)"
            result.forward = nil
        }
        return result
    }

    private mutating func startupPhase(_ result: inout Inspection, connection: UInt64) throws {
        while inStartup {
            let before = pending  // shares storage; NIO's getSlice cannot reach behind the reader index
            guard let message = try decoder.next(from: &pending) else { return }
            switch message {
            case .sslRequest, .gssEncRequest:
                let kind = message == .sslRequest ? "ssl_request" : "gssenc_request"
                var record = LogRecord(event: kind, connection: connection)
                record.add("answer", "N")
                result.records.append(record)
                if pending.readableBytes > 0 {
                    throw PGWireError(.dataAfterEncryptionRequest(bytes: pending.readableBytes))
                }
                result.reply = ByteBuffer(string: "N")
                decoder.encryptionResponse(accepted: false)
            case .cancelRequest(let processID, _):
                var record = LogRecord(event: "cancel_request", connection: connection)
                record.add("pid", Int(processID))
                result.records.append(record)
                // Forwarded on this connection's own, fresh upstream connection.
                result.forward = before.getSlice(at: before.readerIndex, length: pending.readerIndex - before.readerIndex)
                if pending.readableBytes > 0 {
                    throw PGWireError(.dataAfterEndOfStream(bytes: pending.readableBytes))
                }
                inStartup = false
                result.startupComplete = true
            case .startup(let version, let parameters):
                var record = LogRecord(event: "startup", connection: connection)
                record.add("protocol", "\(version >> 16).\(version & 0xFFFF)")
                for parameter in parameters where ["user", "database", "application_name"].contains(parameter.name) {
                    record.add(parameter.name, parameter.value)
                }
                result.records.append(record)
                inStartup = false
                result.startupComplete = true
                // Forward the startup packet and whatever was pipelined behind it.
                result.forward = before
                var buffer = pending
                pending = ByteBuffer()
                try parseMessages(&buffer, &result, connection: connection)
                buffer.discardReadBytes()
                pending = buffer
            default:
                return
            }
        }
    }

    private mutating func parseMessages(_ buffer: inout ByteBuffer, _ result: inout Inspection, connection: UInt64) throws {
        while let message = try decoder.next(from: &buffer) {
            switch message {
            case .query(let text):
                var record = LogRecord(event: "query", connection: connection)
                record.add("sql", text)
                result.records.append(record)
            case .parse(let statement, let query, let types):
                var record = LogRecord(event: "parse", connection: connection)
                record.add("statement", statement)
                record.add("sql", query)
                if !types.isEmpty { record.add("param_types", numbers: types) }
                result.records.append(record)
            case .bind(let bind):
                var record = LogRecord(event: "bind", connection: connection)
                record.add("portal", bind.portal)
                record.add("statement", bind.statement)
                record.add("params", bind.parameterDescriptions())
                result.records.append(record)
            case .execute(let portal, let maxRows):
                var record = LogRecord(event: "execute", connection: connection)
                record.add("portal", portal)
                record.add("max_rows", Int(maxRows))
                result.records.append(record)
            case .terminate:
                result.records.append(LogRecord(event: "terminate", connection: connection))
            default:
                break
            }
        }
    }
}

/// Server → client PostgreSQL: framed to stay in step, only errors are logged.
public struct PGServerInspector: StreamInspector {
    private var pending = ByteBuffer()
    private let maximumMessageLength: Int

    public init(maximumMessageLength: Int = PGFraming.defaultMaximumMessageLength) {
        self.maximumMessageLength = maximumMessageLength
    }

    public mutating func inspect(_ bytes: ByteBuffer, connection: UInt64) -> Inspection {
        var result = Inspection(forward: bytes)
        do {
            if pending.readableBytes == 0 {
                var view = bytes
                try frame(&view, &result, connection: connection)
                if view.readableBytes > 0 { pending.writeBuffer(&view) }
            } else {
                var incoming = bytes
                pending.writeBuffer(&incoming)
                try frame(&pending, &result, connection: connection)
                pending.discardReadBytes()
            }
        } catch {
            result.failure = "server stream: \(error)"
            result.forward = nil
        }
        return result
    }

    private func frame(_ buffer: inout ByteBuffer, _ result: inout Inspection, connection: UInt64) throws {
        while let raw = try PGFraming.nextTypedMessage(from: &buffer, maximumLength: maximumMessageLength) {
            // Decoding only what is logged keeps DataRow-heavy traffic cheap.
            guard raw.type == UInt8(ascii: "E") || raw.type == UInt8(ascii: "K") else { continue }
            switch try PGBackendDecoder.decode(raw) {
            case .errorResponse(let fields):
                var record = LogRecord(event: "error", connection: connection)
                record.add("severity", fields.severity)
                record.add("code", fields.sqlState)
                record.add("message", fields.message)
                result.records.append(record)
            case .backendKeyData(let processID, _):
                var record = LogRecord(event: "backend_key", connection: connection)
                record.add("pid", Int(processID))
                result.records.append(record)
            default:
                break
            }
        }
    }
}

/// One direction of VTP: every VOEvent (ivorn, sequence, latency at the proxy) and every
/// Transport message (ack/nak/iamalive) is logged.
public struct VTPInspector: StreamInspector {
    private var pending = ByteBuffer()
    private let maximumFrameSize: Int
    private let direction: StreamDirection

    public init(direction: StreamDirection, maximumFrameSize: Int = VTPFraming.defaultMaximumFrameSize) {
        self.direction = direction
        self.maximumFrameSize = maximumFrameSize
    }

    public mutating func inspect(_ bytes: ByteBuffer, connection: UInt64) -> Inspection {
        var result = Inspection(forward: bytes)
        var incoming = bytes
        pending.writeBuffer(&incoming)
        do {
            while let payload = try VTPFrameDecoder.nextFrame(from: &pending, maximumFrameSize: maximumFrameSize) {
                let now = WallClock.nowNanos()
                let message: VTPMessage
                do {
                    message = try VTPMessage.parse(payload)
                } catch {
                    // Well framed but not a VTP document: the receiver will nak it; pass it on.
                    var record = LogRecord(event: "unparsed", connection: connection, nowNanos: now)
                    record.add("stream", direction.rawValue)
                    record.add("error", "\(error)")
                    record.add("bytes", payload.readableBytes)
                    result.records.append(record)
                    continue
                }
                switch message {
                case .voEvent(let event):
                    var record = LogRecord(event: "voevent", connection: connection, nowNanos: now)
                    record.add("stream", direction.rawValue)
                    record.add("ivorn", event.ivorn)
                    if let sequence = event.sequence { record.add("seq", sequence) }
                    // The send time comes off the wire (any Int64): no latency when it overflows.
                    if let sent = try? event.sendTimestampNanos(), case (let latency, false) = now.subtractingReportingOverflow(sent) {
                        record.add("latency_s", seconds: Double(latency) / 1e9)
                    }
                    record.add("bytes", payload.readableBytes)
                    result.records.append(record)
                case .transport(let message):
                    var record = LogRecord(event: message.role.rawValue, connection: connection, nowNanos: now)
                    record.add("stream", direction.rawValue)
                    record.add("origin", message.origin)
                    if let response = message.response { record.add("response", response) }
                    if message.role == .nak { record.add("reason", message.result) }
                    result.records.append(record)
                }
            }
            pending.discardReadBytes()
        } catch {
            result.failure = "VTP \(direction.rawValue) stream: \(error)"
            result.forward = nil
        }
        return result
    }
}
