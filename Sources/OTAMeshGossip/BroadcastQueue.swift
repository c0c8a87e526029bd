/// Updates waiting to be piggybacked: at most one per subject (a newer one replaces the older),
/// handed out fewest transmits first — oldest first among equals — and dropped after `limit`
/// transmits, like memberlist's TransmitLimitedQueue.
///
/// Entries are kept in one list per transmit count, each in enqueue order, with an index by
/// subject: queueing, replacing and taking cost O(log n) plus the entries looked at, never a sort
/// of the whole queue per packet (under loss a node queues an update about nearly every member).
struct BroadcastQueue: Sendable {
    struct Entry: Sendable {
        var subject: String
        var message: WireMessage
        /// `WireCodec.size(of: message)`, computed once.
        var size: Int
        var sequence: UInt64
    }

    /// `levels[t]`: the entries sent `t` times so far, by ascending sequence.
    private(set) var levels: [[Entry]] = []
    private var located: [String: (transmits: Int, sequence: UInt64)] = [:]
    private var nextSequence: UInt64 = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    /// Queues `message` about `subject`, replacing any update about it still queued.
    mutating func enqueue(_ message: WireMessage, subject: String) {
        remove(subject)
        nextSequence += 1
        if levels.isEmpty { levels.append([]) }
        levels[0].append(Entry(subject: subject, message: message, size: WireCodec.size(of: message), sequence: nextSequence))
        located[subject] = (0, nextSequence)
        count += 1
    }

    mutating func remove(_ subject: String) {
        guard let place = located.removeValue(forKey: subject) else { return }
        let index = Self.position(of: place.sequence, in: levels[place.transmits])
        if index < levels[place.transmits].count, levels[place.transmits][index].sequence == place.sequence {
            levels[place.transmits].remove(at: index)
            count -= 1
        }
    }

    /// Up to `maxCount` messages within `budget` bytes, fewest transmits first (an entry too big
    /// for the room left is passed over, a smaller one after it may still go). Each one taken
    /// counts a transmit; an entry sent `limit` times (at least once) leaves the queue, as does
    /// any entry already sent that often when the limit falls (the cluster shrank).
    mutating func take(budget: Int, maxCount: Int, limit: Int) -> [WireMessage] {
        let limit = max(1, limit)
        if levels.count > limit {
            for level in levels[limit...] {
                for entry in level { located[entry.subject] = nil }
                count -= level.count
            }
            levels.removeSubrange(limit...)
        }
        var taken: [(transmits: Int, index: Int)] = []
        var messages: [WireMessage] = []
        var room = budget
        scan: for transmits in levels.indices {
            for index in levels[transmits].indices {
                guard messages.count < maxCount, room >= Self.smallestMessage else { break scan }
                let entry = levels[transmits][index]
                guard entry.size <= room else { continue }
                room -= entry.size
                messages.append(entry.message)
                taken.append((transmits, index))
            }
        }
        // Move what was sent up one level (or out): remove from the back so indices hold, then
        // insert each by sequence, so every level stays in enqueue order.
        var promoted: [(transmits: Int, entry: Entry)] = []
        for place in taken.reversed() {
            promoted.append((place.transmits + 1, levels[place.transmits].remove(at: place.index)))
        }
        for (transmits, entry) in promoted {
            guard transmits < limit else {
                located[entry.subject] = nil
                count -= 1
                continue
            }
            if levels.count <= transmits { levels.append([]) }
            levels[transmits].insert(entry, at: Self.position(of: entry.sequence, in: levels[transmits]))
            located[entry.subject] = (transmits, entry.sequence)
        }
        return messages
    }

    /// No message is smaller (a digest or covered with a one-byte owner: type, length, name, u64).
    static let smallestMessage = 3 + 2 + 8

    /// The first index whose sequence is not below `sequence` (binary search).
    static func position(of sequence: UInt64, in level: [Entry]) -> Int {
        var low = 0
        var high = level.count
        while low < high {
            let middle = (low + high) / 2
            if level[middle].sequence < sequence { low = middle + 1 } else { high = middle }
        }
        return low
    }
}
