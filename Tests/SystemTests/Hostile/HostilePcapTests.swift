import Foundation
import PacketCapture
import TestSupport
import XCTest

/// vtp-capture analyze and pgprobe sniff on files from anywhere: a clear error or a counted
/// skip, bounded memory, never a crash.
final class HostilePcapTests: XCTestCase {
    private var work: URL!

    override func setUpWithError() throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-pcap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: work) }

    private func file(_ name: String, _ bytes: [UInt8]) throws -> String {
        let url = work.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    /// The result of running a tool, with its peak resident memory.
    struct Run {
        var status: Int32
        var signaled: Bool
        var output: String
        var peakRSSKiB: Int
    }

    /// posix_spawn + wait4: the child's exit and its peak RSS (ru_maxrss).
    private func run(_ tool: String, _ arguments: [String]) throws -> Run {
        let executable = try Tools.url(tool).path
        let outputPath = work.appendingPathComponent("\(tool)-\(UUID().uuidString).out").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else { throw CocoaError(.executableLoad, userInfo: [NSLocalizedDescriptionKey: "cannot start \(tool): \(spawned)"]) }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let signaled = (status & 0x7F) != 0 && (status & 0x7F) != 0x7F
        return Run(status: (status >> 8) & 0xFF, signaled: signaled, output: output, peakRSSKiB: usage.ru_maxrss)
    }

    private static func header(snaplen: UInt32 = 262_144, linkType: UInt32 = LinkType.ethernet) -> [UInt8] {
        let writer = PcapFileWriter(linkType: linkType, precision: .nanoseconds, snapshotLength: snaplen)
        return writer.bytes
    }

    private static func record(caplen: UInt32, len: UInt32, data: [UInt8] = []) -> [UInt8] {
        [0, 0, 0, 0, 0, 0, 0, 0] + le(caplen) + le(len) + data
    }

    private static func le(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    private func bothTools(_ path: String) throws -> [Run] {
        [try run("vtp-capture", ["analyze", path]), try run("pgprobe", ["sniff", "--file", path])]
    }

    func testBadMagicIsAClearUsageError() throws {
        let path = try file("bad-magic.pcap", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        for result in try bothTools(path) {
            XCTAssertFalse(result.signaled, result.output)
            XCTAssertEqual(result.status, 64, result.output)
            XCTAssertTrue(result.output.contains("not a pcap file (magic 0x"), result.output)
            XCTAssertEqual(result.output.split(separator: "\n").count, 1, "one line: \(result.output)")
        }
    }

    func testSnaplenZeroIsRead() throws {
        // Some writers leave the snaplen 0; the records say how long they are.
        let segment = TCPSegment(
            timestampNanos: 1_000, source: Endpoint(IPAddress("10.0.0.1")!, 40_000),
            destination: Endpoint(IPAddress("10.0.0.2")!, 5432), sequence: 1, flags: .syn)
        let frame = PacketBuilder.frame(for: segment, linkType: LinkType.ethernet)
        let path = try file(
            "snaplen0.pcap",
            Self.header(snaplen: 0) + Self.record(caplen: UInt32(frame.count), len: UInt32(frame.count), data: frame))
        for result in try bothTools(path) {
            XCTAssertEqual(result.status, 0, result.output)
            XCTAssertTrue(result.output.contains("capture: 1 packets"), result.output)
        }
    }

    func testCaptureLengthBeyondTheWireLengthStopsThereWithTheStatisticsBefore() throws {
        let path = try file("caplen.pcap", Self.header() + Self.record(caplen: 100, len: 10, data: [UInt8](repeating: 0, count: 100)))
        for result in try bothTools(path) {
            XCTAssertFalse(result.signaled, result.output)
            XCTAssertEqual(result.status, 64, result.output)
            XCTAssertTrue(result.output.contains("corrupt record at offset 24: captured length 100 exceeds original length 10"), result.output)
            XCTAssertTrue(result.output.contains("statistics above cover the records before it"), result.output)
        }
    }

    func testGiantLengthsAreCorruptRecordsNotAllocations() throws {
        for (caplen, len) in [(UInt32.max, UInt32.max), (0x0400_0001, 0x0400_0001), (0x0400_0000, 0x0400_0000)] {
            let path = try file("giant-\(caplen).pcap", Self.header() + Self.record(caplen: caplen, len: len, data: [1, 2, 3]))
            for result in try bothTools(path) {
                XCTAssertFalse(result.signaled, result.output)
                XCTAssertEqual(result.status, 64, result.output)
                XCTAssertTrue(
                    result.output.contains("implausible") || result.output.contains("truncated at offset 24"), result.output)
                XCTAssertLessThan(result.peakRSSKiB, 512 * 1024, "nothing like \(caplen) bytes allocated")
            }
        }
    }

    func testTinyFlowsPastTheLimitAreCountedAndMemoryStaysBounded() throws {
        // One SYN per flow, 300,000 flows (3× the limit; the README's million-flow figure is
        // measured by hand: this keeps the suite's time down), all in the same second: nothing
        // is ever pruned.
        var writer = PcapFileWriter(linkType: LinkType.raw, precision: .nanoseconds)
        for i in 0..<300_000 {
            let client = Endpoint(IPAddress(ipv4: 0x0A00_0000 | UInt32(i / 60_000)), UInt16(1024 + i % 60_000))
            let segment = TCPSegment(
                timestampNanos: 1_000_000_000 + Int64(i), source: client,
                destination: Endpoint(IPAddress("10.255.0.1")!, 5432), sequence: 1, flags: .syn)
            writer.append(CapturedPacket(timestampNanos: segment.timestampNanos, data: PacketBuilder.ipPacket(for: segment)))
        }
        let path = work.appendingPathComponent("flows.pcap").path
        try writer.write(to: path)
        for result in try bothTools(path) {
            XCTAssertEqual(result.status, 0, result.output)
            XCTAssertTrue(result.output.contains("capture: 300000 packets"), result.output)
            XCTAssertTrue(result.output.contains("200000 segments of connections past the limit skipped"), result.output)
            // 100,000 followed connections and the file's own reading.
            XCTAssertLessThan(result.peakRSSKiB, 1024 * 1024, "peak RSS \(result.peakRSSKiB) KiB")
            print("hostile-pcap: 300,000 flows: peak RSS \(result.peakRSSKiB / 1024) MiB: \(result.output.prefix(200))")
        }
    }
}
