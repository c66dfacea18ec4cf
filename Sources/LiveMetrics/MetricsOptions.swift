import ArgumentParser

/// `--metrics HOST:PORT`, the same flag on every tool that serves live metrics.
public struct MetricsOptions: ParsableArguments {
    @Option(
        name: .customLong("metrics"),
        help: ArgumentHelp(
            "Serve live Prometheus metrics at http://HOST:PORT/metrics while running, e.g. 127.0.0.1:9464.",
            valueName: "host:port"))
    public var address: String?

    public init() {}

    /// The parsed address; a bad value is a usage error (exit 64) naming the flag.
    public func parsed() throws -> MetricsAddress? {
        guard let address else { return nil }
        do {
            return try MetricsAddress(parsing: address)
        } catch {
            throw ValidationError(error.description)
        }
    }
}
