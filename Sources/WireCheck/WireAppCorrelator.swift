import LatencyStats
import VTPWire

/// One event seen both on the wire and by the application.
public struct WireAppPair: Sendable, Equatable {
    public var ivorn: String
    public var sentNanos: Int64
    /// Capture time of the event's last byte.
    public var wireNanos: Int64
    /// The application's clock reading after parsing the event.
    public var appNanos: Int64
    /// Saturated, as the receiver's own latency: `sentNanos` comes off the network (any Int64).
    public var wireLatencyNanos: Int64 { Self.since(sentNanos, until: wireNanos) }
    public var appLatencyNanos: Int64 { Self.since(sentNanos, until: appNanos) }
    /// The receiving application's own overhead: kernel → socket read → parse.
    public var appMinusWireNanos: Int64 { Self.since(wireNanos, until: appNanos) }

    static func since(_ start: Int64, until end: Int64) -> Int64 {
        let (difference, overflow) = end.subtractingReportingOverflow(start)
        return overflow ? (start < 0 ? .max : .min) : difference
    }
}

/// Pairs the application's events with the same events seen on the wire (by ivorn) and keeps
/// the statistics `--capture-interface` reports. A pure value type: feed it both sides in any
/// order; whatever is unpaired at the end is `wire_only` / `app_only`.
public struct WireAppCorrelator: Sendable {
    struct AppSide: Sendable {
        var sentNanos: Int64
        var appNanos: Int64
        var inWarmup: Bool
    }

    struct WireSide: Sendable {
        var sentNanos: Int64?
        var wireNanos: Int64
    }

    private var waitingForWire: [String: [AppSide]] = [:]
    private var waitingForApp: [String: [WireSide]] = [:]
    public private(set) var wireLatency = LatencyRecorder()
    public private(set) var appMinusWire = LatencyRecorder()
    public private(set) var matched = 0
    /// Pairs whose wire time is later than the application's reading (should never happen on
    /// one host; a sign of capture-clock or timestamp trouble).
    public private(set) var wireAfterApp = 0
    /// Kept pairs, for per-event output (only when `keepsPairs`).
    public private(set) var pairs: [WireAppPair] = []
    public var keepsPairs: Bool

    public init(keepsPairs: Bool = false) {
        self.keepsPairs = keepsPairs
    }

    public var appOnly: Int { waitingForWire.values.reduce(0) { $0 + $1.count } }
    public var wireOnly: Int { waitingForApp.values.reduce(0) { $0 + $1.count } }

    public mutating func recordApp(ivorn: String, sentNanos: Int64, appNanos: Int64, inWarmup: Bool = false) {
        let app = AppSide(sentNanos: sentNanos, appNanos: appNanos, inWarmup: inWarmup)
        if var wires = waitingForApp[ivorn], !wires.isEmpty {
            let wire = wires.removeFirst()
            waitingForApp[ivorn] = wires.isEmpty ? nil : wires
            pair(ivorn: ivorn, app: app, wire: wire)
        } else {
            waitingForWire[ivorn, default: []].append(app)
        }
    }

    public mutating func recordWire(_ event: WireEvent) {
        let wire = WireSide(sentNanos: event.sentNanos, wireNanos: event.wireNanos)
        if var apps = waitingForWire[event.ivorn], !apps.isEmpty {
            let app = apps.removeFirst()
            waitingForWire[event.ivorn] = apps.isEmpty ? nil : apps
            pair(ivorn: event.ivorn, app: app, wire: wire)
        } else {
            waitingForApp[event.ivorn, default: []].append(wire)
        }
    }

    private mutating func pair(ivorn: String, app: AppSide, wire: WireSide) {
        matched += 1
        let p = WireAppPair(ivorn: ivorn, sentNanos: app.sentNanos, wireNanos: wire.wireNanos, appNanos: app.appNanos)
        if p.appMinusWireNanos < 0 { wireAfterApp += 1 }
        if !app.inWarmup {
            wireLatency.record(nanos: p.wireLatencyNanos)
            appMinusWire.record(nanos: p.appMinusWireNanos)
        }
        if keepsPairs { pairs.append(p) }
    }
}
