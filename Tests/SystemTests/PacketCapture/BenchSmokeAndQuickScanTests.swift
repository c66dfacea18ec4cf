import Foundation
import NIOCore
import Protocol
@testable import VTPWire
import TestSupport
import XCTest

final class BenchSmokeAndQuickScanTests: XCTestCase {
    func testQuickIVORNScanMatchesTheParserOrDeclines() throws {
        let builder = TestEventBuilder(localIVO: "ivo://vtpbench.test/sender", eventSize: 1200)
        let document = builder.document(sequence: 3, sentNanos: 1)
        var buffer = ByteBuffer(string: document)
        guard case .voEvent(let parsed) = try VTPMessage.parse(buffer) else { return XCTFail("not an event") }
        XCTAssertEqual(QuickIVORN.scan(buffer), parsed.ivorn)

        buffer = ByteBuffer(string: "<?xml version='1.0'?>\n<!-- c -->\n<voe:VOEvent role='test' ivorn='ivo://a/b#c' version=\"2.0\"/>")
        XCTAssertEqual(QuickIVORN.scan(buffer), "ivo://a/b#c")
        // Shapes it must not guess at: the full parser decides.
        for text in [
            "<VOEvent ivorn=\"ivo://a/b#x&amp;y\"/>", "<Transport ivorn=\"ivo://x#1\"/>", "<VOEvent role=\"test\"/>",
            "<NotVOEvent ivorn=\"x\"/>", "<VOEvent xivorn=\"ivo://x#1\"/>", "garbage", "<", "",
        ] {
            XCTAssertNil(QuickIVORN.scan(ByteBuffer(string: text)), text)
        }
    }

    /// `scripts/bench-capture --smoke`: short live sender → receiver --capture-interface run.
    func testBenchCaptureSmoke() throws {
        let script = Tools.packageRoot.appendingPathComponent("scripts/bench-capture").path
        let bin = productsDirectory.path
        guard FileManager.default.isExecutableFile(atPath: bin + "/vtp-receiver") else {
            throw XCTSkip("vtp-receiver not built beside the tests")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: script)
        process.arguments = ["--smoke"]
        process.environment = ProcessInfo.processInfo.environment.merging(["VTPBENCH_BIN": bin]) { $1 }
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("2000/2000 events acked"), text)
        XCTAssertTrue(text.contains("0 dropped"), text)
        XCTAssertTrue(text.contains("wire_only 0, app_only 0, matched 2000"), text)
    }
}
