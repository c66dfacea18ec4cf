import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LatencyStats
import NIOCore
import NIOPosix
import XCTest

@testable import LiveMetrics

final class ExponentialBucketsTests: XCTestCase {
    func testBoundsStartAt50MicrosecondsAndDouble() {
        XCTAssertEqual(ExponentialBuckets.boundsNanos.first, 50_000)
        XCTAssertEqual(ExponentialBuckets.boundsNanos[1], 100_000)
        XCTAssertEqual(ExponentialBuckets.boundsNanos.last, 50_000 << 19)
    }

    /// `le` is inclusive: a value equal to a bound counts in that bucket, one nanosecond more in the next.
    func testBucketIndexIsTheFirstBoundAtOrAboveTheValue() {
        for (index, bound) in ExponentialBuckets.boundsNanos.enumerated() {
            XCTAssertEqual(ExponentialBuckets.bucketIndex(nanos: bound), index, "at \(bound)")
            XCTAssertEqual(ExponentialBuckets.bucketIndex(nanos: bound + 1), index + 1, "above \(bound)")
        }
        XCTAssertEqual(ExponentialBuckets.bucketIndex(nanos: 0), 0)
        XCTAssertEqual(ExponentialBuckets.bucketIndex(nanos: -5_000_000), 0, "clock skew: first bucket")
        XCTAssertEqual(ExponentialBuckets.bucketIndex(nanos: .max), ExponentialBuckets.bucketCount, "+Inf only")
        XCTAssertEqual(ExponentialBuckets.bucketIndex(nanos: .min), 0)
    }

    func testCumulativeCountsMergeAndSum() {
        var a = ExponentialBuckets()
        a.record(nanos: 40_000)
        a.record(nanos: 150_000)
        var b = ExponentialBuckets()
        b.record(nanos: 150_000)
        b.record(nanos: 60_000_000_000)  // a minute: above every bound
        a.merge(b)
        XCTAssertEqual(a.count, 4)
        let cumulative = a.cumulativeCounts
        XCTAssertEqual(cumulative[0], 1)
        XCTAssertEqual(cumulative[1], 1)
        XCTAssertEqual(cumulative[2], 3)
        XCTAssertEqual(cumulative[ExponentialBuckets.bucketCount - 1], 3)
        XCTAssertEqual(cumulative.last, 4)
        XCTAssertEqual(a.sumSeconds, 60.00034, accuracy: 1e-9)
    }
}

final class MetricsAddressTests: XCTestCase {
    func testParsesHostPortForms() throws {
        XCTAssertEqual(try MetricsAddress(parsing: "127.0.0.1:9464"), MetricsAddress(host: "127.0.0.1", port: 9464))
        XCTAssertEqual(try MetricsAddress(parsing: "[::1]:0"), MetricsAddress(host: "::1", port: 0))
        XCTAssertEqual(try MetricsAddress(parsing: "localhost:80"), MetricsAddress(host: "localhost", port: 80))
        XCTAssertEqual(try MetricsAddress(parsing: ":9464"), MetricsAddress(host: "0.0.0.0", port: 9464))
        XCTAssertEqual(MetricsAddress(host: "::1", port: 5).description, "[::1]:5")
    }

    func testRejectsWithOneLineNamingTheFlag() {
        for text in ["", "9464", "localhost", "localhost:", "::1:9464", "[::1]9464", "a b:1"] {
            XCTAssertThrowsError(try MetricsAddress(parsing: text), text) { error in
                XCTAssertEqual(error as? MetricsAddress.ParseError, .malformed(text))
                XCTAssertTrue("\(error)".hasPrefix("--metrics must be HOST:PORT"), "\(error)")
            }
        }
        for (text, port) in [("localhost:65536", "65536"), ("localhost:-1", "-1"), ("h:9x", "9x"), ("h:99999999999999999999", "99999999999999999999")] {
            XCTAssertThrowsError(try MetricsAddress(parsing: text), text) { error in
                XCTAssertEqual(error as? MetricsAddress.ParseError, .badPort(port))
                XCTAssertEqual("\(error)", "--metrics port must be 0 to 65535 (got \(port))")
            }
        }
    }

    func testTheOptionGroupTurnsABadValueIntoAUsageError() throws {
        let options = try MetricsOptions.parse(["--metrics", "nonsense"])
        XCTAssertThrowsError(try options.parsed()) { error in
            XCTAssertEqual(MetricsOptions.exitCode(for: error).rawValue, 64)
            XCTAssertTrue(MetricsOptions.message(for: error).contains("--metrics must be HOST:PORT"))
        }
        XCTAssertNil(try MetricsOptions.parse([]).parsed())
    }
}

final class PrometheusTextTests: XCTestCase {
    func testSecondsAreExactDecimals() {
        XCTAssertEqual(PrometheusText.seconds(nanos: 50_000), "0.00005")
        XCTAssertEqual(PrometheusText.seconds(nanos: 1_600_000), "0.0016")
        XCTAssertEqual(PrometheusText.seconds(nanos: 26_214_400_000), "26.2144")
        XCTAssertEqual(PrometheusText.seconds(nanos: 2_000_000_000), "2")
    }

    func testLabelValuesAreEscaped() {
        XCTAssertEqual(PrometheusText.escapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd")
    }
}

final class MetricsServerTests: XCTestCase {
    private var group: MultiThreadedEventLoopGroup!

    override func setUp() { group = MultiThreadedEventLoopGroup(numberOfThreads: 2) }
    override func tearDown() async throws { try await group.shutdownGracefully() }

    /// A source that counts how often it was read, like a tool's loops would.
    private func exporter(reads: NIOLockedReads) -> MetricsExporter {
        MetricsExporter(declaring: [.eventsReceived, .openConnections, .eventLatency, .naks], on: group.next()) {
            [group] in
            let n = reads.next()
            var snapshot = MetricsSnapshot()
            snapshot.count(.eventsReceived, 10 * n)
            snapshot.gauge(.openConnections, 3)
            snapshot.count(.proxyBytes, 7, labels: [.init("direction", "up\"stream")])
            var buckets = ExponentialBuckets()
            for _ in 0..<n { buckets.record(nanos: 75_000) }
            snapshot.histogram(.eventLatency, buckets)
            return group!.next().makeSucceededFuture(snapshot)
        }
    }

    func testServesPrometheusTextAtMetricsOnLoopback() async throws {
        let reads = NIOLockedReads()
        let server = try await MetricsServer.start(at: MetricsAddress(host: "127.0.0.1", port: 0), exporter: exporter(reads: reads))
        defer { Task { await server.stop() } }
        let port = try XCTUnwrap(server.localAddress.port)
        XCTAssertNotEqual(port, 0)
        XCTAssertEqual(server.url, "http://127.0.0.1:\(port)/metrics")

        let first = try HTTPGet.fetch(port: port, path: "/metrics")
        XCTAssertTrue(first.statusLine.hasPrefix("HTTP/1.1 200"), first.statusLine)
        XCTAssertEqual(first.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        XCTAssertEqual(Int(first.header("content-length") ?? ""), first.body.utf8.count)
        let lines = Set(first.body.split(separator: "\n").map(String.init))
        XCTAssertTrue(lines.contains("# TYPE vtpbench_events_received_total counter"), first.body)
        XCTAssertTrue(lines.contains("vtpbench_events_received_total 10"), first.body)
        XCTAssertTrue(lines.contains("vtpbench_naks_total 0"), "declared metrics appear at zero: \(first.body)")
        XCTAssertTrue(lines.contains("vtpbench_open_connections 3.0"), first.body)
        XCTAssertTrue(lines.contains(#"vtpbench_proxy_bytes_total{direction="up\"stream"} 7"#), first.body)
        XCTAssertTrue(lines.contains("# TYPE vtpbench_event_latency_seconds histogram"), first.body)
        XCTAssertTrue(lines.contains(#"vtpbench_event_latency_seconds_bucket{le="0.00005"} 0"#), first.body)
        XCTAssertTrue(lines.contains(#"vtpbench_event_latency_seconds_bucket{le="0.0001"} 1"#), first.body)
        XCTAssertTrue(lines.contains(#"vtpbench_event_latency_seconds_bucket{le="+Inf"} 1"#), first.body)
        XCTAssertTrue(lines.contains("vtpbench_event_latency_seconds_count 1"), first.body)

        // Every scrape reads the source afresh; counters follow it.
        let second = try HTTPGet.fetch(port: port, path: "/metrics?x=1")
        XCTAssertTrue(second.body.contains("vtpbench_events_received_total 20\n"), second.body)
        XCTAssertTrue(second.body.contains("vtpbench_event_latency_seconds_count 2\n"), second.body)

        let missing = try HTTPGet.fetch(port: port, path: "/")
        XCTAssertTrue(missing.statusLine.hasPrefix("HTTP/1.1 404"), missing.statusLine)
        let post = try HTTPGet.fetch(port: port, path: "/metrics", method: "POST")
        XCTAssertTrue(post.statusLine.hasPrefix("HTTP/1.1 405"), post.statusLine)
    }

    func testAPortInUseIsOneLine() async throws {
        let reads = NIOLockedReads()
        let first = try await MetricsServer.start(at: MetricsAddress(host: "127.0.0.1", port: 0), exporter: exporter(reads: reads))
        let port = try XCTUnwrap(first.localAddress.port)
        do {
            _ = try await MetricsServer.start(at: MetricsAddress(host: "127.0.0.1", port: port), exporter: exporter(reads: reads))
            XCTFail("bound a port in use")
        } catch {
            XCTAssertEqual(error.description, "cannot serve metrics on 127.0.0.1:\(port): address already in use")
        }
        await first.stop()
    }

    func testACounterNeverGoesDownWhenAReadIsOlder() async throws {
        let values = NIOLockedReads(sequence: [5, 3, 8])
        let exporter = MetricsExporter(declaring: [.acks], on: group.next()) { [group] in
            var snapshot = MetricsSnapshot()
            snapshot.count(.acks, values.next())
            return group!.next().makeSucceededFuture(snapshot)
        }
        var seen: [String] = []
        for _ in 0..<3 {
            let text = String(buffer: try await exporter.scrape().get())
            seen.append(text.split(separator: "\n").first { $0.hasPrefix("vtpbench_acks_total ") }.map(String.init) ?? "")
        }
        XCTAssertEqual(seen, ["vtpbench_acks_total 5", "vtpbench_acks_total 5", "vtpbench_acks_total 8"])
    }
}

/// A counter the test's sources advance; reads come from loops, hence the lock (test only).
final class NIOLockedReads: @unchecked Sendable {  // every access holds `lock`
    private let lock = NSLockLike()
    private var index = 0
    private let sequence: [Int]?
    init(sequence: [Int]? = nil) { self.sequence = sequence }
    func next() -> Int {
        lock.withLock {
            index += 1
            return sequence.map { $0[min(index - 1, $0.count - 1)] } ?? index
        }
    }
}

/// pthread mutex, so the test needs no Foundation lock.
final class NSLockLike: @unchecked Sendable {  // the mutex is the synchronisation
    private var mutex = pthread_mutex_t()
    init() { pthread_mutex_init(&mutex, nil) }
    deinit { pthread_mutex_destroy(&mutex) }
    func withLock<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// One blocking HTTP/1.1 request over a loopback socket, read until the server closes.
struct HTTPGet {
    var statusLine: String
    var headers: [(String, String)]
    var body: String

    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name }?.1 }

    static func fetch(port: Int, path: String, method: String = "GET") throws -> HTTPGet {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXFailure("socket") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw POSIXFailure("connect") }
        let request = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        for _ in 0..<10_000 {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw POSIXFailure("no HTTP header in \(text)") }
        let headerLines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let headers = headerLines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return HTTPGet(statusLine: headerLines[0], headers: headers, body: String(text[split.upperBound...]))
    }
}

struct POSIXFailure: Error, CustomStringConvertible {
    var description: String
    init(_ what: String) { description = "\(what) failed (errno \(errno))" }
}
