import BenchConfig
import Foundation
import NIOCore
import PGWire
import PacketCapture
import Protocol

/// The seed corpora, made by the builders the tests and the tools use (the sender's events,
/// the receiver's acks, Comet's ack shape, PGWire's encoder, PacketCapture's pcap writer), so
/// the fuzzer starts from real traffic. `vtpbench-fuzz seeds DIR` writes them; `Fuzz/corpus`
/// holds the committed copy.
public enum FuzzSeeds {
    public static func seeds(for target: String) -> [(name: String, bytes: [UInt8])] {
        switch target {
        case "vtp-receiver": return receiver()
        case "vtp-sender-ack": return senderAck()
        case "pgwire-frontend": return frontend()
        case "pgwire-backend": return backend()
        case "pcap": return captures()
        case "config": return configs()
        case "proxy-control": return controlRequests()
        default: return []
        }
    }

    static let t0: Int64 = 1_795_486_949_000_000_000

    // MARK: VTP

    static func event(_ sequence: UInt64, size: Int = 0, clock: Bool = false) -> [UInt8] {
        let builder = TestEventBuilder(localIVO: "ivo://vtpbench.test/sender", runID: "0123456789ab", eventSize: size)
        var buffer = ByteBufferAllocator().buffer(capacity: 2048)
        builder.writeFramedDocument(
            sequence: sequence, sentNanos: t0 + Int64(sequence) * 1000,
            clockOffset: clock ? (offsetNanos: -1234, errorNanos: 567) : nil, into: &buffer)
        return Array(buffer.readableBytesView)
    }

    static func framed(_ text: String) -> [UInt8] { Array(VTPFraming.frame(text).readableBytesView) }

    static let ack = TransportMessage.ack(
        eventIVORN: "ivo://vtpbench.test/sender#0123456789ab-1", localIVO: "ivo://vtpbench.test/receiver", nowNanos: t0,
        params: [
            .init(name: TransportMessage.receivedNanosParam, value: String(t0 + 100_000)),
            .init(name: TransportMessage.repliedNanosParam, value: String(t0 + 150_000)),
        ])

    /// Comet's ack: its own prefix, white space and no Meta.
    static let cometAck = """
        <?xml version='1.0' encoding='UTF-8'?>
        <trn:Transport xmlns:trn="http://www.telescope-networks.org/xml/Transport/v1.1" \
        xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.0" role="ack">
          <Origin>ivo://vtpbench.test/sender#0123456789ab-1</Origin>
          <Response>ivo://bench.test/broker</Response>
          <TimeStamp>2026-11-24T02:22:29Z</TimeStamp>
        </trn:Transport>
        """

    static let cometNak = """
        <?xml version='1.0' encoding='UTF-8'?>
        <trn:Transport xmlns:trn="http://www.telescope-networks.org/xml/Transport/v1.1" version="1.0" role="nak">
          <Origin>ivo://vtpbench.test/sender#0123456789ab-2</Origin>
          <Response>ivo://bench.test/broker</Response>
          <TimeStamp>2026-11-24T02:22:29Z</TimeStamp>
          <Meta><Result>Previously seen</Result></Meta>
        </trn:Transport>
        """

    /// An event from another author: no sent_ns, timed by Who/Date.
    static let foreignEvent = """
        <?xml version="1.0"?><voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" \
        role="observation" ivorn="ivo://a.test/b#1"><Who><AuthorIVORN>ivo://a.test/b</AuthorIVORN>\
        <Date>2024-01-01T00:00:00.123456+01:00</Date></Who><What><Param name="seq" value="18446744073709551615"/>\
        <Param name="sent_ns" value="-9223372036854775808"/></What></voe:VOEvent>
        """

    static func receiver() -> [(String, [UInt8])] {
        [
            ("event", event(1)),
            ("event-padded", event(2, size: 1024)),
            ("event-clock-offset", event(3, clock: true)),
            ("events-pipelined", event(4) + event(5) + event(4)),
            ("event-foreign", framed(foreignEvent)),
            ("iamalive", Array(TransportMessage.iamalive(localIVO: "ivo://a.test/sender", nowNanos: t0).framed().readableBytesView)),
            ("comet-ack", framed(cometAck)),
            ("event-truncated", Array(event(6).dropLast(40))),
        ]
    }

    /// An ack whose receive/reply times are at the ends of Int64 (the clock-offset arithmetic).
    static let extremeAck = TransportMessage.ack(
        eventIVORN: "ivo://vtpbench.test/sender#0123456789ab-1", localIVO: "ivo://r.test/recv", nowNanos: t0,
        params: [
            .init(name: TransportMessage.receivedNanosParam, value: String(Int64.min)),
            .init(name: TransportMessage.repliedNanosParam, value: String(Int64.max)),
        ])

    static func senderAck() -> [(String, [UInt8])] {
        [
            ("ack", Array(ack.framed().readableBytesView)),
            ("ack-extreme-clock", Array(extremeAck.framed().readableBytesView)),
            ("comet-ack", framed(cometAck)),
            ("comet-nak", framed(cometNak)),
            ("iamalive", Array(TransportMessage.iamalive(localIVO: "ivo://r.test/recv", nowNanos: t0).framed().readableBytesView)),
            (
                "acks-pipelined",
                Array(ack.framed().readableBytesView)
                    + Array(TransportMessage.authenticate(localIVO: "ivo://r.test/recv", nowNanos: t0).framed().readableBytesView)
                    + Array(ack.framed().readableBytesView)
            ),
        ]
    }

    // MARK: PostgreSQL

    static func bytes(_ messages: [PGFrontendMessage]) -> [UInt8] {
        messages.flatMap { Array(PGEncoding.bytes($0).readableBytesView) }
    }

    static func bytes(_ messages: [PGBackendMessage]) -> [UInt8] {
        messages.flatMap { Array(PGEncoding.bytes($0).readableBytesView) }
    }

    static let startup = PGFrontendMessage.startup(
        protocolVersion: 3 << 16,
        parameters: [.init(name: "user", value: "postgres"), .init(name: "database", value: "bench")])

    static let extended: [PGFrontendMessage] = [
        .parse(statement: "", query: "SELECT $1::int4, $2::text", parameterTypes: [23, 25]),
        .bind(
            PGBind(
                portal: "", statement: "", parameterFormats: [1, 0],
                parameters: [ByteBuffer(bytes: [0, 0, 0, 7]), nil], resultFormats: [0])),
        .describe(.portal, name: ""), .execute(portal: "", maxRows: 0), .sync,
    ]

    static func frontend() -> [(String, [UInt8])] {
        [
            ("simple-query", bytes([startup, .query("SELECT 1"), .terminate])),
            ("extended-query", bytes([startup] + extended + [.terminate])),
            ("ssl-then-startup", bytes([.sslRequest, startup, .query("SELECT 1")])),
            ("cancel", bytes([.cancelRequest(processID: 4242, secretKey: -7)])),
            (
                "copy-and-auth",
                bytes([
                    startup, .authenticationResponse(ByteBuffer(string: "md5abc\0")), .query("COPY t FROM STDIN"),
                    .copyData(ByteBuffer(string: "1\t2\n")), .copyDone, .copyFail("no"), .flush,
                    .close(.statement, name: "s1"), .functionCall(ByteBuffer(bytes: [0, 0, 0, 1])),
                ])
            ),
        ]
    }

    static func backend() -> [(String, [UInt8])] {
        // RowDescription of one int4 column, by hand (its fields have no public initialiser).
        var row: [UInt8] = [0, 1] + Array("n\0".utf8) + [0, 0, 0, 0, 0, 0, 0, 0, 0, 23, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0]
        row = [UInt8(ascii: "T")] + withUnsafeBytes(of: UInt32(row.count + 4).bigEndian, Array.init) + row
        let startupReply = bytes([
            .authentication(.md5Password(salt: 0x0102_0304)), .authentication(.ok),
            .parameterStatus(name: "server_version", value: "15.4"), .backendKeyData(processID: 4242, secretKey: -7),
            .readyForQuery(.idle),
        ])
        let queryReply =
            row
            + bytes([
                .dataRow([ByteBuffer(string: "1"), nil]), .commandComplete(tag: "SELECT 1"), .readyForQuery(.idle),
            ])
        let errors = bytes([
            .errorResponse(PGErrorFields(fields: [UInt8(ascii: "S"): "ERROR", UInt8(ascii: "C"): "42601", UInt8(ascii: "M"): "syntax error"])),
            .noticeResponse(PGErrorFields(fields: [UInt8(ascii: "M"): "note"])), .readyForQuery(.failed),
        ])
        let extendedReply = bytes([
            .parseComplete, .bindComplete, .parameterDescription([23, 25]), .noData, .portalSuspended, .emptyQueryResponse,
            .closeComplete, .notification(processID: 1, channel: "ch", payload: "hi"),
            .negotiateProtocolVersion(newestMinor: 0, unrecognizedOptions: ["_pq_.x"]),
            .authentication(.sasl(mechanisms: ["SCRAM-SHA-256"])), .readyForQuery(.inTransaction),
        ])
        return [
            ("startup-reply", startupReply), ("query-reply", queryReply), ("errors", errors),
            ("extended-reply", extendedReply), ("ssl-refused", [UInt8(ascii: "N")] + startupReply),
        ]
    }

    // MARK: captures

    static let client = Endpoint(IPAddress("10.0.0.1")!, 40_000)
    static let client6 = Endpoint(IPAddress("fd00::1")!, 40_001)

    /// Handshake, the client's payloads, the server's replies (each acked), FIN both ways.
    static func conversation(
        client: Endpoint, serverPort: UInt16, requests: [[UInt8]], replies: [[UInt8]], start: Int64
    ) -> [TCPSegment] {
        let server = Endpoint(client.address.isIPv6 ? IPAddress("fd00::2")! : IPAddress("10.0.0.2")!, serverPort)
        var c: UInt32 = 1000
        var s: UInt32 = 5000
        var t = start
        func next() -> Int64 {
            t += 50_000
            return t
        }
        var segments = [
            TCPSegment(timestampNanos: next(), source: client, destination: server, sequence: c, flags: .syn),
            TCPSegment(timestampNanos: next(), source: server, destination: client, sequence: s, acknowledgment: c + 1, flags: [.syn, .ack]),
            TCPSegment(timestampNanos: next(), source: client, destination: server, sequence: c + 1, acknowledgment: s + 1, flags: .ack),
        ]
        c += 1
        s += 1
        for (request, reply) in zip(requests, replies + Array(repeating: [], count: max(0, requests.count - replies.count))) {
            segments.append(
                TCPSegment(timestampNanos: next(), source: client, destination: server, sequence: c, acknowledgment: s, flags: [.ack, .psh], payload: request))
            c &+= UInt32(request.count)
            guard !reply.isEmpty else { continue }
            segments.append(
                TCPSegment(timestampNanos: next(), source: server, destination: client, sequence: s, acknowledgment: c, flags: [.ack, .psh], payload: reply))
            s &+= UInt32(reply.count)
            segments.append(TCPSegment(timestampNanos: next(), source: client, destination: server, sequence: c, acknowledgment: s, flags: .ack))
        }
        segments.append(TCPSegment(timestampNanos: next(), source: client, destination: server, sequence: c, acknowledgment: s, flags: [.fin, .ack]))
        segments.append(TCPSegment(timestampNanos: next(), source: server, destination: client, sequence: s, acknowledgment: c + 1, flags: [.fin, .ack]))
        return segments
    }

    static func pcap(_ segments: [TCPSegment], linkType: UInt32, precision: TimestampPrecision = .nanoseconds, bigEndian: Bool = false)
        -> [UInt8]
    {
        var writer = PcapFileWriter(linkType: linkType, precision: precision, bigEndian: bigEndian)
        for segment in segments {
            writer.append(CapturedPacket(timestampNanos: segment.timestampNanos, data: PacketBuilder.frame(for: segment, linkType: linkType)))
        }
        return writer.bytes
    }

    static func captures() -> [(String, [UInt8])] {
        let vtp = conversation(
            client: client, serverPort: 8098, requests: [event(1), event(2)],
            replies: [Array(ack.framed().readableBytesView), framed(cometNak)], start: t0)
        let vtp6 = conversation(
            client: client6, serverPort: 8098, requests: [event(3) + event(4)], replies: [framed(cometAck)], start: t0)
        let postgres = conversation(
            client: client, serverPort: 5432,
            requests: [bytes([startup]), bytes([.query("SELECT 1")]), bytes(extended)],
            replies: [backend()[0].1, backend()[1].1, backend()[3].1], start: t0)
        // The event split over two segments, the second sent first (reordering).
        var reordered = conversation(client: client, serverPort: 8098, requests: [event(5)], replies: [], start: t0)
        let data = reordered.remove(at: 3)
        var first = data, second = data
        first.payload = Array(data.payload.prefix(100))
        second.payload = Array(data.payload.dropFirst(100))
        second.sequence = data.sequence &+ 100
        reordered.insert(contentsOf: [second, first], at: 3)
        let extreme = conversation(
            client: client, serverPort: 8098, requests: [framed(foreignEvent)], replies: [Array(extremeAck.framed().readableBytesView)],
            start: t0)
        return [
            ("vtp-ethernet", pcap(vtp, linkType: LinkType.ethernet)),
            ("vtp-extreme-timestamps", pcap(extreme, linkType: LinkType.ethernet)),
            ("vtp-sll-microseconds", pcap(vtp, linkType: LinkType.linuxSLL, precision: .microseconds)),
            ("vtp-ipv6-sll2", pcap(vtp6, linkType: LinkType.linuxSLL2)),
            ("vtp-null-big-endian", pcap(vtp, linkType: LinkType.null, bigEndian: true)),
            ("vtp-reordered-raw", pcap(reordered, linkType: LinkType.raw)),
            ("postgres-ethernet", pcap(postgres, linkType: LinkType.ethernet)),
            ("postgres-loop", pcap(postgres, linkType: LinkType.loop)),
        ]
    }

    // MARK: configuration and HTTP

    static func configs() -> [(String, [UInt8])] {
        let defaults = (try? JSONSerialization.data(withJSONObject: BenchConfiguration().jsonObject, options: [.sortedKeys])) ?? Data()
        let proxies = #"""
            {"control": "127.0.0.1:8474", "proxies": [
              {"name": "pg", "listen": "127.0.0.1:6432", "upstream": "127.0.0.1:5432", "protocol": "pg", "log": "-",
               "max_startup_length": 10000, "startup_timeout": "10s", "max_pending_startups": 256,
               "toxics": [{"type": "latency", "stream": "downstream", "attributes": {"latency": 50, "jitter": 5}},
                          {"type": "slicer", "stream": "upstream", "toxicity": 0.5, "attributes": {"average_size": 64, "delay": 10}}]},
              {"name": "vtp", "listen": "[::1]:8099", "upstream": "localhost:8098", "protocol": "vtp", "enabled": false}]}
            """#
        return [
            ("defaults", Array(defaults)),
            ("units", Array(#"{"period": "500ms", "ack_timeout": "2m", "events": 5, "mode": "persistent", "event_size": 64}"#.utf8)),
            ("proxies", Array(proxies.utf8)),
        ]
    }

    static func http(_ method: String, _ path: String, body: String = "", token: Bool = true, extra: String = "") -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n"
        if token { text += "Authorization: Bearer fuzz-token\r\n" }
        if !body.isEmpty { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        text += extra + "\r\n" + body
        return Array(text.utf8)
    }

    static func controlRequests() -> [(String, [UInt8])] {
        let toxic = #"{"name":"lag","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":50,"jitter":5}}"#
        let chunked = "POST /proxies/pg/toxics HTTP/1.1\r\nHost: x\r\nAuthorization: bearer fuzz-token\r\nTransfer-Encoding: chunked\r\n\r\n"
            + String(toxic.utf8.count, radix: 16) + "\r\n" + toxic + "\r\n0\r\n\r\n"
        return [
            ("list", http("GET", "/proxies")),
            ("add-toxic", http("POST", "/proxies/pg/toxics", body: toxic)),
            ("update-toxic", http("POST", "/proxies/pg/toxics/lag", body: #"{"toxicity":0.5,"attributes":{"latency":1e3}}"#)),
            ("disable", http("POST", "/proxies/pg", body: #"{"enabled":false}"#)),
            ("pipelined", http("GET", "/proxies/pg/toxics") + http("DELETE", "/proxies/pg/toxics/lag") + http("POST", "/reset")),
            ("no-token", http("GET", "/proxies", token: false, extra: "Connection: close\r\n")),
            ("chunked", Array(chunked.utf8)),
        ]
    }
}
