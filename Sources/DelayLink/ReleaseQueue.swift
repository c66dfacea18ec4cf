/// Packets waiting on one direction, ordered by release time, ties in arrival order.
/// Without reordering the release times are non-decreasing, so this behaves as the plain FIFO
/// of a real link; with reordering allowed a later arrival may leave first.
public struct ReleaseQueue<Payload>: Sendable where Payload: Sendable {
    public struct Entry: Sendable {
        public let releaseNanos: Int64
        public let sequence: UInt64
        public let payload: Payload
    }

    private var heap: [Entry] = []
    private var nextSequence: UInt64 = 0

    public init() {}

    public var count: Int { heap.count }
    public var isEmpty: Bool { heap.isEmpty }
    public var nextReleaseNanos: Int64? { heap.first?.releaseNanos }

    public mutating func push(_ payload: Payload, releaseNanos: Int64) {
        heap.append(Entry(releaseNanos: releaseNanos, sequence: nextSequence, payload: payload))
        nextSequence &+= 1
        siftUp(heap.count - 1)
    }

    /// Removes and returns the first entry due at or before `nowNanos`.
    public mutating func popDue(nowNanos: Int64) -> Entry? {
        guard let first = heap.first, first.releaseNanos <= nowNanos else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        return first
    }

    private static func before(_ a: Entry, _ b: Entry) -> Bool {
        a.releaseNanos != b.releaseNanos ? a.releaseNanos < b.releaseNanos : a.sequence < b.sequence
    }

    private mutating func siftUp(_ start: Int) {
        var child = start
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.before(heap[child], heap[parent]) else { return }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    private mutating func siftDown(_ start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { return }
            var smallest = left
            let right = left + 1
            if right < heap.count, Self.before(heap[right], heap[left]) { smallest = right }
            guard Self.before(heap[smallest], heap[parent]) else { return }
            heap.swapAt(smallest, parent)
            parent = smallest
        }
    }
}
