import Foundation
import NIOCore
import Protocol
import XCTest

/// Documents built to cost the parser time or to overflow the receiver's arithmetic.
final class HostileXMLTests: XCTestCase {
    private let limit = SafeXMLParser.maximumAttributesPerElement

    private func element(_ name: String, attributes count: Int, prefix: String = "a") -> String {
        var text = "<\(name)"
        for i in 0..<count { text += " \(prefix)\(i)=\"v\"" }
        return text + "/>"
    }

    private func event(who: String) -> String {
        #"<?xml version="1.0"?><voe:VOEvent xmlns:voe="http://www.ivoa.net/xml/VOEvent/v2.0" version="2.0" "#
            + #"role="test" ivorn="ivo://a.test/b#1">\#(who)<What><Param name="seq" value="1"/></What></voe:VOEvent>"#
    }

    private func timeParse(_ document: String) -> (Result<VTPMessage, Error>, Double) {
        var buffer = ByteBufferAllocator().buffer(capacity: document.utf8.count)
        buffer.writeString(document)
        let start = DispatchTime.now().uptimeNanoseconds
        let result = Result { try VTPMessage.parse(buffer) }
        return (result, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    func testAnElementWithNinetyThousandAttributesIsRefused() {
        var who = "<Who"
        for i in 0..<90_000 { who += " a\(i)=\"v\"" }
        who += "><AuthorIVORN>ivo://a.test/b</AuthorIVORN></Who>"
        let document = event(who: who)
        XCTAssertGreaterThan(document.utf8.count, 900_000)
        let (result, seconds) = timeParse(document)
        print("90,000 attributes on one element: refused in \(seconds) s")
        XCTAssertThrowsError(try result.get()) {
            XCTAssertEqual($0 as? VTPMessageError, .xml(.tooManyAttributes(limit: limit)))
            XCTAssertEqual("\($0)", "XML element has more than \(limit) attributes")
        }
    }

    func testTheLimitIsPerElementAndExact() throws {
        let atLimit = try SafeXMLParser.parse("<r>" + element("e", attributes: limit) + element("f", attributes: limit) + "</r>")
        XCTAssertEqual(atLimit.children.map(\.attributes.count), [limit, limit])
        XCTAssertEqual(atLimit.children[0].attributes["a\(limit - 1)"], "v")
        XCTAssertThrowsError(try SafeXMLParser.parse("<r>" + element("e", attributes: limit + 1) + "</r>")) {
            XCTAssertEqual($0 as? XMLParseError, .tooManyAttributes(limit: limit))
        }
    }

    private func declaring(_ count: Int, from first: Int = 0, name: String = "e", close: String = "/>") -> String {
        "<\(name)" + (first..<first + count).map { " xmlns:p\($0) = 'urn:x:\($0)'" }.joined() + close
    }

    func testNamespacesInScopeAreLimitedNotTheirTotal() throws {
        let scope = SafeXMLParser.maximumNamespacesInScope
        // Siblings each at the limit: fine, their declarations go out of scope with them.
        let siblings = try SafeXMLParser.parse(
            "<r>" + (0..<10).map { _ in declaring(scope) + declaring(scope, close: "></e>") }.joined() + "</r>")
        XCTAssertEqual(siblings.children.count, 20)
        for document in [
            "<r>" + declaring(scope + 1) + "</r>",
            declaring(scope / 2, name: "r", close: ">") + declaring(scope / 2 + 1, from: scope) + "</r>",
            #"<r xmlns="urn:d">"# + declaring(scope) + "</r>",
        ] {
            XCTAssertThrowsError(try SafeXMLParser.parse(document)) {
                XCTAssertEqual($0 as? XMLParseError, .tooManyNamespaces(limit: scope))
            }
        }
        // An attribute whose name merely starts with "xmlns" declares nothing.
        XCTAssertNoThrow(try SafeXMLParser.parse("<r" + (0..<scope + 1).map { " xmlnsish\($0)='1'" }.joined() + "/>"))
    }

    func testDeeplyNestedNamespacesWithPrefixedAttributesAreRefused() {
        // 60 levels × 200 declarations, then prefixed attributes: 4 s of libxml2 before the limit.
        var document = ""
        for level in 0..<60 { document += declaring(200, from: level * 200, close: ">") }
        document += String(repeating: "<f" + (0..<200).map { " p0:a\($0)='v'" }.joined() + "/>", count: 10)
        document += String(repeating: "</e>", count: 60)
        let (result, seconds) = timeParse(document)
        print("60 × 200 nested namespace declarations: refused in \(seconds) s")
        XCTAssertThrowsError(try result.get()) {
            XCTAssertEqual($0 as? VTPMessageError, .xml(.tooManyNamespaces(limit: SafeXMLParser.maximumNamespacesInScope)))
        }
    }

    func testManyElementsAtTheLimitParseInLinearTime() throws {
        // ~1 MB of elements that each carry the maximum: the worst a frame can do within the limit.
        var body = "<r>"
        while body.utf8.count < 1_000_000 { body += element("e", attributes: limit) }
        body += "</r>"
        let start = DispatchTime.now().uptimeNanoseconds
        let root = try SafeXMLParser.parse(body)
        print("\(root.children.count) elements × \(limit) attributes (\(body.utf8.count) bytes): "
            + "\(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) s")
        XCTAssertEqual(root.children.last?.attributes.count, limit)
    }

    func testMarkupThatOnlyLooksLikeAttributesIsNotCounted() throws {
        let lookalike = String(repeating: #"<x a="1" b="2" c="3">"#, count: limit)
        let document = """
            <?xml version="1.0" encoding="UTF-8"?><?pi \(String(repeating: "k=v ", count: limit + 1))?>\
            <r v="\(String(repeating: "=", count: limit + 1))" w='"=\(String(repeating: "x=y ", count: limit))' \
            q="a>b=c">\
            <!-- \(lookalike) -->text with = signs \(String(repeating: "= ", count: limit + 1)) &gt; &amp;\
            <![CDATA[\(lookalike)]]><c d="1"/></r>
            """
        let root = try SafeXMLParser.parse(document)
        XCTAssertEqual(root.attributes.count, 3)
        XCTAssertEqual(root.attributes["q"], "a>b=c")
        XCTAssertEqual(root.children.map(\.name), ["c"])
    }

    func testAttributesSharingALocalNameKeepTheLastValue() throws {
        // Same local name in two namespaces: one entry, the later value (as before the limit).
        for extra in [0, 40] {
            var tag = #"<r xmlns:p="urn:p" xmlns:q="urn:q" p:x="1""#
            for i in 0..<extra { tag += " y\(i)=\"\(i)\"" }
            tag += #" q:x="2" z="3"/>"#
            let root = try SafeXMLParser.parse(tag)
            XCTAssertEqual(root.attributes["x"], "2")
            XCTAssertEqual(root.attributes.count, 2 + extra)
            XCTAssertEqual(root.attributes.pairs.map(\.name).first, "x", "first position kept")
        }
    }

    func testDatesOutsideTheNanosecondRangeAreInvalidNotATrap() throws {
        for date in ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2262-04-11T23:47:16.854775808Z", "1677-09-21T00:12:43.145224191Z"] {
            XCTAssertNil(ISO8601Time.parseNanos(date), date)
            let xml = #"<VOEvent role="test" ivorn="ivo://a.test/b#1"><Who><Date>\#(date)</Date></Who></VOEvent>"#
            guard case .voEvent(let event) = try VTPMessage.parse(xml) else { return XCTFail() }
            XCTAssertThrowsError(try event.sendTimestampNanos()) {
                XCTAssertEqual($0 as? VTPMessageError, .invalidTimestamp(field: "Who/Date", value: date))
            }
        }
        // The last representable instants still parse.
        XCTAssertEqual(ISO8601Time.parseNanos("2262-04-11T23:47:16.854775807Z"), Int64.max)
        XCTAssertEqual(ISO8601Time.parseNanos("1677-09-21T00:12:43.145224192Z"), Int64.min)
    }
}
