import NIOCore
import NIOPosix

/// `httpRequest` for tests that are not async: waits for the answer; returns (status, body).
public func blockingHTTPRequest(port: Int, method: String, path: String, body: String = "") throws -> (Int, String) {
    let group = MultiThreadedEventLoopGroup.singleton
    return try group.next().makeFutureWithTask {
        try await httpRequest(port: port, method: method, path: path, body: body, group: group)
    }.wait()
}
