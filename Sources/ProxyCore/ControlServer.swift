import AcceptGuard
import CommandLineKit
import Foundation
import NetworkEmulation
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
    private let channel: Channel
    /// A connection silent this long is closed: idle clients cannot hold descriptors forever.
    static let idleTimeout = TimeAmount.seconds(60)

    /// `token`: when set, every request must carry `Authorization: Bearer TOKEN` (else 401).
    public static func start(
        on address: HostPort, listeners: [ProxyListener], group: EventLoopGroup, token: ControlToken? = nil
    ) async throws -> ControlServer {
        let channel: Channel
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try AcceptGuard.install(on: channel, name: "vtp-proxy: control", report: StandardStreams.err)
                    }
                }
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try addHandlers(to: channel, token: token, listeners: listeners)
                    }
                }
                .bind(host: address.host, port: address.port).get()
        } catch {
            throw ProxyError.cannotListen(address: address.description, reason: ProxyListener.describe(error))
        }
        return ControlServer(channel: channel, tokenRequired: token != nil)
    }

    /// The handlers of one control connection, on its event loop: HTTP/1.1 parsing (malformed
    /// or oversized requests are answered 400 and closed), the idle timeout, the token check and
    /// the body limit, then routing. `listeners` nil routes nothing: each request is parsed and
    /// its body decoded and checked as for a real proxy, and answered with what would be done —
    /// the fuzz target's mode, where nothing may wait for another task.
    public static func addHandlers(to channel: Channel, token: ControlToken?, listeners: [ProxyListener]?) throws {
        let sync = channel.pipeline.syncOperations
        try sync.configureHTTPServerPipeline(withErrorHandling: true)
        try sync.addHandler(IdleStateHandler(readTimeout: idleTimeout))
        let respond: ControlHandler.Respond
        if let listeners {
            let router = Router(listeners: listeners)
            respond = { head, body, loop in
                loop.makeFutureWithTask { await router.handle(method: head.method, path: head.uri, body: body) }
            }
        } else {
            respond = { head, body, loop in
                loop.makeSucceededFuture(Router.dryRun(method: head.method, path: head.uri, body: body))
            }
        }
        try sync.addHandler(ControlHandler(token: token, respond: respond))
    }

    /// Requests need `Authorization: Bearer TOKEN`.
    public let tokenRequired: Bool

    private init(channel: Channel, tokenRequired: Bool) {
        self.channel = channel
        self.tokenRequired = tokenRequired
    }

    public var boundPort: Int? { channel.localAddress?.port }

    public func close() async { try? await channel.close() }
}

struct ControlResponse: Sendable {
    var status: HTTPResponseStatus
    var body: Data
    /// Beyond Content-Type, Content-Length and Connection.
    var headers: [(String, String)] = []
}

/// What a control request asks for, from its method and path alone.
enum ControlRoute: Equatable {
    case listProxies
    case reset
    case proxy(String, ProxyRoute)
    case notFound

    enum ProxyRoute: Equatable {
        case show, setEnabled, listToxics, addToxic
        case showToxic(String), updateToxic(String), removeToxic(String)
        case notFound
    }

    init(method: HTTPMethod, path: String) {
        let parts = path.split(separator: "?").first.map { $0.split(separator: "/").map(String.init) } ?? []
        switch (method, parts.count) {
        case (.GET, 1) where parts[0] == "proxies": self = .listProxies
        case (.POST, 1) where parts[0] == "reset": self = .reset
        case (_, 2...) where parts[0] == "proxies": self = .proxy(parts[1], ProxyRoute(method: method, parts: parts.dropFirst(2)))
        default: self = .notFound
        }
    }
}

extension ControlRoute.ProxyRoute {
    init(method: HTTPMethod, parts: ArraySlice<String>) {
        let parts = Array(parts)
        switch (method, parts.count) {
        case (.GET, 0): self = .show
        case (.POST, 0): self = .setEnabled
        case (.GET, 1) where parts[0] == "toxics": self = .listToxics
        case (.POST, 1) where parts[0] == "toxics": self = .addToxic
        case (.GET, 2) where parts[0] == "toxics": self = .showToxic(parts[1])
        case (.POST, 2) where parts[0] == "toxics": self = .updateToxic(parts[1])
        case (.DELETE, 2) where parts[0] == "toxics": self = .removeToxic(parts[1])
        default: self = .notFound
        }
    }

    /// The request's JSON body, for the routes that take one.
    func decodeBody(_ body: Data) throws -> ControlBody {
        let decoder = JSONDecoder()
        switch self {
        case .setEnabled: return .enabled(try decoder.decode(Router.EnabledUpdate.self, from: body))
        case .addToxic: return .toxic(try decoder.decode(Toxic.self, from: body))
        case .updateToxic: return .toxicUpdate(try decoder.decode(Router.ToxicUpdate.self, from: body))
        case .show, .listToxics, .showToxic, .removeToxic, .notFound: return .none
        }
    }
}

enum ControlBody {
    case none
    case enabled(Router.EnabledUpdate)
    case toxic(Toxic)
    case toxicUpdate(Router.ToxicUpdate)
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
        do {
            switch ControlRoute(method: method, path: path) {
            case .listProxies:
                var all: [String: ProxyView] = [:]
                for name in order { all[name] = view(listeners[name]!) }
                return try Self.json(all)
            case .reset:
                for listener in listeners.values {
                    listener.removeAllToxics()
                    try await listener.setEnabled(true)
                }
                return ControlResponse(status: .noContent, body: Data())
            case .proxy(let name, let route):
                guard let listener = listeners[name] else { throw ProxyError.unknownProxy(name) }
                return try await perform(route, body: try route.decodeBody(body), on: listener)
            case .notFound:
                return Self.errorResponse(.notFound, "no such endpoint: \(method) \(path) (see GET /proxies)")
            }
        } catch {
            return Self.failure(error)
        }
    }

    private func perform(_ route: ControlRoute.ProxyRoute, body: ControlBody, on listener: ProxyListener) async throws
        -> ControlResponse
    {
        switch (route, body) {
        case (.show, _):
            return try Self.json(view(listener))
        case (.setEnabled, .enabled(let update)):
            try await listener.setEnabled(update.enabled)
            return try Self.json(view(listener))
        case (.listToxics, _):
            return try Self.json(listener.toxics)
        case (.addToxic, .toxic(let toxic)):
            try listener.addToxic(toxic)
            return try Self.json(toxic, status: .created)
        case (.showToxic(let name), _):
            guard let toxic = listener.toxics.first(where: { $0.name == name }) else {
                throw ProxyError.unknownToxic(proxy: listener.spec.name, toxic: name)
            }
            return try Self.json(toxic)
        case (.updateToxic(let name), .toxicUpdate(let update)):
            return try Self.json(listener.updateToxic(named: name, toxicity: update.toxicity, attributes: update.attributes))
        case (.removeToxic(let name), _):
            try listener.removeToxic(named: name)
            return ControlResponse(status: .noContent, body: Data())
        default:
            return Self.errorResponse(.notFound, "no such endpoint under /proxies/\(listener.spec.name)")
        }
    }

    /// What `handle` would answer for a proxy that has no toxics, changing nothing: the route,
    /// the decoded body, and for a toxic its checks and the per-connection plan it would make.
    static func dryRun(method: HTTPMethod, path: String, body: Data) -> ControlResponse {
        do {
            switch ControlRoute(method: method, path: path) {
            case .listProxies, .reset:
                return ControlResponse(status: .noContent, body: Data())
            case .notFound:
                return errorResponse(.notFound, "no such endpoint: \(method) \(path) (see GET /proxies)")
            case .proxy(_, let route):
                var toxic: Toxic?
                switch try route.decodeBody(body) {
                case .toxic(let added): toxic = try added.validated()
                case .toxicUpdate(let update):
                    var updated = Toxic(name: "update", type: .latency, stream: .downstream, attributes: ["latency": 1])
                    if let toxicity = update.toxicity { updated.toxicity = toxicity }
                    if let attributes = update.attributes { updated.attributes.merge(attributes) { $1 } }
                    toxic = try updated.validated()
                case .none, .enabled:
                    break
                }
                if let toxic {
                    var random = SplitMix64(seed: 0)  // only checks that a plan can be made
                    let plan = ConnectionPlan.make(from: [toxic], using: &random)
                    _ = (plan.upstream.linkProfile, plan.downstream.linkProfile)
                    return try json(toxic, status: .created)
                }
                return route == .notFound
                    ? errorResponse(.notFound, "no such endpoint under /proxies") : ControlResponse(status: .noContent, body: Data())
            }
        } catch {
            return failure(error)
        }
    }

    /// Each error as the status it deserves.
    static func failure(_ error: Error) -> ControlResponse {
        switch error {
        case let failure as ProxyError:
            switch failure {
            case .unknownProxy, .unknownToxic: return errorResponse(.notFound, failure.description)
            case .duplicateToxic: return errorResponse(.conflict, failure.description)
            case .cannotListen: return errorResponse(.internalServerError, failure.description)
            default: return errorResponse(.badRequest, failure.description)
            }
        case let failure as DecodingError:
            return errorResponse(.badRequest, "invalid JSON body: \(UserMessage.describe(failure))")
        default:
            return errorResponse(.internalServerError, UserMessage.describe(error))
        }
    }

    private static func json(_ value: some Encodable, status: HTTPResponseStatus = .ok) throws -> ControlResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        return ControlResponse(status: status, body: try encoder.encode(value) + Data("\n".utf8))
    }

    static func errorResponse(_ status: HTTPResponseStatus, _ message: String) -> ControlResponse {
        let body = (try? JSONEncoder().encode(["error": message])) ?? Data()
        return ControlResponse(status: status, body: body + Data("\n".utf8))
    }
}

final class ControlHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    /// Answers one routed request, completing on `loop`.
    typealias Respond = @Sendable (HTTPRequestHead, Data, EventLoop) -> EventLoopFuture<ControlResponse>

    private var reader: ControlRequestReader
    private let respond: Respond

    init(token: ControlToken?, respond: @escaping Respond) {
        reader = ControlRequestReader(token: token)
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch reader.read(unwrapInboundIn(data)) {
        case .none:
            return
        case .refuse(let head, let response):
            Self.send(response, for: head, context: context)
        case .route(let head, let body):
            // NIOHTTP1's pipelining handler holds the next request until this one's end is
            // written, so answers leave in request order.
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            respond(head, body, context.eventLoop).whenSuccess { response in
                Self.send(response, for: head, context: loopBound.value)
            }
        }
    }

    /// A request NIOHTTP1 could not parse was answered 400 (and flushed) by its protocol error
    /// handler; nothing after it on the socket can be trusted, and a hostile client would keep
    /// the connection open forever.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private static func send(_ response: ControlResponse, for head: HTTPRequestHead, context: ChannelHandlerContext) {
        // After an error the connection is closed: the request may not have been
        // understood (its body dropped), so nothing after it on the socket is trusted.
        let keepAlive = head.isKeepAlive && response.status.code < 400
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: "\(response.body.count)")
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
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
