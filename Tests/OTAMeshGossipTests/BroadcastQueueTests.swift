import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

@Suite("broadcast queue")
struct BroadcastQueueTests {
    /// The rule the queue implements, written the slow way: sort everything by (transmits,
    /// enqueue order) for every packet.
    struct Model {
        var entries: [(subject: String, message: WireMessage, transmits: Int, sequence: Int)] = []
        var sequence = 0

        mutating func enqueue(_ message: WireMessage, subject: String) {
            entries.removeAll { $0.subject == subject }
            sequence += 1
            entries.append((subject, message, 0, sequence))
        }

        mutating func take(budget: Int, maxCount: Int, limit: Int) -> [WireMessage] {
            let limit = max(1, limit)
            entries.removeAll { $0.transmits >= limit }
            entries.sort { ($0.transmits, $0.sequence) < ($1.transmits, $1.sequence) }
            var room = budget
            var taken: [WireMessage] = []
            for index in entries.indices where taken.count < maxCount && room >= BroadcastQueue.smallestMessage {
                let size = WireCodec.size(of: entries[index].message)
                guard size <= room else { continue }
                room -= size
                taken.append(entries[index].message)
                entries[index].transmits += 1
            }
            entries.removeAll { $0.transmits >= limit }
            return taken
        }
    }

    static func update(_ subject: Int, _ size: Int) -> WireMessage {
        .record(key: "k\(subject)", owner: "gw", version: UInt64(size), value: [UInt8](repeating: 1, count: size))
    }

    @Test("matches the sort-everything rule: one update per subject, fewest transmits and oldest first, at most `limit` sends")
    func model() {
        var queue = BroadcastQueue()
        var model = Model()
        var random = SplitMix64(seed: 12)
        for _ in 0..<20_000 {
            if Int.random(in: 0..<3, using: &random) == 0 {
                let budget = Int.random(in: 0..<1_400, using: &random)
                let maxCount = Int.random(in: 1...12, using: &random)
                let limit = Int.random(in: 0..<3, using: &random) == 0 ? Int.random(in: 0...6, using: &random) : 8
                #expect(queue.take(budget: budget, maxCount: maxCount, limit: limit) == model.take(budget: budget, maxCount: maxCount, limit: limit))
            } else {
                let subject = Int.random(in: 0..<40, using: &random)
                let message = Self.update(subject, Int.random(in: 0..<300, using: &random))
                queue.enqueue(message, subject: "s\(subject)")
                model.enqueue(message, subject: "s\(subject)")
            }
            #expect(queue.count == model.entries.count)
        }
    }

    @Test("an update too big for the room left is passed over for a smaller one, and keeps its place")
    func budget() {
        var queue = BroadcastQueue()
        queue.enqueue(Self.update(1, 1_000), subject: "big")
        queue.enqueue(Self.update(2, 10), subject: "small")
        #expect(queue.take(budget: 100, maxCount: 12, limit: 4) == [Self.update(2, 10)])
        #expect(queue.take(budget: 1_400, maxCount: 1, limit: 4) == [Self.update(1, 1_000)])
        #expect(queue.count == 2)
        // Limit 1: everything goes once more at most, then the queue is empty.
        _ = queue.take(budget: 1_400, maxCount: 12, limit: 1)
        #expect(queue.isEmpty)
    }
}
