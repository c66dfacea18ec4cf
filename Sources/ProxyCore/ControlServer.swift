import CommandLineKit
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// HTTP JSON endpoint, Toxiproxy-shaped, to view and change proxies while they run:
///   GET    /proxies                          every proxy with its toxics and connection counts
///   GET    /proxies/NAME
///   POST   /proxies/NAME          {"enabled": false}          down (refuse) / up again
///   GET    /proxies/NAME/toxics
///   POST   /proxies/NAME/toxics   {"name","type","stream","toxicity","attributes":{…}}
///   GET    /proxies/NAME/toxics/TOXIC
///   POST   /proxies/NAME/toxics/TOXIC {"toxicity"?, "attributes"?: {…}}   update
///   DELETE /proxies/NAME/toxics/TOXIC
///   POST   /reset                 every proxy enabled, every toxic removed
public final class ControlServer: Sendable {
    private let listeners: [String: ProxyListener]
    private let order: [String]
    private let channel: Channel

    public static func start(on address: HostPort, listeners: [ProxyListener], group: EventLoopGroup) async throws
        -> ControlServer
    {
        let router = Router(listeners: listeners)
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(ControlHandler(router: router))
                    }
                }
                .bind(host: address.host, port: address.port).get()
        } catch {
            throw ProxyError.cannotListen(address: address.description, reason: ProxyListener.describe(error))
        }
        return ControlServer(listeners: listeners, channel: channel)
    }

    private init(listeners: [ProxyListener], channel: Channel) {
        self.listeners = Dictionary(listeners.map { ($0.spec.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.order = listeners.map(\.spec.name)
        self.channel = channel
    }

    public var boundPort: Int? { channel.localAddress?.port }

    public func close() async { try? await channel.close() }
}

struct ControlResponse: Sendable {
    var status: HTTPResponseStatus
    var body: Data
}

/// Routing and JSON, separate from the HTTP plumbing so it reads (and tests) on its own.
struct Router: Sendable {
    let listeners: [String: ProxyListener]
    let order: [String]

    init(listeners: [ProxyListener]) {
        self.listeners = Dictionary(listeners.map { ($0.spec.name, $0) }, uniquingKeysWith: { first, _ in first })
        self.order = listeners.map(\.spec.name)
    }

    struct ProxyView: Encodable {
        var name: String
        var listen: String
        var upstream: String
        var `protocol`: String
        var enabled: Bool
        var toxics: [Toxic]
        var connections: Connections
        struct Connections: Encodable {
            var accepted: UInt64
            var active: Int
        }
    }

    struct ToxicUpdate: Decodable {
        var toxicity: Double?
        var attributes: [String: Double]?
    }

    struct EnabledUpdate: Decodable { var enabled: Bool }

    func view(_ listener: ProxyListener) -> ProxyView {
        ProxyView(
            name: listener.spec.name, listen: (listener.boundAddress ?? listener.spec.listen).description,
            upstream: listener.spec.upstream.description, protocol: listener.spec.protocol.rawValue,
            enabled: listener.isEnabled, toxics: listener.toxics,
            connections: .init(accepted: listener.acceptedConnections, active: listener.activeConnections))
    }

    func handle(method: HTTPMethod, path: String, body: Data) async -> ControlResponse {
        let parts = path.split(separator: "?").first.map { $0.split(separator: "/").map(String.init) } ?? []
        do {
            switch (method, parts.count) {
            case (.GET, 1) where parts[0] == "proxies":
                var all: [String: ProxyView] = [:]
                for name in order { all[name] = view(listeners[name]!) }
                return try json(all)
            case (.POST, 1) where parts[0] == "reset":
                for listener in listeners.values {
                    listener.removeAllToxics()
                    try await listener.setEnabled(true)
                }
                return ControlResponse(status: .noContent, body: Data())
            case (_, 2...) where parts[0] == "proxies":
                guard let listener = listeners[parts[1]] else { throw ProxyError.unknownProxy(parts[1]) }
                return try await proxyRoute(method: method, parts: Array(parts.dropFirst(2)), listener: listener, body: body)
            default:
                return error(.notFound, "no such endpoint: \(method) \(path) (see GET /proxies)")
            }
        } catch let failure as ProxyError {
            switch failure {
            case .unknownProxy, .unknownToxic: return error(.notFound, failure.description)
            case .duplicateToxic: return error(.conflict, failure.description)
            case .cannotListen: return error(.internalServerError, failure.description)
            default: return error(.badRequest, failure.description)
            }
        } catch let failure as DecodingError {
            return error(.badRequest, "invalid JSON body: \(UserMessage.describe(failure))")
        } catch {
            return self.error(.internalServerError, UserMessage.describe(error))
        }
    }

    private func proxyRoute(method: HTTPMethod, parts: [String], listener: ProxyListener, body: Data) async throws
        -> ControlResponse
    {
        let decoder = JSONDecoder()
        switch (method, parts.count) {
        case (.GET, 0):
            return try json(view(listener))
        case (.POST, 0):
            let update = try decoder.decode(EnabledUpdate.self, from: body)
            try await listener.setEnabled(update.enabled)
            return try json(view(listener))
        case (.GET, 1) where parts[0] == "toxics":
            return try json(listener.toxics)
        case (.POST, 1) where parts[0] == "toxics":
            let toxic = try decoder.decode(Toxic.self, from: body)
            try listener.addToxic(toxic)
            return try json(toxic, status: .created)
        case (.GET, 2) where parts[0] == "toxics":
            guard let toxic = listener.toxics.first(where: { $0.name == parts[1] }) else {
                throw ProxyError.unknownToxic(proxy: listener.spec.name, toxic: parts[1])
            }
            return try json(toxic)
        case (.POST, 2) where parts[0] == "toxics":
            let update = try decoder.decode(ToxicUpdate.self, from: body)
            return try json(listener.updateToxic(named: parts[1], toxicity: update.toxicity, attributes: update.attributes))
        case (.DELETE, 2) where parts[0] == "toxics":
            try listener.removeToxic(named: parts[1])
            return ControlResponse(status: .noContent, body: Data())
        default:
            return error(.notFound, "no such endpoint under /proxies/\(listener.spec.name)")
        }
    }

    private func json(_ value: some Encodable, status: HTTPResponseStatus = .ok) throws -> ControlResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return ControlResponse(status: status, body: try encoder.encode(value) + Data("\n".utf8))
    }

    private func error(_ status: HTTPResponseStatus, _ message: String) -> ControlResponse {
        Self.errorResponse(status, message)
    }

    static func errorResponse(_ status: HTTPResponseStatus, _ message: String) -> ControlResponse {
        let body = (try? JSONEncoder().encode(["error": message])) ?? Data()
        return ControlResponse(status: status, body: body + Data("\n".utf8))
    }
}

final class ControlHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Request bodies are small JSON objects; anything larger is refused, not buffered.
    static let maximumBodyBytes = 1 << 20

    private let router: Router
    private var head: HTTPRequestHead?
    private var body = Data()
    private var bodyTooLarge = false

    init(router: Router) { self.router = router }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body = Data()
            bodyTooLarge = head.headers["content-length"].first.flatMap { Int($0) }.map { $0 > Self.maximumBodyBytes } ?? false
        case .body(let bytes):
            // Past the limit the rest is read and dropped: the answer goes out after the whole
            // request, so the client is not reset while still sending.
            guard !bodyTooLarge else { return }
            if body.count + bytes.readableBytes > Self.maximumBodyBytes {
                bodyTooLarge = true
                body = Data()
            } else {
                body.append(contentsOf: bytes.readableBytesView)
            }
        case .end:
            guard let head else { return }
            self.head = nil
            let router = router
            let requestBody = body
            let tooLarge = bodyTooLarge
            body = Data()
            bodyTooLarge = false
            let promise = context.eventLoop.makePromise(of: ControlResponse.self)
            if tooLarge {
                promise.succeed(
                    Router.errorResponse(
                        .payloadTooLarge,
                        "request body exceeds the limit of \(Self.maximumBodyBytes) bytes (1 MiB)"))
            } else {
                promise.completeWithTask { await router.handle(method: head.method, path: head.uri, body: requestBody) }
            }
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            promise.futureResult.whenSuccess { response in
                let context = loopBound.value
                // After an error the connection is closed: the request may not have been
                // understood (its body dropped), so nothing after it on the socket is trusted.
                let keepAlive = head.isKeepAlive && response.status.code < 400
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: "\(response.body.count)")
                headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
                context.write(
                    NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))),
                    promise: nil)
                context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
                let done = context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)))
                if !keepAlive {
                    let channel = context.channel
                    done.whenComplete { _ in channel.close(promise: nil) }
                }
            }
        }
    }
}
