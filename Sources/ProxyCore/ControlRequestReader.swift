import Foundation
import NIOCore
import NIOHTTP1

/// Assembles the control endpoint's HTTP requests from NIOHTTP1's parts and decides, before
/// any routing, what is refused: a request without the token (401) and a body past the limit
/// (413). A pure value: the handler feeds it parts and acts on what it returns.
struct ControlRequestReader {
    enum Action {
        /// Nothing to do yet.
        case none
        /// A whole request to route.
        case route(HTTPRequestHead, body: Data)
        /// A whole request refused without routing.
        case refuse(HTTPRequestHead, ControlResponse)
    }

    /// Request bodies are small JSON objects; anything larger is refused, not buffered.
    static let maximumBodyBytes = 1 << 20

    let token: ControlToken?
    private var head: HTTPRequestHead?
    private var body = Data()
    private var refusal: ControlResponse?

    init(token: ControlToken?) { self.token = token }

    mutating func read(_ part: HTTPServerRequestPart) -> Action {
        switch part {
        case .head(let head):
            self.head = head
            body = Data()
            refusal = nil
            if let token, !token.accepts(authorization: head.headers["authorization"]) {
                var response = Router.errorResponse(
                    .unauthorized, "this control endpoint needs the header \"Authorization: Bearer TOKEN\" (--control-token)")
                response.headers.append(("WWW-Authenticate", "Bearer realm=\"vtp-proxy\""))
                refusal = response
            } else if let length = head.headers["content-length"].first.flatMap({ Int($0) }), length > Self.maximumBodyBytes {
                refusal = Self.tooLarge
            }
            return .none
        case .body(let bytes):
            // Past the limit (or without the token) the rest is read and dropped: the answer goes
            // out after the whole request, so the client is not reset while still sending.
            guard refusal == nil else { return .none }
            if body.count + bytes.readableBytes > Self.maximumBodyBytes {
                refusal = Self.tooLarge
                body = Data()
            } else {
                body.append(contentsOf: bytes.readableBytesView)
            }
            return .none
        case .end:
            guard let head else { return .none }
            defer {
                self.head = nil
                body = Data()
                refusal = nil
            }
            if let refusal { return .refuse(head, refusal) }
            return .route(head, body: body)
        }
    }

    static let tooLarge = Router.errorResponse(
        .payloadTooLarge, "request body exceeds the limit of \(maximumBodyBytes) bytes (1 MiB)")
}
