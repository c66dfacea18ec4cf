import PacketCapture

/// PostgreSQL messages as bytes, built by hand (independently of PGWire's own encoder).
enum Wire {
    static func int32(_ value: Int) -> [UInt8] {
        let v = UInt32(truncatingIfNeeded: value)
        return [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
    }
    static func int16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xff), UInt8(value & 0xff)] }
    static func cString(_ text: String) -> [UInt8] { Array(text.utf8) + [0] }
    static func typed(_ type: Character, _ body: [UInt8]) -> [UInt8] {
        [type.asciiValue!] + int32(body.count + 4) + body
    }

    // Client → server.
    static func startup(user: String = "postgres", database: String = "postgres") -> [UInt8] {
        let body = int32(196_608) + cString("user") + cString(user) + cString("database") + cString(database) + [0]
        return int32(body.count + 4) + body
    }
    static let sslRequest: [UInt8] = int32(8) + int32(80_877_103)
    static func query(_ sql: String) -> [UInt8] { typed("Q", cString(sql)) }
    static func parse(_ sql: String) -> [UInt8] { typed("P", cString("") + cString(sql) + int16(0)) }
    static let bind: [UInt8] = typed("B", cString("") + cString("") + int16(0) + int16(0) + int16(0))
    static let describePortal: [UInt8] = typed("D", [UInt8(ascii: "P")] + cString(""))
    static let execute: [UInt8] = typed("E", cString("") + int32(0))
    static let sync: [UInt8] = typed("S", [])
    static let terminate: [UInt8] = typed("X", [])

    // Server → client.
    static let authenticationOK: [UInt8] = typed("R", int32(0))
    static func parameterStatus(_ name: String, _ value: String) -> [UInt8] {
        typed("S", cString(name) + cString(value))
    }
    static let backendKeyData: [UInt8] = typed("K", int32(4242) + int32(99))
    static let readyForQuery: [UInt8] = typed("Z", [UInt8(ascii: "I")])
    static func rowDescription(_ name: String = "?column?") -> [UInt8] {
        typed("T", int16(1) + cString(name) + int32(0) + int16(0) + int32(23) + int16(4) + int32(-1) + int16(0))
    }
    static func dataRow(_ value: String) -> [UInt8] { typed("D", int16(1) + int32(value.utf8.count) + Array(value.utf8)) }
    static func commandComplete(_ tag: String) -> [UInt8] { typed("C", cString(tag)) }
    static let parseComplete: [UInt8] = typed("1", [])
    static let bindComplete: [UInt8] = typed("2", [])
    static func errorResponse(code: String, message: String) -> [UInt8] {
        typed(
            "E",
            [UInt8(ascii: "S")] + cString("ERROR") + [UInt8(ascii: "V")] + cString("ERROR") + [UInt8(ascii: "C")]
                + cString(code) + [UInt8(ascii: "M")] + cString(message) + [0])
    }
    static func selectOneResponse(_ value: String = "1") -> [UInt8] {
        rowDescription() + dataRow(value) + commandComplete("SELECT 1") + readyForQuery
    }
    static let loginResponse: [UInt8] =
        authenticationOK + parameterStatus("server_version", "15.18") + backendKeyData + readyForQuery
}

/// One TCP connection's segments with consistent sequence/ack numbers and times in µs.
struct Dialogue {
    let client: Endpoint
    let server: Endpoint
    var clientSequence: UInt32
    var serverSequence: UInt32
    /// Capture time origin (ns since the epoch) and the current offset in µs.
    static let epoch: Int64 = 1_763_950_000_000_000_000
    var segments: [TCPSegment] = []

    init(client: Endpoint, server: Endpoint, clientISN: UInt32 = 1_000, serverISN: UInt32 = 700_000) {
        self.client = client
        self.server = server
        clientSequence = clientISN
        serverSequence = serverISN
    }

    static func nanos(_ micros: Int64) -> Int64 { epoch + micros * 1_000 }

    mutating func handshake(at micros: Int64) {
        segments.append(segment(fromClient: true, at: micros, flags: .syn, acknowledgment: 0))
        clientSequence &+= 1
        segments.append(segment(fromClient: false, at: micros + 10, flags: [.syn, .ack]))
        serverSequence &+= 1
        segments.append(segment(fromClient: true, at: micros + 20, flags: .ack))
    }

    /// The client sends `bytes`, cut at `cuts` (offsets), one segment every 5 µs from `micros`.
    mutating func clientSends(_ bytes: [UInt8], at micros: Int64, cuts: [Int] = []) {
        send(bytes, fromClient: true, at: micros, cuts: cuts)
    }

    mutating func serverSends(_ bytes: [UInt8], at micros: Int64, cuts: [Int] = []) {
        send(bytes, fromClient: false, at: micros, cuts: cuts)
    }

    /// A pure ACK of everything the other side sent so far.
    mutating func clientAcks(at micros: Int64) { segments.append(segment(fromClient: true, at: micros, flags: .ack)) }
    mutating func serverAcks(at micros: Int64) { segments.append(segment(fromClient: false, at: micros, flags: .ack)) }

    private mutating func send(_ bytes: [UInt8], fromClient: Bool, at micros: Int64, cuts: [Int]) {
        let bounds = [0] + cuts + [bytes.count]
        for index in 0..<(bounds.count - 1) {
            let piece = Array(bytes[bounds[index]..<bounds[index + 1]])
            segments.append(
                segment(fromClient: fromClient, at: micros + Int64(index) * 5, flags: [.ack, .psh], payload: piece))
            if fromClient { clientSequence &+= UInt32(piece.count) } else { serverSequence &+= UInt32(piece.count) }
        }
    }

    func segment(
        fromClient: Bool, at micros: Int64, flags: TCPFlags, acknowledgment: UInt32? = nil, payload: [UInt8] = []
    ) -> TCPSegment {
        TCPSegment(
            timestampNanos: Self.nanos(micros), source: fromClient ? client : server,
            destination: fromClient ? server : client, sequence: fromClient ? clientSequence : serverSequence,
            acknowledgment: acknowledgment ?? (fromClient ? serverSequence : clientSequence), flags: flags,
            payload: payload)
    }
}
