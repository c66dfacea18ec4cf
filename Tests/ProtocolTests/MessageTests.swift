import NIOCore
import Protocol
import XCTest

final class MessageTests: XCTestCase {
    let builder = TestEventBuilder(localIVO: "ivo://vtpbench.test/sender", runID: "abc123", eventSize: 1024)

    func testEventRoundTripCarriesSequenceTimestampAndIdentity() throws {
        let sent: Int64 = 1_764_000_000_123_456_789
        let document = builder.document(sequence: 42, sentNanos: sent)
        guard case .voEvent(let event) = try VTPMessage.parse(document) else { return XCTFail("not an event") }
        XCTAssertEqual(event.ivorn, "ivo://vtpbench.test/sender#abc123-42")
        XCTAssertEqual(event.role, "test")
        XCTAssertEqual(event.sequence, 42)
        XCTAssertEqual(event.runID, "abc123")
        XCTAssertEqual(event.authorIVORN, "ivo://vtpbench.test/sender")
        XCTAssertEqual(try event.sendTimestampNanos(), sent)
        // Who/Date: ISO-8601 UTC with microseconds, matching the embedded nanoseconds.
        XCTAssertEqual(event.date, "2025-11-24T16:00:00.123456Z")
        XCTAssertEqual(ISO8601Time.parseNanos(event.date!), 1_764_000_000_123_456_000)
    }

    func testEventIsPaddedToTheRequestedSize() {
        for size in [0, 100, 1024, 4096, 65536] {
            let b = TestEventBuilder(localIVO: "ivo://x.test/s", runID: "r", eventSize: size)
            let length = b.document(sequence: 7, sentNanos: 1).utf8.count
            let minimum = TestEventBuilder(localIVO: "ivo://x.test/s", runID: "r", eventSize: 0)
                .document(sequence: 7, sentNanos: 1).utf8.count
            XCTAssertEqual(length, max(size, minimum), "size \(size)")
        }
    }

    func testEventsAreUniqueAcrossSequencesAndRuns() {
        let other = TestEventBuilder(localIVO: builder.localIVO, eventSize: 1024)
        XCTAssertNotEqual(builder.runID, other.runID)
        XCTAssertNotEqual(builder.document(sequence: 1, sentNanos: 5), builder.document(sequence: 2, sentNanos: 5))
        XCTAssertNotEqual(builder.document(sequence: 1, sentNanos: 5), other.document(sequence: 1, sentNanos: 5))
        XCTAssertTrue(builder.ivorn(sequence: 1).contains("#"), "Comet requires a #local_ID")
    }

    func testEventFallsBackToWhoDateWithoutSentNanos() throws {
        let xml = """
            <?xml version="1.0"?><voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" \
            role="test" ivorn="ivo://a.test/b#1"><Who><Date>2024-01-01T00:00:00.123456</Date></Who></voe:VOEvent>
            """
        guard case .voEvent(let event) = try VTPMessage.parse(xml) else { return XCTFail() }
        XCTAssertEqual(try event.sendTimestampNanos(), 1_704_067_200_123_456_000)
    }

    func testEventWithoutAnyTimestampIsATypedError() throws {
        let xml = #"<VOEvent version="2.0" role="test" ivorn="ivo://a.test/b#1"><Who/></VOEvent>"#
        guard case .voEvent(let event) = try VTPMessage.parse(xml) else { return XCTFail() }
        XCTAssertThrowsError(try event.sendTimestampNanos()) { XCTAssertEqual($0 as? VTPMessageError, .missingTimestamp) }
    }

    func testTransportMessagesRoundTrip() throws {
        let now: Int64 = 1_795_486_949_000_000_000
        let messages: [TransportMessage] = [
            .ack(eventIVORN: "ivo://a.test/b#1", localIVO: "ivo://r.test/recv", nowNanos: now),
            .nak(eventIVORN: "ivo://a.test/b#2", localIVO: "ivo://r.test/recv", reason: "Event rejected: <bad> & \"worse\"", nowNanos: now),
            .iamalive(localIVO: "ivo://r.test/recv", nowNanos: now),
            .authenticate(localIVO: "ivo://r.test/recv", nowNanos: now),
        ]
        for message in messages {
            guard case .transport(let parsed) = try VTPMessage.parse(message.xml) else { return XCTFail() }
            XCTAssertEqual(parsed, message)
        }
        XCTAssertEqual(messages[0].timestamp, "2026-11-24T02:22:29Z", "Comet's TimeStamp form")
    }

    func testTransportElementsFollowTheSchemaOrder() throws {
        var nak = TransportMessage.nak(eventIVORN: "ivo://a.test/b#2", localIVO: "ivo://r.test/recv", reason: "no")
        nak.params = [.init(name: "k", value: "v")]
        let xml = nak.xml
        let order = ["<Origin>", "<Response>", "<TimeStamp>", "<Meta>"].map { xml.range(of: $0)!.lowerBound }
        XCTAssertEqual(order, order.sorted())
        XCTAssertTrue(xml.contains(#"xmlns:trn="http://www.telescope-networks.org/xml/Transport/v1.1""#))
        XCTAssertTrue(xml.contains(#"role="nak""#))
        XCTAssertTrue(xml.contains("<Result>no</Result>"))
    }

    func testParsesACometStyleAck() throws {
        let xml = """
            <?xml version='1.0' encoding='UTF-8'?>
            <trn:Transport xmlns:trn="http://www.telescope-networks.org/xml/Transport/v1.1" \
            xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" version="1.0" role="ack">
              <Origin>ivo://vtpbench.test/sender#r-1</Origin>
              <Response>ivo://bench.test/broker</Response>
              <TimeStamp>2026-11-24T02:22:29Z</TimeStamp>
            </trn:Transport>
            """
        guard case .transport(let ack) = try VTPMessage.parse(xml) else { return XCTFail() }
        XCTAssertEqual(ack.role, .ack)
        XCTAssertEqual(ack.origin, "ivo://vtpbench.test/sender#r-1")
        XCTAssertEqual(ack.response, "ivo://bench.test/broker")
    }

    func testTransportWithoutTimestampIsATypedError() {
        let xml = #"<Transport role="ack" version="1.0"><Origin>ivo://a.test/b#1</Origin></Transport>"#
        XCTAssertThrowsError(try VTPMessage.parse(xml)) { XCTAssertEqual($0 as? VTPMessageError, .missingTimestamp) }
    }

    func testMalformedInputsAreTypedErrorsNotCrashes() {
        let cases: [String] = [
            "", "not xml at all", "<VOEvent", "<a><b></a>", "\u{0}\u{1}\u{2}", "<?xml version=\"1.0\"?>",
            #"<VOEvent role="test"/>"#, #"<Transport role="bogus"><Origin>x</Origin><TimeStamp>2020-01-01T00:00:00Z</TimeStamp></Transport>"#,
            #"<Transport role="ack"><TimeStamp>2020-01-01T00:00:00Z</TimeStamp></Transport>"#,
            #"<Transport role="ack"><Origin>o</Origin><TimeStamp>yesterday</TimeStamp></Transport>"#,
        ]
        for text in cases {
            XCTAssertThrowsError(try VTPMessage.parse(text), "input: \(text.debugDescription)") { error in
                XCTAssertTrue(error is VTPMessageError, "\(error)")
            }
        }
        XCTAssertThrowsError(try VTPMessage.parse("<html><body/></html>")) {
            XCTAssertEqual($0 as? VTPMessageError, .unexpectedRoot("html"))
        }
    }

    func testRandomBytesNeverCrashTheParser() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let count = Int.random(in: 0..<200, using: &generator)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var buffer = ByteBuffer()
            buffer.writeBytes(Array("<VOEvent ".utf8) + bytes)
            _ = try? VTPMessage.parse(buffer)
        }
    }

    func testDTDsEntitiesAndBombsAreRefused() {
        let attacks = [
            // external entity (file read)
            #"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><VOEvent ivorn="ivo://a#1" role="test">&x;</VOEvent>"#,
            // external DTD over the network
            #"<?xml version="1.0"?><!DOCTYPE VOEvent SYSTEM "http://127.0.0.1:1/evil.dtd"><VOEvent/>"#,
            // billion laughs
            """
            <?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\
            <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><VOEvent>&lol3;</VOEvent>
            """,
        ]
        for xml in attacks {
            XCTAssertThrowsError(try SafeXMLParser.parse(xml)) { XCTAssertEqual($0 as? XMLParseError, .doctypeNotAllowed) }
        }
        // An undeclared entity reference is a well-formedness error, never expanded.
        XCTAssertThrowsError(try SafeXMLParser.parse("<VOEvent>&undeclared;</VOEvent>"))
    }

    func testDeepNestingIsRefused() {
        let deep = String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100)
        XCTAssertThrowsError(try SafeXMLParser.parse(deep)) {
            XCTAssertEqual($0 as? XMLParseError, .nestingTooDeep(limit: SafeXMLParser.maximumDepth))
        }
    }

    func testTimestampFormattingRoundTripsAcrossCenturies() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<5000 {
            // 1900 … 2262 (the Int64 nanosecond limit), including leap days and century years.
            let nanos = Int64.random(in: -2_208_988_800_000_000_000...9_200_000_000_000_000_000, using: &generator)
            let micro = ISO8601Time.formatMicroseconds(nanos: nanos)
            let floorMicros = nanos >= 0 ? nanos / 1000 * 1000 : ((nanos - 999) / 1000) * 1000
            XCTAssertEqual(ISO8601Time.parseNanos(micro), floorMicros, micro)
        }
        XCTAssertEqual(ISO8601Time.formatSeconds(nanos: 951_782_400_000_000_000), "2000-02-29T00:00:00Z")
        XCTAssertEqual(ISO8601Time.formatSeconds(nanos: -1), "1969-12-31T23:59:59Z")
    }

    func testISO8601() {
        XCTAssertEqual(ISO8601Time.parseNanos("1970-01-01T00:00:00Z"), 0)
        XCTAssertEqual(ISO8601Time.parseNanos("1970-01-01T01:00:00+01:00"), 0)
        XCTAssertEqual(ISO8601Time.parseNanos("2026-11-24T02:22:29Z"), 1_795_486_949_000_000_000)
        XCTAssertEqual(ISO8601Time.parseNanos("2026-11-24T02:22:29.5"), 1_795_486_949_500_000_000)
        XCTAssertEqual(ISO8601Time.parseNanos("2026-11-24T02:22:29.1234567891234"), 1_795_486_949_123_456_789)
        for bad in ["", "2026-11-24", "2026-13-01T00:00:00", "2026-11-24T02:22:29.", "2026-11-24T02:22:29Zjunk"] {
            XCTAssertNil(ISO8601Time.parseNanos(bad), bad)
        }
        XCTAssertEqual(ISO8601Time.formatMicroseconds(nanos: 1_795_486_949_000_001_999), "2026-11-24T02:22:29.000001Z")
        XCTAssertEqual(ISO8601Time.formatSeconds(nanos: 1_795_486_949_999_999_999), "2026-11-24T02:22:29Z")
    }
}

final class TransportAnswerTests: XCTestCase {
    func testIamaliveAndAuthenticateAreAnsweredWithACopyNamingTheAnswerer() throws {
        let now: Int64 = 1_795_486_949_000_000_000
        for question in [
            TransportMessage.iamalive(localIVO: "ivo://t/broker", nowNanos: now - 5_000_000_000),
            .authenticate(localIVO: "ivo://t/broker", nowNanos: now - 5_000_000_000),
        ] {
            let answer = try XCTUnwrap(question.answer(from: "ivo://t/subscriber", nowNanos: now))
            XCTAssertEqual(answer.role, question.role)
            XCTAssertEqual(answer.origin, "ivo://t/broker", "a copy: the same Origin")
            XCTAssertEqual(answer.response, "ivo://t/subscriber")
            XCTAssertEqual(answer.timestamp, ISO8601Time.formatSeconds(nanos: now))
            guard case .transport(let parsed) = try VTPMessage.parse(answer.xml) else { return XCTFail() }
            XCTAssertEqual(parsed, answer)
        }
        XCTAssertNil(TransportMessage.ack(eventIVORN: "ivo://a/b#1", localIVO: nil).answer(from: "ivo://t/s"))
    }
}

final class EventIdentityTests: XCTestCase {
    func testASequenceIsReadBackFromItsIvornAndOnlyFromOurs() {
        let builder = TestEventBuilder(localIVO: "ivo://t/sender", runID: "abc", eventSize: 0)
        for sequence: UInt64 in [0, 7, 1 << 40] {
            XCTAssertEqual(builder.sequence(ofIVORN: builder.ivorn(sequence: sequence)), sequence)
        }
        let other = TestEventBuilder(localIVO: "ivo://t/sender", runID: "abd", eventSize: 0)
        XCTAssertNil(builder.sequence(ofIVORN: other.ivorn(sequence: 1)), "another run")
        for foreign in ["ivo://t/sender#abc-", "ivo://t/sender#abc-x1", "ivo://t/sender#abc--1", "ivo://t/sender#abc-+1", "ivo://t/sender#abc-01", "ivo://x/y#1"] {
            XCTAssertNil(builder.sequence(ofIVORN: foreign), foreign)
        }
    }

    func testTheWholeSequenceRangeReadsBackAndNothingBeyondIt() {
        let builder = TestEventBuilder(localIVO: "ivo://t/sender", runID: "abc", eventSize: 0)
        for sequence: UInt64 in [1, 9, 10, 99, 100, UInt64.max / 10, UInt64.max - 1, UInt64.max] {
            XCTAssertEqual(builder.sequence(ofIVORN: builder.ivorn(sequence: sequence)), sequence)
        }
        let prefix = "ivo://t/sender#abc-"
        for foreign in ["18446744073709551616", "99999999999999999999", "100000000000000000000", "1 ", " 1", "1é", "00"] {
            XCTAssertNil(builder.sequence(ofIVORN: prefix + foreign), foreign)
        }
        XCTAssertNil(builder.sequence(ofIVORN: "ivo://t/sendeR#abc-1"), "the prefix is compared exactly")
    }
}
