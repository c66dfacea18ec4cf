/// NTP-style clock offset from one request/reply exchange (all wall-clock nanoseconds):
/// t0 sender writes the event, t1 receiver receives it, t2 receiver sends the ack,
/// t3 sender reads the ack. Offset = receiver clock − sender clock.
public struct ClockSample: Sendable, Equatable {
    public var offsetNanos: Int64
    /// Round-trip network delay, excluding the receiver's processing time.
    public var delayNanos: Int64
    /// The true offset lies within offset ± errorBound (half the round-trip delay).
    public var errorBoundNanos: Int64 { max(0, delayNanos) / 2 }

    /// t1 and t2 come off the network (the ack's `received_ns`/`replied_ns`): any Int64. An
    /// exchange whose arithmetic would overflow is no measurement; it gets a negative delay,
    /// which marks it unusable (`ClockOffsetEstimator` drops those, as for a stepped clock).
    public init(sent t0: Int64, received t1: Int64, replied t2: Int64, ackRead t3: Int64) {
        func minus(_ a: Int64, _ b: Int64) -> Int64? {
            let (difference, overflow) = a.subtractingReportingOverflow(b)
            return overflow ? nil : difference
        }
        guard let toReceiver = minus(t1, t0), let fromReceiver = minus(t2, t3), let roundTrip = minus(t3, t0),
            let held = minus(t2, t1), case (let sum, false) = toReceiver.addingReportingOverflow(fromReceiver),
            let delay = minus(roundTrip, held)
        else {
            offsetNanos = 0
            delayNanos = -1
            return
        }
        offsetNanos = sum / 2
        delayNanos = delay
    }
}

/// Keeps the sample with the smallest delay among recent ones — the tightest bound, as
/// NTP's clock filter does — over a window long enough to ride out queueing spikes but
/// short enough to follow drift.
public struct ClockOffsetEstimator: Sendable {
    public let window: Int
    private var recent: [ClockSample] = []
    private var next = 0
    public private(set) var samples = 0
    /// The tightest sample in the window, kept up to date so reading it is O(1): the
    /// sender embeds it in every event it writes.
    public private(set) var estimate: ClockSample?

    public init(window: Int = 256) { self.window = max(1, window) }

    public mutating func add(_ sample: ClockSample) {
        guard sample.delayNanos >= 0 else { return }  // clocks stepped mid-exchange: useless
        samples += 1
        var evicted: ClockSample?
        if recent.count < window {
            recent.append(sample)
        } else {
            evicted = recent[next]
            recent[next] = sample
            next = (next + 1) % window
        }
        if let best = estimate, sample.delayNanos > best.delayNanos {
            // Rescan only when the best sample just left the window.
            if evicted == best { estimate = recent.min { $0.delayNanos < $1.delayNanos } }
        } else {
            estimate = sample
        }
    }
}

/// `clock_offset_s` in the summaries.
public struct ClockOffsetSummary: Codable, Sendable, Equatable {
    /// Receiver clock − sender clock, seconds.
    public var offset: Double
    public var errorBound: Double
    /// Exchanges the sender sampled (absent on the receiver, which only relays the estimate).
    public var samples: Int?

    enum CodingKeys: String, CodingKey {
        case offset, samples
        case errorBound = "error_bound"
    }

    public init(_ sample: ClockSample, samples: Int) {
        self.init(offset: Double(sample.offsetNanos) / 1e9, errorBound: Double(sample.errorBoundNanos) / 1e9, samples: samples)
    }

    public init(offset: Double, errorBound: Double, samples: Int?) {
        self.offset = offset
        self.errorBound = errorBound
        self.samples = samples
    }
}
