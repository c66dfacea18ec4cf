import LiveMetrics
import NIOCore

/// Bytes one event loop's connections forwarded, by direction. Owned by that loop (in a
/// `NIOLoopBoundBox`): one addition per read, no lock.
struct ProxyTraffic: Sendable {
    var upstreamBytes = 0
    var downstreamBytes = 0

    mutating func add(_ count: Int, from side: ProxySide) {
        switch side.inbound {
        case .upstream: upstreamBytes += count
        case .downstream: downstreamBytes += count
        }
    }
}

/// What vtp-proxy exports with `--metrics`, per proxy (label `proxy`, its name).
public enum ProxyMetrics {
    public static let exported: [Metric] = [.proxyBytes, .proxyConnections, .openConnections, .errors]
}

extension ProxyRuntime {
    /// Reads every listener's loops; counts only rise, so scrapes can interleave with traffic.
    public func metricsSnapshot() -> EventLoopFuture<MetricsSnapshot> {
        let loop = group.next()
        let perListener = listeners.map { listener in
            let shares = listener.traffic.values.map { box in box.eventLoop.submit { box.value } }
            return EventLoopFuture.whenAllSucceed(shares, on: loop).map { shares in (listener, shares) }
        }
        return EventLoopFuture.whenAllSucceed(perListener, on: loop).map { all in
            var snapshot = MetricsSnapshot()
            for (listener, shares) in all {
                let proxy = MetricsSnapshot.Label("proxy", listener.spec.name)
                snapshot.count(
                    .proxyBytes, shares.reduce(0) { $0 + $1.upstreamBytes }, labels: [proxy, .init("direction", "upstream")])
                snapshot.count(
                    .proxyBytes, shares.reduce(0) { $0 + $1.downstreamBytes },
                    labels: [proxy, .init("direction", "downstream")])
                snapshot.count(.proxyConnections, Int(clamping: listener.acceptedConnections), labels: [proxy])
                snapshot.gauge(.openConnections, Double(listener.activeConnections), labels: [proxy])
                snapshot.count(.errors, listener.failuresTotal, labels: [proxy])
            }
            return snapshot
        }
    }
}
