import BenchConfig
import Foundation
import ProxyCore

/// config.json as the sender and receiver load it (`--config`), and vtp-proxy's `--config`
/// file. A configuration that loads must be valid and survive being written back and loaded.
enum ConfigTarget {
    static func run(_ bytes: UnsafeRawBufferPointer) {
        let data = Data(bytes)
        if let config = try? BenchConfiguration.load(data: data, source: "fuzz.json") {
            FuzzCheck.expect((try? config.validate()) != nil, "a loaded configuration does not validate")
            let written = try? JSONSerialization.data(withJSONObject: config.jsonObject)
            let reloaded = written.flatMap { try? BenchConfiguration.load(data: $0, source: "rewritten") }
            FuzzCheck.expect(
                reloaded.map { sameSettings($0, config) } ?? false,
                "a loaded configuration changes when written back and loaded")
        }
        if let proxies = try? ProxyFileConfig.load(data: data, source: "fuzz.json") {
            for spec in proxies.proxies {
                FuzzCheck.expect((try? spec.validate()) != nil, "a loaded proxy does not validate")
                var random = SystemRandomNumberGenerator()
                _ = ConnectionPlan.make(from: spec.toxics, using: &random)
            }
        }
    }

    /// Equal key by key; seconds to within 1e-12 relative. Foundation's JSON reader does not
    /// round every decimal correctly (it reads 0.30000000000000004 back as a different double),
    /// so a duration written and read again may move in its last bit.
    static func sameSettings(_ a: BenchConfiguration, _ b: BenchConfiguration) -> Bool {
        let (x, y) = (a.jsonObject, b.jsonObject)
        guard Set(x.keys) == Set(y.keys) else { return false }
        return x.keys.allSatisfy { key in
            if let p = x[key] as? Double, let q = y[key] as? Double, !(x[key] is Int) {
                return abs(p - q) <= 1e-12 * max(1, abs(p))
            }
            return String(describing: x[key]!) == String(describing: y[key]!)
        }
    }
}
