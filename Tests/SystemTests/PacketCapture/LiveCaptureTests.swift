import Foundation
import Glibc
import PacketCapture
import Protocol
import VTPWire
import TestSupport
import XCTest

/// Live capture on loopback (CI runs as root). Bounded: a few packets, timeouts of seconds.
final class LiveCaptureTests: XCTestCase {
    func testUnknownInterfaceAndBadFilterAreClearErrors() {
        XCTAssertThrowsError(try LiveCapture(interface: "nosuch0")) {
            guard case .noSuchInterface(let name, _) = $0 as? LiveCaptureError else { return XCTFail("\($0)") }
            XCTAssertEqual(name, "nosuch0")
            XCTAssertTrue("\($0)".contains("ip -brief link"))
        }
        XCTAssertThrowsError(try LiveCapture(interface: "lo", filter: "tcp port banana")) {
            guard case .badFilter = $0 as? LiveCaptureError else { return XCTFail("\($0)") }
        }
    }

    /// Without CAP_NET_RAW (dropped from the bounding set by setpriv), the tool says what to do.
    func testMissingPrivilegeIsAClearError() throws {
        let tool = productsDirectory.appendingPathComponent("vtp-capture").path
        guard FileManager.default.isExecutableFile(atPath: tool), FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
        else { throw XCTSkip("needs the vtp-capture product and setpriv") }
        let result = try runProcess(
            "/usr/bin/setpriv",
            ["--bounding-set", "-net_raw,-net_admin", tool, "record", "--port", "9", "--output", "/dev/null", "--seconds", "0.1"])
        XCTAssertEqual(result.status, 2, "the run could not be carried out")
        XCTAssertTrue(result.stderr.contains("no permission to capture on lo"), result.stderr)
        XCTAssertTrue(result.stderr.contains("setcap cap_net_raw"), result.stderr)
    }

    /// A real TCP connection on 127.0.0.1: handshake, a VTP frame written in two parts, a reply.
    func testLoopbackCaptureReassemblesARealConnection() throws {
        let listener = try TCPListener()
        let capture = try LiveCapture(interface: "lo", filter: "tcp port \(listener.port)")
        XCTAssertEqual(capture.linkType, LinkType.ethernet)  // Linux lo: fake Ethernet header
        XCTAssertEqual(capture.precision, .nanoseconds)

        let document = TestEventBuilder(localIVO: "ivo://vtpbench.test/live", eventSize: 900)
            .document(sequence: 7, sentNanos: WallClock.nowNanos())
        let frame = vtpFrame(document)
        let before = WallClock.nowNanos()
        let client = try TCPClient(port: listener.port)
        let server = try listener.accept()
        try client.send(Array(frame[..<100]))
        usleep(2000)  // separate segments
        try client.send(Array(frame[100...]))
        let received = try server.receive(count: frame.count)
        XCTAssertEqual(received, frame)
        try server.send(vtpFrame("<reply/>"))
        _ = try client.receive(count: 12)
        client.close()
        server.close()
        let after = WallClock.nowNanos()

        var analyzer = VTPWireAnalyzer(port: UInt16(listener.port))
        var packets: [CapturedPacket] = []
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            try capture.poll(timeoutMillis: 50) { packets.append($0) }
            if packets.contains(where: { PacketDecoder.decode($0, linkType: capture.linkType).isFin }) && packets.count >= 10 {
                break
            }
        }
        for packet in packets { _ = analyzer.add(packet, linkType: capture.linkType) }
        _ = analyzer.finish()
        let stats = try capture.statistics()
        capture.close()

        XCTAssertGreaterThanOrEqual(stats.received, UInt64(packets.count))
        XCTAssertEqual(stats.dropped, 0)
        XCTAssertTrue(packets.allSatisfy { $0.timestampNanos >= before - 1_000_000 && $0.timestampNanos <= after + 1_000_000 })
        XCTAssertEqual(analyzer.events.count, 1)
        XCTAssertEqual(analyzer.events.first?.sequence, 7)
        XCTAssertEqual(analyzer.counts.frames, 2)  // the event and the reply
        let report = analyzer.report()
        XCTAssertEqual(report.handshakes, 1)
        XCTAssertEqual(report.connections, 1)
        if let event = analyzer.events.first {
            XCTAssertGreaterThan(event.wireNanos, event.firstByteNanos)  // last byte came in the second write
            XCTAssertGreaterThanOrEqual(event.wireLatencyNanos ?? -1, 0)
        }
    }
}

extension PacketDecodeResult {
    var isFin: Bool {
        if case .segment(let s) = self { return s.flags.contains(.fin) }
        return false
    }
}

// MARK: - Minimal blocking sockets for the loopback test

struct SocketError: Error, CustomStringConvertible {
    var description: String
    init(_ what: String) { description = "\(what): \(String(cString: strerror(errno)))" }
}

final class TCPSocket {
    let fd: Int32
    init(fd: Int32) { self.fd = fd }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 { throw SocketError("send") }
            sent += n
        }
    }

    func receive(count: Int) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n <= 0 { throw SocketError("recv") }
            got += n
        }
        return buffer
    }

    func close() { Glibc.close(fd) }
}

final class TCPClient {
    let socket: TCPSocket
    init(port: Int) throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if status != 0 { throw SocketError("connect") }
        socket = TCPSocket(fd: fd)
    }
    func send(_ bytes: [UInt8]) throws { try socket.send(bytes) }
    func receive(count: Int) throws -> [UInt8] { try socket.receive(count: count) }
    func close() { socket.close() }
}

final class TCPListener {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else { throw SocketError("bind/listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func accept() throws -> TCPSocket {
        let client = Glibc.accept(fd, nil, nil)
        if client < 0 { throw SocketError("accept") }
        return TCPSocket(fd: client)
    }

    deinit { close(fd) }
}

/// `vtp-capture analyze` on bad files: exit status 1 and a message naming the problem.
final class CaptureToolTests: XCTestCase {
    func testAnalyzeReportsTruncatedAndMissingFiles() throws {
        let tool = productsDirectory.appendingPathComponent("vtp-capture").path
        guard FileManager.default.isExecutableFile(atPath: tool) else { throw XCTSkip("vtp-capture not built") }
        let c = Conversation()
        let frame = vtpFrame(TestEventBuilder(localIVO: "ivo://t/x", eventSize: 400).document(sequence: 1, sentNanos: 5))
        let file = pcapFile(
            [c.syn(at: 10), c.synAck(at: 20), c.ack(at: 30), c.clientData(frame, offset: 0, at: 40)],
            linkType: LinkType.ethernet, precision: .microseconds)
        let path = NSTemporaryDirectory() + "vtpbench-cut-\(getpid()).pcap"
        defer { unlink(path) }
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(file[..<(file.count - 100)])))
        let cut = try runProcess(tool, ["analyze", path, "--json"])
        XCTAssertEqual(cut.status, 64, "a cut file is bad input")
        XCTAssertTrue(cut.stderr.contains("truncated at offset"), cut.stderr)
        XCTAssertTrue(cut.stdout.contains("\"connections\" : 1"), cut.stdout)  // what was read is still reported

        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(file)))
        let whole = try runProcess(tool, ["analyze", path, "--port", "8098"])
        XCTAssertEqual(whole.status, 0, whole.stderr)
        XCTAssertTrue(whole.stdout.contains("1 events, 0 acks"), whole.stdout)

        let missing = try runProcess(tool, ["analyze", "/nonexistent/capture.pcap"])
        XCTAssertEqual(missing.status, 64, "a missing file is bad input")
        XCTAssertTrue(missing.stderr.contains("/nonexistent/capture.pcap: cannot open"), missing.stderr)
    }
}
