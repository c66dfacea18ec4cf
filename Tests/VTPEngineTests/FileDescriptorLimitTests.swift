#if canImport(Glibc)
import Glibc
#endif
import VTPEngine
import XCTest

/// The receiver takes every descriptor the hard limit allows before it accepts connections.
final class FileDescriptorLimitTests: XCTestCase {
    func testALowSoftLimitIsRaisedToTheHardLimit() throws {
        var saved = rlimit()
        try XCTSkipUnless(getrlimit(resource, &saved) == 0, "cannot read RLIMIT_NOFILE")
        try XCTSkipIf(saved.rlim_max < 1024, "hard limit too low to lower the soft one below it")
        defer { _ = setrlimit(resource, &saved) }
        var lowered = saved
        lowered.rlim_cur = 256
        XCTAssertEqual(setrlimit(resource, &lowered), 0)
        XCTAssertEqual(FileDescriptorLimit.current, 256)
        let hard = saved.rlim_max == rlim_t.max ? UInt64.max : UInt64(saved.rlim_max)
        XCTAssertEqual(FileDescriptorLimit.raiseToHardLimit(), .raised(from: 256, to: hard))
        XCTAssertEqual(FileDescriptorLimit.current, hard)
        XCTAssertEqual(FileDescriptorLimit.raiseToHardLimit(), .sufficient, "already at the hard limit")
    }

    private let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
}
