import NIOCore

/// Codes of the untyped first packet (length + 32-bit code, no type byte).
public enum PGStartupCode {
    public static let protocol3: UInt32 = 196_608  // 3 << 16
    public static let cancelRequest: UInt32 = 80_877_102
    public static let sslRequest: UInt32 = 80_877_103
    public static let gssEncRequest: UInt32 = 80_877_104
}

public struct PGStartupParameter: Equatable, Sendable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// Whether a Describe/Close names a prepared statement or a portal.
public enum PGTargetKind: UInt8, Equatable, Sendable {
    case statement = 0x53  // 'S'
    case portal = 0x50  // 'P'

    public var name: String { self == .statement ? "statement" : "portal" }
}

/// Which encryption a client asked for before its startup packet.
public enum PGEncryptionRequest: Equatable, Sendable {
    case ssl
    case gss
}

/// One message from client to server, with the fields a logger or sniffer needs.
/// Byte payloads are slices of the received buffer (no copy).
public enum PGFrontendMessage: Equatable, Sendable {
    // Untyped first packets.
    case startup(protocolVersion: UInt32, parameters: [PGStartupParameter])
    case sslRequest
    case gssEncRequest
    case cancelRequest(processID: Int32, secretKey: Int32)
    // Typed messages.
    case query(String)
    case parse(statement: String, query: String, parameterTypes: [UInt32])
    case bind(PGBind)
    case describe(PGTargetKind, name: String)
    case execute(portal: String, maxRows: Int32)
    case close(PGTargetKind, name: String)
    case sync
    case flush
    case terminate
    /// 'p': PasswordMessage, SASLInitialResponse, SASLResponse or GSSResponse — which one
    /// depends on the server's last Authentication request, so the body is left raw.
    case authenticationResponse(ByteBuffer)
    case copyData(ByteBuffer)
    case copyDone
    case copyFail(String)
    case functionCall(ByteBuffer)
    case unknown(type: UInt8, body: ByteBuffer)

    /// The one-byte type code ('Q', 'P', …); nil for the untyped first packets.
    public var typeCode: UInt8? {
        switch self {
        case .startup, .sslRequest, .gssEncRequest, .cancelRequest: return nil
        case .query: return UInt8(ascii: "Q")
        case .parse: return UInt8(ascii: "P")
        case .bind: return UInt8(ascii: "B")
        case .describe: return UInt8(ascii: "D")
        case .execute: return UInt8(ascii: "E")
        case .close: return UInt8(ascii: "C")
        case .sync: return UInt8(ascii: "S")
        case .flush: return UInt8(ascii: "H")
        case .terminate: return UInt8(ascii: "X")
        case .authenticationResponse: return UInt8(ascii: "p")
        case .copyData: return UInt8(ascii: "d")
        case .copyDone: return UInt8(ascii: "c")
        case .copyFail: return UInt8(ascii: "f")
        case .functionCall: return UInt8(ascii: "F")
        case .unknown(let type, _): return type
        }
    }
}

/// A Bind message: which statement becomes which portal, with which parameter values.
public struct PGBind: Equatable, Sendable {
    public var portal: String
    public var statement: String
    /// 0 = text, 1 = binary; empty means all text, one entry applies to all.
    public var parameterFormats: [Int16]
    /// nil is SQL NULL.
    public var parameters: [ByteBuffer?]
    public var resultFormats: [Int16]

    public init(
        portal: String, statement: String, parameterFormats: [Int16], parameters: [ByteBuffer?],
        resultFormats: [Int16]
    ) {
        self.portal = portal
        self.statement = statement
        self.parameterFormats = parameterFormats
        self.parameters = parameters
        self.resultFormats = resultFormats
    }

    /// Whether parameter `index` is sent in binary format.
    public func isBinary(parameter index: Int) -> Bool {
        switch parameterFormats.count {
        case 0: return false
        case 1: return parameterFormats[0] == 1
        default: return index < parameterFormats.count && parameterFormats[index] == 1
        }
    }

    /// Parameters for a log: text values as strings, binary values as hex, NULL as nil.
    public func parameterDescriptions() -> [String?] {
        parameters.enumerated().map { index, value in
            guard let value else { return nil }
            if isBinary(parameter: index) {
                return "\\x" + value.readableBytesView.map { byte in
                    let hex = String(byte, radix: 16)
                    return hex.count == 1 ? "0" + hex : hex
                }.joined()
            }
            return String(decoding: value.readableBytesView, as: UTF8.self)
        }
    }
}

public enum PGTransactionStatus: UInt8, Equatable, Sendable {
    case idle = 0x49  // 'I'
    case inTransaction = 0x54  // 'T'
    case failed = 0x45  // 'E'

    public var name: String {
        switch self {
        case .idle: return "idle"
        case .inTransaction: return "in_transaction"
        case .failed: return "failed"
        }
    }
}

public enum PGAuthentication: Equatable, Sendable {
    case ok
    case kerberosV5
    case cleartextPassword
    case md5Password(salt: UInt32)
    case gss
    case gssContinue(ByteBuffer)
    case sspi
    case sasl(mechanisms: [String])
    case saslContinue(ByteBuffer)
    case saslFinal(ByteBuffer)
    case other(code: Int32, data: ByteBuffer)
}

/// The fields of an ErrorResponse or NoticeResponse, keyed by their one-byte codes.
public struct PGErrorFields: Equatable, Sendable {
    public var fields: [UInt8: String]

    public init(fields: [UInt8: String]) { self.fields = fields }

    public subscript(_ code: Character) -> String? {
        code.asciiValue.flatMap { fields[$0] }
    }

    /// Non-localized severity (V) when present (9.6+), else the localized one (S).
    public var severity: String? { self["V"] ?? self["S"] }
    /// SQLSTATE, e.g. 42P01.
    public var sqlState: String? { self["C"] }
    public var message: String? { self["M"] }
    public var detail: String? { self["D"] }
    public var hint: String? { self["H"] }
    public var position: String? { self["P"] }
}

public struct PGFieldDescription: Equatable, Sendable {
    public var name: String
    public var tableOID: UInt32
    public var columnAttribute: Int16
    public var typeOID: UInt32
    public var typeSize: Int16
    public var typeModifier: Int32
    public var format: Int16
}

/// One message from server to client.
public enum PGBackendMessage: Equatable, Sendable {
    /// The single untyped byte answering SSLRequest ('S' / 'N') or GSSENCRequest ('G' / 'N').
    case encryptionResponse(accepted: Bool)
    case authentication(PGAuthentication)
    case parameterStatus(name: String, value: String)
    case backendKeyData(processID: Int32, secretKey: Int32)
    case readyForQuery(PGTransactionStatus)
    case rowDescription([PGFieldDescription])
    case dataRow([ByteBuffer?])
    case commandComplete(tag: String)
    case errorResponse(PGErrorFields)
    case noticeResponse(PGErrorFields)
    case parseComplete
    case bindComplete
    case closeComplete
    case noData
    case portalSuspended
    case emptyQueryResponse
    case parameterDescription([UInt32])
    case notification(processID: Int32, channel: String, payload: String)
    case copyInResponse(ByteBuffer)
    case copyOutResponse(ByteBuffer)
    case copyBothResponse(ByteBuffer)
    case copyData(ByteBuffer)
    case copyDone
    case functionCallResponse(ByteBuffer?)
    case negotiateProtocolVersion(newestMinor: Int32, unrecognizedOptions: [String])
    case unknown(type: UInt8, body: ByteBuffer)
}
