import CDelayLink
import DelayLink
import Foundation
import XCTest

/// A delay link between two fresh namespaces, forwarding on its own thread, for tests.
/// Namespaces are named after the process so parallel runs do not clash, and removed in `stop()`
/// (tests call it in a defer, so a failing assertion still cleans up).
final class LinkHarness: @unchecked Sendable {
    let link: EmulatedLink
    let forwarder: DelayLinkForwarder
    private let stopPipe: [Int32]
    private let finished = DispatchSemaphore(value: 0)
    private var report: LinkReport?
    private var stopped = false
    private static let counter = Counter()

    var namespaceA: String { link.endA.namespace }
    var namespaceB: String { link.endB.namespace }
    var addressA: String { link.endA.address }
    var addressB: String { link.endB.address }

    init(aToBMs: Double, bToAMs: Double) throws {
        try XCTSkipUnless(getuid() == 0, "needs root (network namespaces, TUN)")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/dev/net/tun"), "needs /dev/net/tun")
        let id = "vtptest-\(getpid())-\(Self.counter.next())"
        link = try EmulatedLink(
            endA: LinkEnd(namespace: id + "-a", address: "10.201.7.1"),
            endB: LinkEnd(namespace: id + "-b", address: "10.201.7.2"), createNamespaces: true)
        forwarder = DelayLinkForwarder(
            a: link.a, b: link.b,
            settings: ForwarderSettings(
                aToB: DirectionProfile(delayNanos: Int64(aToBMs * 1e6)),
                bToA: DirectionProfile(delayNanos: Int64(bToAMs * 1e6)), durationNanos: 60_000_000_000))
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { link.tearDown(); throw XCTSkip("pipe failed") }
        stopPipe = fds
        let thread = Thread { [self] in
            report = try? forwarder.run(stopFd: stopPipe[0], log: { _ in })
            finished.signal()
        }
        thread.start()
    }

    /// Stops forwarding, removes namespaces, returns the forwarder's report.
    @discardableResult
    func stop() -> LinkReport? {
        guard !stopped else { return report }
        stopped = true
        var byte: UInt8 = 1
        _ = write(stopPipe[1], &byte, 1)
        finished.wait()
        close(stopPipe[0])
        close(stopPipe[1])
        link.tearDown()
        return report
    }

    /// Runs a command inside namespace A or B and returns its output.
    func exec(in namespace: String, _ arguments: [String]) -> (status: Int32, output: String) {
        Shell.execute(["ip", "netns", "exec", namespace] + arguments)
    }

    final class Counter: @unchecked Sendable {
        private var value = 0
        private let lock = NSLock()
        func next() -> Int {
            lock.lock()
            defer { lock.unlock() }
            value += 1
            return value
        }
    }
}

/// The repository's scripts folder, found from this file's path.
let scriptsDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("scripts")

/// Round-trip times in ms from `ping` output (`time=100.342 ms`).
func pingTimes(_ output: String) -> [Double] {
    output.split(separator: "\n").compactMap { line in
        guard let range = line.range(of: "time=") else { return nil }
        return Double(line[range.upperBound...].prefix { $0 != " " })
    }
}
