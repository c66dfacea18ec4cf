import Foundation

public struct HTMLReport: Sendable {
    public var digests: [RunDigest]
    public var sweepTag: String?
    public var storeName: String

    public init(digests: [RunDigest], sweepTag: String?, storeName: String) {
        self.digests = digests
        self.sweepTag = sweepTag
        self.storeName = storeName
    }

    public func render() -> String { "<!doctype html><title>vtpbench</title>" }
}
