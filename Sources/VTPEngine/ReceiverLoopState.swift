import NIOCore

/// What one event loop of the receiver owns, in a `NIOLoopBoundBox` on that loop: the counts
/// and latency samples of its connections since the last report, the sequence numbers it has
/// not yet handed to the home loop, and its open connections (closed at stop). Every connection
/// on the loop adds to it; nothing else touches it, so it needs no lock.
struct ReceiverLoopState: Sendable {
    /// What a loop hands the home loop: sequence tracking and stop-after-events need every
    /// loop's events in one place.
    struct HandOver: Sendable {
        var events = 0
        var sequences: [SequenceSample] = []
        /// Events that came through a `--subscribe` broker (its index), for duplicates by ivorn.
        var brokerEvents: [BrokerEvent] = []
    }

    var tally = ReceiverTally()
    private(set) var pending = HandOver()
    /// A hand-over task is queued on this loop (one per loop turn, not one per event).
    private var handOverQueued = false
    var connections: [ObjectIdentifier: Channel] = [:]

    /// Counts an event; returns it annotated, and whether the caller must queue a hand-over.
    mutating func record(
        _ event: ReceivedEvent, warmup: WarmupWindow, broker: Int? = nil
    ) -> (event: ReceivedEvent, queueHandOver: Bool) {
        let recorded = tally.record(event, warmup: warmup)
        pending.events += 1
        if let broker { pending.brokerEvents.append(BrokerEvent(ivorn: event.ivorn, broker: broker)) }
        if let sequence = event.sequence {
            pending.sequences.append(SequenceSample(run: event.runID ?? "", sequence: sequence))
        }
        defer { handOverQueued = true }
        return (recorded, !handOverQueued)
    }

    mutating func takeHandOver() -> HandOver {
        handOverQueued = false
        defer { pending = HandOver() }
        return pending
    }
}
