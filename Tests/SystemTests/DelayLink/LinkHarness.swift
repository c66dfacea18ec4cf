import CDelayLink
import DelayLink
import Foundation
import Synchronization
import TestSupport
import XCTest

/// A delay link between two fresh namespaces, forwarding on its own thread, for tests.
/// Namespaces are named after the process so parallel runs do not clash, and removed in `stop()`
/// (tests call it in a defer, so a failing assertion still cleans up).
final class LinkHarness: Sendable {
    let running: RunningLink
    private static let counter = Mutex(0)

    var namespaceA: String { running.link.endA.namespace }
    var namespaceB: String { running.link.endB.namespace }
    var addressA: String { running.link.endA.address }
    var addressB: String { running.link.endB.address }

    init(aToBMs: Double, bToAMs: Double) throws {
        try XCTSkipUnless(getuid() == 0, "needs root (network namespaces, TUN)")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/dev/net/tun"), "needs /dev/net/tun")
        let number = Self.counter.withLock { value in
            value += 1
            return value
        }
        let id = "vtptest-\(getpid())-\(number)"
        running = try RunningLink(
            endA: LinkEnd(namespace: id + "-a", address: "10.201.7.1"),
            endB: LinkEnd(namespace: id + "-b", address: "10.201.7.2"),
            settings: ForwarderSettings(
                aToB: DirectionProfile(delayNanos: Int64(aToBMs * 1e6)),
                bToA: DirectionProfile(delayNanos: Int64(bToAMs * 1e6)), durationNanos: 60_000_000_000))
    }

    /// Stops forwarding, removes namespaces, returns the forwarder's report (idempotent).
    @discardableResult
    func stop() -> LinkReport? { running.stop() }

    /// Runs a command inside a namespace and returns its output.
    func exec(in namespace: String, _ arguments: [String]) -> (status: Int32, output: String) {
        Shell.execute(["ip", "netns", "exec", namespace] + arguments)
    }
}

/// The repository's scripts folder, found from this file's path.
let scriptsDirectory = Tools.packageRoot.appendingPathComponent("scripts")

/// Round-trip times in ms from `ping` output (`time=100.342 ms`).
func pingTimes(_ output: String) -> [Double] {
    output.split(separator: "\n").compactMap { line in
        guard let range = line.range(of: "time=") else { return nil }
        return Double(line[range.upperBound...].prefix { $0 != " " })
    }
}
