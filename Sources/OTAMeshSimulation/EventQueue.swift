/// A min-heap of timed events. Events at the same time come out in the order they were
/// scheduled (a sequence number breaks ties), so a run never depends on heap internals.
struct EventQueue<Event> {
    struct Entry {
        var time: Double
        var sequence: UInt64
        var event: Event

        func precedes(_ other: Entry) -> Bool { time < other.time || (time == other.time && sequence < other.sequence) }
    }

    private var heap: [Entry] = []
    private var sequence: UInt64 = 0

    var count: Int { heap.count }
    var isEmpty: Bool { heap.isEmpty }
    /// When the next event is due.
    var nextTime: Double? { heap.first?.time }

    mutating func schedule(_ event: Event, at time: Double) {
        sequence += 1
        heap.append(Entry(time: time, sequence: sequence, event: event))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Removes and returns the earliest event.
    mutating func pop() -> (time: Double, event: Event)? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let first = heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            var least = left
            if left + 1 < heap.count, heap[left + 1].precedes(heap[left]) { least = left + 1 }
            guard heap[least].precedes(heap[parent]) else { break }
            heap.swapAt(least, parent)
            parent = least
        }
        return (first.time, first.event)
    }
}

extension EventQueue: Sendable where Event: Sendable {}
extension EventQueue.Entry: Sendable where Event: Sendable {}
