import CDelayLink
import Glibc
import LatencyStats

/// Settings of the forwarding loop beyond the two direction profiles.
public struct ForwarderSettings: Sendable {
    public var aToB: DirectionProfile
    public var bToA: DirectionProfile
    public var seed: UInt64
    /// Print an interval line this often (nil = only at exit).
    public var reportIntervalNanos: Int64?
    /// Stop by itself after this long (nil = until a signal).
    public var durationNanos: Int64?
    /// SCHED_FIFO priority to ask for (nil = normal scheduling).
    public var realtimePriority: Int32?

    public init(
        aToB: DirectionProfile, bToA: DirectionProfile, seed: UInt64 = 1, reportIntervalNanos: Int64? = nil,
        durationNanos: Int64? = nil, realtimePriority: Int32? = 10
    ) {
        self.aToB = aToB
        self.bToA = bToA
        self.seed = seed
        self.reportIntervalNanos = reportIntervalNanos
        self.durationNanos = durationNanos
        self.realtimePriority = realtimePriority
    }
}

/// Moves packets between two TUN devices, holding each one until its release time.
/// One thread, woken by epoll on the two devices, a timerfd armed at the earliest release
/// time (absolute CLOCK_MONOTONIC, so no poll-timeout rounding), a report timer and a stop fd.
public final class DelayLinkForwarder {
    private struct Direction {
        var scheduler: ReleaseScheduler
        var queue = ReleaseQueue<[UInt8]>()
        var interval = DirectionStats()
        var total = DirectionStats()
        let from: TunDevice
        let to: TunDevice
    }

    private enum Tag: UInt64 {
        case deviceA, deviceB, release, stop, report, deadline
    }

    private var directions: [Direction]
    private var random: SplitMix64
    private let settings: ForwarderSettings
    // Room for the largest GSO super-packet plus its virtio-net header (a short buffer would truncate).
    private var buffer = [UInt8](repeating: 0, count: 131_072)
    private var armedReleaseNanos: Int64 = 0
    public private(set) var realtime = false

    public init(a: TunDevice, b: TunDevice, settings: ForwarderSettings) {
        directions = [
            Direction(scheduler: ReleaseScheduler(profile: settings.aToB), from: a, to: b),
            Direction(scheduler: ReleaseScheduler(profile: settings.bToA), from: b, to: a),
        ]
        random = SplitMix64(seed: settings.seed)
        self.settings = settings
    }

    /// Runs until `stopFd` becomes readable (e.g. the termination pipe) or the duration ends.
    public func run(stopFd: Int32, log: (String) -> Void) throws(DelayLinkError) -> LinkReport {
        if let priority = settings.realtimePriority {
            let result = vtp_set_sched_fifo(priority)
            realtime = result == 0
            if !realtime {
                log("vtp-netem: SCHED_FIFO not permitted (\(DelayLinkError.system(call: "sched_setscheduler", errno: -result, hint: "")));"
                    + " running with normal scheduling, expect a larger release error")
            }
        }
        _ = vtp_set_timer_slack_ns(1)

        let epoll = try check(vtp_epoll_create(), "epoll_create1")
        defer { _ = vtp_close(epoll) }
        let releaseTimer = try check(vtp_timerfd_create(), "timerfd_create")
        defer { _ = vtp_close(releaseTimer) }
        let reportTimer = try check(vtp_timerfd_create(), "timerfd_create")
        defer { _ = vtp_close(reportTimer) }
        let deadlineTimer = try check(vtp_timerfd_create(), "timerfd_create")
        defer { _ = vtp_close(deadlineTimer) }
        for (fd, tag) in [
            (directions[0].from.fd, Tag.deviceA), (directions[1].from.fd, Tag.deviceB), (releaseTimer, .release),
            (stopFd, .stop), (reportTimer, .report), (deadlineTimer, .deadline),
        ] {
            _ = try check(vtp_epoll_add(epoll, fd, tag.rawValue), "epoll_ctl")
        }

        let start = vtp_monotonic_ns()
        if let interval = settings.reportIntervalNanos, interval > 0 {
            _ = vtp_timerfd_arm_abs(reportTimer, start + interval)
        }
        if let duration = settings.durationNanos, duration > 0 {
            _ = vtp_timerfd_arm_abs(deadlineTimer, start + duration)
        }
        var nextReport = start + (settings.reportIntervalNanos ?? 0)
        var tags = [UInt64](repeating: 0, count: 16)
        var running = true
        while running {
            let count = vtp_epoll_wait(epoll, &tags, 16, -1)
            if count < 0 {
                if -count == EINTR { continue }
                throw .system(call: "epoll_wait", errno: -count, hint: "")
            }
            for tag in tags.prefix(Int(count)) {
                switch Tag(rawValue: tag) {
                case .deviceA: receive(direction: 0)
                case .deviceB: receive(direction: 1)
                case .release: _ = vtp_timerfd_drain(releaseTimer)
                case .stop, .deadline: running = false
                case .report:
                    _ = vtp_timerfd_drain(reportTimer)
                    let interval = settings.reportIntervalNanos ?? 0
                    nextReport += interval
                    _ = vtp_timerfd_arm_abs(reportTimer, nextReport)
                    for index in directions.indices {
                        log(directions[index].interval.line(label: index == 0 ? "vtp-netem: a→b" : "vtp-netem: b→a"))
                        directions[index].total.merge(directions[index].interval)
                        directions[index].interval = DirectionStats()
                    }
                case nil: break
                }
            }
            release(direction: 0)
            release(direction: 1)
            armReleaseTimer(releaseTimer)
        }
        for index in directions.indices {
            directions[index].total.merge(directions[index].interval)
            directions[index].interval = DirectionStats()
        }
        return LinkReport(
            a_to_b: directions[0].total.report, b_to_a: directions[1].total.report,
            duration_s: Double(vtp_monotonic_ns() - start) / 1e9, realtime_scheduling: realtime)
    }

    /// Totals so far (after `run` returns: for the whole run).
    public var totals: (aToB: DirectionStats, bToA: DirectionStats) { (directions[0].total, directions[1].total) }

    private func receive(direction index: Int) {
        let fd = directions[index].from.fd
        let headerLength = directions[index].from.vnetHeader ? Int(VTP_VNET_HDR_LEN) : 0
        // Bounded per wake-up so a flood in one direction cannot starve releases.
        for _ in 0..<64 {
            let length = buffer.withUnsafeMutableBytes { vtp_read(fd, $0.baseAddress, $0.count) }
            guard length > 0 else { return }
            let arrival = vtp_monotonic_ns()
            let packetLength = Int(length)
            let decision = directions[index].scheduler.admit(
                arrivalNanos: arrival, wireBytes: max(packetLength - headerLength, 0),
                queuedPackets: directions[index].queue.count, using: &random)
            switch decision {
            case .drop(.loss): directions[index].interval.lostPackets += 1
            case .drop(.queueFull): directions[index].interval.queueFullDrops += 1
            case .release(let at):
                directions[index].queue.push(Array(buffer[0..<packetLength]), releaseNanos: at)
                let queued = directions[index].queue.count
                if queued > directions[index].interval.maxQueuedPackets {
                    directions[index].interval.maxQueuedPackets = queued
                }
            }
        }
    }

    private func release(direction index: Int) {
        guard let next = directions[index].queue.nextReleaseNanos else { return }
        var now = vtp_monotonic_ns()
        guard next <= now else { return }
        let fd = directions[index].to.fd
        let headerLength = directions[index].to.vnetHeader ? Int(VTP_VNET_HDR_LEN) : 0
        while let entry = directions[index].queue.popDue(nowNanos: now) {
            // The error is measured when the packet is handed to the kernel: the write itself
            // runs the receiving stack (e.g. the ping reply) and is not the link's doing.
            let handedOver = vtp_monotonic_ns()
            let written = entry.payload.withUnsafeBytes { vtp_write(fd, $0.baseAddress, $0.count) }
            let done = vtp_monotonic_ns()
            if written < 0 {
                directions[index].interval.writeErrors += 1
            } else {
                directions[index].interval.forwardedPackets += 1
                directions[index].interval.forwardedBytes += entry.payload.count - headerLength
                if headerLength > 0, entry.payload.count > 1, entry.payload[1] != 0 {
                    directions[index].interval.gsoPackets += 1
                }
                directions[index].interval.releaseError.record(nanos: handedOver - entry.releaseNanos)
            }
            now = done
        }
    }

    private func armReleaseTimer(_ timer: Int32) {
        let candidates = directions.compactMap { $0.queue.nextReleaseNanos }
        let earliest = candidates.min() ?? 0
        guard earliest != armedReleaseNanos else { return }
        armedReleaseNanos = earliest
        _ = vtp_timerfd_arm_abs(timer, earliest)
    }

    private func check(_ result: Int32, _ call: String) throws(DelayLinkError) -> Int32 {
        guard result >= 0 else { throw .system(call: call, errno: -result, hint: "") }
        return result
    }
}
