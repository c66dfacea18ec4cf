import Foundation
import PacketCapture
import XCTest

@testable import PGSniff

final class PGLatencyInferenceTests: XCTestCase {
    let server = Endpoint(IPAddress("10.0.0.2")!, 5432)
    let clientA = Endpoint(IPAddress("10.0.0.1")!, 50_001)
    let clientB = Endpoint(IPAddress("fd00::7")!, 50_002)
    let serverV6 = Endpoint(IPAddress("fd00::2")!, 5432)

    /// Writes the segments to a pcap file (as tcpdump would), then runs `sniffFile` on it.
    func sniff(
        _ segments: [TCPSegment], linkType: UInt32 = LinkType.ethernet, file: StaticString = #filePath, line: UInt = #line
    ) throws -> (timings: [PGQueryTiming], counters: PGSniffCounters) {
        let (timings, counters, _) = try sniffWithDecode(segments, linkType: linkType, file: file, line: line)
        return (timings, counters)
    }

    func sniffWithDecode(
        _ segments: [TCPSegment], linkType: UInt32 = LinkType.ethernet, file: StaticString = #filePath, line: UInt = #line
    ) throws -> (timings: [PGQueryTiming], counters: PGSniffCounters, decode: DecodeCounters) {
        var writer = PcapFileWriter(linkType: linkType, precision: .nanoseconds)
        for segment in segments {
            writer.append(CapturedPacket(timestampNanos: segment.timestampNanos, data: PacketBuilder.frame(for: segment, linkType: linkType)))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgsniff-\(UUID().uuidString).pcap").path
        try writer.write(to: path)
        defer { try? FileManager.default.removeItem(atPath: path) }
        var timings: [PGQueryTiming] = []
        let (counters, decode, _) = try sniffFile(path: path, serverPorts: [5432]) { timings.append($0) }
        XCTAssertEqual(decode.packets, segments.count, file: file, line: line)
        XCTAssertEqual(counters.protocolErrors, 0, file: file, line: line)
        return (timings, counters, decode)
    }

    /// A connected, logged-in dialogue: handshake at 0, startup at 100 µs, login answer at 300 µs.
    func loggedIn(_ client: Endpoint, server: Endpoint? = nil, at start: Int64 = 0) -> Dialogue {
        var dialogue = Dialogue(client: client, server: server ?? self.server)
        dialogue.handshake(at: start)
        dialogue.clientSends(Wire.startup(), at: start + 100)
        dialogue.serverSends(Wire.loginResponse, at: start + 300)
        dialogue.clientAcks(at: start + 340)
        return dialogue
    }

    func us(_ nanos: Int64?) -> Int64? { nanos.map { $0 / 1_000 } }

    func testSimpleQueryResponseAndPureAck() throws {
        var d = loggedIn(clientA)
        d.clientSends(Wire.query("SELECT 1"), at: 1_000)
        d.serverSends(Wire.selectOneResponse(), at: 1_100)
        d.clientAcks(at: 1_140)
        let (timings, counters) = try sniff(d.segments)
        XCTAssertEqual(timings.map(\.kind), [.startup, .simpleQuery])
        let startup = timings[0]
        XCTAssertEqual(us(startup.responseNanos), 200)
        XCTAssertEqual(us(startup.ackDelayNanos), 40)
        let query = timings[1]
        XCTAssertEqual(query.text, "SELECT 1")
        XCTAssertEqual(query.flow, PGFlowKey(client: clientA, server: server))
        XCTAssertEqual(us(query.responseNanos), 100)
        XCTAssertEqual(us(query.completionNanos), 100)
        XCTAssertEqual(us(query.ackDelayNanos), 40)
        XCTAssertFalse(query.ackPiggybacked)
        XCTAssertNil(query.error)
        XCTAssertEqual(counters.requests, 2)
        XCTAssertEqual(counters.pureAcks, 2)
        XCTAssertEqual(counters.flows, 1)
        XCTAssertEqual(counters.midStreamFlows, 0)
    }

    func testQuerySplitAcrossSegmentsTimesFromItsLastByte() throws {
        var d = loggedIn(clientA)
        let sql = "SELECT '" + String(repeating: "x", count: 3_000) + "'"
        // Three client segments at 1000, 1005, 1010 µs; the response in two, at 1100 and 1105 µs.
        d.clientSends(Wire.query(sql), at: 1_000, cuts: [3, 1_500])
        let response = Wire.selectOneResponse()
        d.serverSends(response, at: 1_100, cuts: [response.count - 3])
        d.clientAcks(at: 1_130)
        let (timings, _) = try sniff(d.segments, linkType: LinkType.linuxSLL)
        let query = try XCTUnwrap(timings.last)
        XCTAssertEqual(query.kind, .simpleQuery)
        XCTAssertEqual(query.text, FlowState.clipped(sql))
        XCTAssertEqual(query.text.utf8.count, PGLatencyInference.maximumTextLength)
        XCTAssertEqual(us(query.responseNanos), 1_100 - 1_010)
        XCTAssertEqual(us(query.completionNanos), 1_105 - 1_010)
        XCTAssertEqual(us(query.ackDelayNanos), 1_130 - 1_105)
    }

    func testPipelinedQueriesInOneSegmentAreMatchedInOrder() throws {
        var d = loggedIn(clientA)
        d.clientSends(Wire.query("SELECT 1") + Wire.query("SELECT 2") + Wire.query("SELECT 3"), at: 1_000)
        d.serverSends(Wire.selectOneResponse("1"), at: 1_050)
        // Two complete responses in one segment.
        d.serverSends(Wire.selectOneResponse("2") + Wire.selectOneResponse("3"), at: 1_080)
        d.clientAcks(at: 1_100)
        let (timings, counters) = try sniff(d.segments)
        let queries = timings.filter { $0.kind == .simpleQuery }
        XCTAssertEqual(queries.map(\.text), ["SELECT 1", "SELECT 2", "SELECT 3"])
        XCTAssertEqual(queries.map { us($0.responseNanos) }, [50, 80, 80])
        // One ACK covers all three ReadyForQuery messages.
        XCTAssertEqual(queries.map { us($0.ackDelayNanos) }, [50, 20, 20])
        XCTAssertEqual(counters.pureAcks, 4)
    }

    func testExtendedProtocolRequestEndsAtSync() throws {
        var d = loggedIn(clientA)
        let batch = Wire.parse("SELECT $1::int") + Wire.bind + Wire.describePortal + Wire.execute + Wire.sync
        d.clientSends(batch, at: 2_000)
        d.serverSends(
            Wire.parseComplete + Wire.bindComplete + Wire.rowDescription() + Wire.dataRow("7")
                + Wire.commandComplete("SELECT 1") + Wire.readyForQuery, at: 2_250)
        d.clientAcks(at: 2_300)
        // Parse and Sync in separate segments (e.g. a client that flushes per message).
        d.clientSends(Wire.parse("SELECT 2") + Wire.bind + Wire.execute + Wire.sync, at: 3_000, cuts: [Wire.parse("SELECT 2").count])
        d.serverSends(
            Wire.parseComplete + Wire.bindComplete + Wire.dataRow("2") + Wire.commandComplete("SELECT 1")
                + Wire.readyForQuery, at: 3_200)
        d.clientAcks(at: 3_240)
        let (timings, _) = try sniff(d.segments)
        let queries = timings.filter { $0.kind == .extendedQuery }
        XCTAssertEqual(queries.count, 2)
        XCTAssertEqual(queries.map(\.text), ["SELECT $1::int", "SELECT 2"])
        XCTAssertEqual(queries.map { us($0.responseNanos) }, [250, 195])
        XCTAssertEqual(queries.map { us($0.ackDelayNanos) }, [50, 40])
    }

    func testErrorResponseIsReportedWithItsRequest() throws {
        var d = loggedIn(clientA)
        d.clientSends(Wire.query("SELEC 1"), at: 1_000)
        d.serverSends(Wire.errorResponse(code: "42601", message: "syntax error at or near \"SELEC\"") + Wire.readyForQuery, at: 1_070)
        d.clientAcks(at: 1_110)
        // Extended: the error skips to Sync; one ReadyForQuery for the whole batch.
        d.clientSends(Wire.parse("SELECT nope") + Wire.bind + Wire.execute + Wire.sync, at: 2_000)
        d.serverSends(Wire.errorResponse(code: "42703", message: "column \"nope\" does not exist") + Wire.readyForQuery, at: 2_090)
        d.clientAcks(at: 2_120)
        let (timings, _) = try sniff(d.segments)
        let failed = timings.filter { $0.kind != .startup }
        XCTAssertEqual(failed.map(\.error), ["42601: syntax error at or near \"SELEC\"", "42703: column \"nope\" does not exist"])
        XCTAssertEqual(failed.map { us($0.completionNanos) }, [70, 90])
        XCTAssertEqual(failed.map { us($0.ackDelayNanos) }, [40, 30])
    }

    func testInterleavedClientsIPv4AndIPv6AreNotConfused() throws {
        // vcpgmon pairs any payload with the next bare ACK; here B's ACK comes first.
        var a = loggedIn(clientA)
        var b = loggedIn(clientB, server: serverV6, at: 10)
        a.clientSends(Wire.query("SELECT 'a'"), at: 1_000)
        b.clientSends(Wire.query("SELECT 'b'"), at: 1_010)
        b.serverSends(Wire.selectOneResponse("b"), at: 1_030)
        a.serverSends(Wire.selectOneResponse("a"), at: 1_060)
        b.clientAcks(at: 1_070)
        a.clientAcks(at: 1_200)
        let merged = (a.segments + b.segments).sorted { $0.timestampNanos < $1.timestampNanos }
        let (timings, counters) = try sniff(merged)
        XCTAssertEqual(counters.flows, 2)
        let queries = Dictionary(uniqueKeysWithValues: timings.filter { $0.kind == .simpleQuery }.map { ($0.text, $0) })
        let fromA = try XCTUnwrap(queries["SELECT 'a'"])
        let fromB = try XCTUnwrap(queries["SELECT 'b'"])
        XCTAssertEqual(fromA.flow.client, clientA)
        XCTAssertEqual(fromB.flow.client, clientB)
        XCTAssertEqual(fromB.flow.description, "[fd00::7]:50002 -> [fd00::2]:5432")
        XCTAssertEqual(us(fromA.responseNanos), 60)
        XCTAssertEqual(us(fromB.responseNanos), 20)
        XCTAssertEqual(us(fromA.ackDelayNanos), 140)
        XCTAssertEqual(us(fromB.ackDelayNanos), 40)
    }

    func testRetransmittedAndOutOfOrderSegments() throws {
        var d = loggedIn(clientA)
        let query = Wire.query("SELECT 1")
        d.clientSends(query, at: 1_000)
        // The client retransmits the query (same sequence number) 200 µs later.
        var retransmission = d.segments.last!
        retransmission.timestampNanos = Dialogue.nanos(1_200)
        d.segments.append(retransmission)
        let response = Wire.selectOneResponse()
        d.serverSends(response, at: 1_300, cuts: [10])
        // The two server segments arrive swapped.
        let count = d.segments.count
        d.segments.swapAt(count - 1, count - 2)
        d.clientAcks(at: 1_400)
        let (timings, counters) = try sniff(d.segments)
        let timing = try XCTUnwrap(timings.last)
        XCTAssertEqual(timing.kind, .simpleQuery)
        XCTAssertEqual(counters.retransmittedSegments, 1)
        XCTAssertEqual(counters.outOfOrderSegments, 1)
        // The query time is the original transmission's; the response is complete when the
        // late first piece (sent at 1300 µs) arrives.
        XCTAssertEqual(us(timing.responseNanos), 300)
        XCTAssertEqual(us(timing.ackDelayNanos), 1_400 - 1_305)
    }

    func testAckPiggybackedOnTheNextQuery() throws {
        var d = loggedIn(clientA)
        d.clientSends(Wire.query("SELECT 1"), at: 1_000)
        d.serverSends(Wire.selectOneResponse(), at: 1_100)
        // No pure ACK: the next query carries the acknowledgment.
        d.clientSends(Wire.query("SELECT 2"), at: 1_150)
        d.serverSends(Wire.selectOneResponse("2"), at: 1_250)
        d.clientAcks(at: 1_290)
        let (timings, counters) = try sniff(d.segments)
        let queries = timings.filter { $0.kind == .simpleQuery }
        XCTAssertEqual(queries.map(\.text), ["SELECT 1", "SELECT 2"])
        XCTAssertTrue(queries[0].ackPiggybacked)
        XCTAssertNil(queries[0].ackNanos)
        XCTAssertEqual(us(queries[1].ackDelayNanos), 40)
        XCTAssertEqual(counters.piggybackedAcks, 1)
    }

    func testConnectionAlreadyOpenWhenCaptureStarts() throws {
        var d = loggedIn(clientA)
        let before = d.segments.count
        d.clientSends(Wire.query("SELECT 1"), at: 5_000)
        d.serverSends(Wire.selectOneResponse(), at: 5_080)
        d.clientAcks(at: 5_100)
        let (timings, counters) = try sniff(Array(d.segments[before...]))
        XCTAssertEqual(counters.midStreamFlows, 1)
        XCTAssertEqual(timings.map(\.text), ["SELECT 1"])
        XCTAssertEqual(us(timings.first?.responseNanos), 80)
    }

    func testEncryptedConnectionIsSkipped() throws {
        var d = Dialogue(client: clientA, server: server)
        d.handshake(at: 0)
        d.clientSends(Wire.sslRequest, at: 100)
        d.serverSends([UInt8(ascii: "S")], at: 150)
        d.clientSends([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5], at: 200)  // TLS ClientHello-ish
        d.serverSends([0x16, 0x03, 0x03, 0x00, 0x02, 9, 9], at: 260)
        let (timings, counters) = try sniff(d.segments)
        XCTAssertTrue(timings.isEmpty)
        XCTAssertEqual(counters.encryptedFlows, 1)
    }

    func testSSLRefusedThenPlainStartupIsFollowed() throws {
        var d = Dialogue(client: clientA, server: server)
        d.handshake(at: 0)
        d.clientSends(Wire.sslRequest, at: 100)
        d.serverSends([UInt8(ascii: "N")], at: 150)
        d.clientSends(Wire.startup(), at: 200)
        d.serverSends(Wire.loginResponse, at: 400)
        d.clientSends(Wire.query("SELECT 1"), at: 500)
        d.serverSends(Wire.selectOneResponse(), at: 560)
        d.clientAcks(at: 600)
        let (timings, counters) = try sniff(d.segments, linkType: LinkType.raw)
        XCTAssertEqual(timings.map(\.kind), [.startup, .simpleQuery])
        XCTAssertEqual(us(timings.last?.responseNanos), 60)
        XCTAssertEqual(counters.encryptedFlows, 0)
        XCTAssertEqual(counters.piggybackedAcks, 1)  // the query acked the login's ReadyForQuery
    }

    func testUnacknowledgedAtEndOfCaptureIsStillReported() throws {
        var inference = PGLatencyInference(serverPort: 5432)
        var d = loggedIn(clientA)
        d.clientSends(Wire.query("SELECT 1"), at: 1_000)
        d.serverSends(Wire.selectOneResponse(), at: 1_050)
        var emitted: [PGQueryTiming] = []
        for segment in d.segments { emitted += inference.ingest(segment) }
        XCTAssertEqual(emitted.map(\.kind), [.startup])
        emitted = inference.finish()
        XCTAssertEqual(emitted.map(\.text), ["SELECT 1"])
        XCTAssertNil(emitted.first?.ackNanos)
        XCTAssertEqual(inference.counters.unacknowledged, 1)
        XCTAssertEqual(inference.openFlows, 0)
    }

    func testGarbageFromClientIsAProtocolErrorNotACrash() {
        var inference = PGLatencyInference(serverPort: 5432)
        var d = loggedIn(clientA)
        d.clientSends([UInt8(ascii: "Q"), 0, 0, 0, 1, 0xff], at: 1_000)  // length 1 < 4
        d.clientSends(Wire.query("SELECT 1"), at: 2_000)  // resynchronises on a clean segment
        d.serverSends(Wire.selectOneResponse(), at: 2_050)
        d.clientAcks(at: 2_090)
        var timings: [PGQueryTiming] = []
        for segment in d.segments { timings += inference.ingest(segment) }
        XCTAssertEqual(inference.counters.protocolErrors, 1)
        XCTAssertEqual(timings.filter { $0.kind == .simpleQuery }.map(\.text), ["SELECT 1"])
    }

    /// One treatment of capture loss (PacketCapture's reassembly): the hole is waited for 3 s of
    /// capture time, then counted as a reassembly gap; what was outstanding is unanswered and the
    /// connection resynchronises on the next clean run of messages.
    func testCaptureLossIsCountedAndTheConnectionResynchronised() throws {
        var d = loggedIn(clientA)
        d.clientSends(Wire.query("SELECT 1"), at: 1_000)
        d.serverSends(Wire.selectOneResponse(), at: 1_100, cuts: [10])
        let lost = d.segments.count - 2  // the answer's first 10 bytes never reach the capture
        d.clientAcks(at: 1_200)
        // 4 s later, past the hole's 3 s: this answer arrives behind the hole, which is given up.
        d.clientSends(Wire.query("SELECT 2"), at: 4_000_000)
        d.serverSends(Wire.selectOneResponse("2"), at: 4_000_100)
        d.clientAcks(at: 4_000_200)
        d.clientSends(Wire.query("SELECT 3"), at: 5_000_000)
        d.serverSends(Wire.selectOneResponse("3"), at: 5_000_080)
        d.clientAcks(at: 5_000_120)
        var segments = d.segments
        segments.remove(at: lost)
        let (timings, counters, decode) = try sniffWithDecode(segments)
        XCTAssertEqual(decode.reassemblyGaps, 1)
        XCTAssertEqual(decode.gapBytes, 10)
        XCTAssertEqual(counters.unanswered, 2, "SELECT 1 and SELECT 2 were outstanding at the hole")
        XCTAssertEqual(timings.map(\.kind), [.startup, .simpleQuery])
        let after = try XCTUnwrap(timings.last)
        XCTAssertEqual(after.text, "SELECT 3")
        XCTAssertEqual(us(after.responseNanos), 80)
        XCTAssertEqual(us(after.ackDelayNanos), 40)
    }

    func testSequenceNumbersWrapAround() throws {
        var d = Dialogue(client: clientA, server: server, clientISN: UInt32.max - 20, serverISN: UInt32.max - 30)
        d.handshake(at: 0)
        d.clientSends(Wire.startup(), at: 100)
        d.serverSends(Wire.loginResponse, at: 300)
        d.clientAcks(at: 340)
        d.clientSends(Wire.query("SELECT 1"), at: 1_000)
        d.serverSends(Wire.selectOneResponse(), at: 1_100)
        d.clientAcks(at: 1_150)
        let (timings, _) = try sniff(d.segments)
        XCTAssertEqual(timings.map { us($0.ackDelayNanos) }, [40, 50])
    }
}

final class FlowExpiryTests: XCTestCase {
    func testSilentConnectionIsForgottenAfterTheIdleTimeout() {
        var inference = PGLatencyInference(serverPorts: [5432], idleTimeoutNanos: 1_000_000_000)  // 1 s
        var quiet = Dialogue(client: Endpoint(IPAddress("10.0.0.1")!, 50_001), server: Endpoint(IPAddress("10.0.0.2")!, 5432))
        quiet.handshake(at: 0)
        quiet.clientSends(Wire.startup(), at: 100)
        quiet.serverSends(Wire.loginResponse, at: 300)  // never acknowledged: the capture lost the rest
        var busy = Dialogue(client: Endpoint(IPAddress("10.0.0.3")!, 50_003), server: Endpoint(IPAddress("10.0.0.2")!, 5432))
        busy.handshake(at: 1_500_000)  // 1.5 s later
        var emitted: [PGQueryTiming] = []
        for segment in quiet.segments + busy.segments { emitted += inference.ingest(segment) }
        XCTAssertEqual(inference.counters.expiredFlows, 1)
        XCTAssertEqual(inference.openFlows, 1)
        XCTAssertEqual(emitted.map(\.kind), [.startup], "the expired connection's answered request is still reported")
        XCTAssertEqual(inference.counters.unacknowledged, 1)
    }
}

/// A capture file cut short or corrupt part-way is analysed up to there, not thrown away.
final class SniffFileHostileTests: XCTestCase {
    func testACorruptRecordEndsTheAnalysisThereAndSaysWhy() throws {
        let server = Endpoint(IPAddress("10.0.0.2")!, 5432)
        var dialogue = Dialogue(client: Endpoint(IPAddress("10.0.0.1")!, 50_001), server: server)
        dialogue.handshake(at: 0)
        dialogue.clientSends(Wire.startup(), at: 100)
        dialogue.serverSends(Wire.loginResponse, at: 300)
        dialogue.clientAcks(at: 340)
        var writer = PcapFileWriter(linkType: LinkType.ethernet, precision: .nanoseconds)
        for segment in dialogue.segments {
            writer.append(CapturedPacket(timestampNanos: segment.timestampNanos, data: PacketBuilder.frame(for: segment, linkType: LinkType.ethernet)))
        }
        // A record whose captured length exceeds its original length.
        var bytes = writer.bytes
        bytes += [0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 10, 0, 0, 0] + [UInt8](repeating: 0, count: 100)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgsniff-\(UUID().uuidString).pcap").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        var timings: [PGQueryTiming] = []
        let (counters, decode, readError) = try sniffFile(path: path, serverPorts: [5432]) { timings.append($0) }
        XCTAssertEqual(decode.packets, dialogue.segments.count, "every record before the bad one")
        XCTAssertEqual(counters.requests, 1, "the startup was timed")
        XCTAssertEqual(timings.count, 1)
        guard case .corruptRecord(_, _, let reason)? = readError else { return XCTFail("\(String(describing: readError))") }
        XCTAssertTrue(reason.contains("exceeds original length"), reason)
    }
}
