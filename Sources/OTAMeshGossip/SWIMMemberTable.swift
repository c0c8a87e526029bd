/// A starting view of a cluster that many nodes share: every member's address, incarnation,
/// status and metadata, immutable and held once. A simulation of 10,000 converged nodes gives
/// each of them the same snapshot instead of 10,000 tables of 10,000 members (10⁸ entries); the
/// shell may use it to start from a list it already holds. A node's own changes go into its
/// ``SWIMMemberTable`` on top of the snapshot, so sharing it never couples nodes.
public final class SWIMMembership: Sendable {
    /// Members in name order (names are unique; a later duplicate is dropped).
    public let members: [SWIMMember]
    let slots: [String: Int]
    let liveCount: Int
    let deadNames: Set<String>

    public init(_ members: [SWIMMember]) {
        var unique: [String: SWIMMember] = [:]
        for member in members where unique[member.address.name] == nil { unique[member.address.name] = member }
        self.members = unique.values.sorted { $0.address.name < $1.address.name }
        slots = Dictionary(uniqueKeysWithValues: self.members.enumerated().map { ($1.address.name, $0) })
        liveCount = self.members.count(where: { $0.status != .dead })
        deadNames = Set(self.members.filter { $0.status == .dead }.map(\.address.name))
    }
}

/// What one node knows about its members: an optional shared ``SWIMMembership`` plus this node's
/// changes on top (updated, added and removed members), read and written like a dictionary by
/// name. It keeps what SWIM asks of it every tick cheap at any size: the count of members not
/// dead, the dead (for reaping), and a stable numbering of every name ever held ("slots": the
/// snapshot's in name order, then added names in the order they came) for drawing random
/// members and probe orders without sorting the table.
public struct SWIMMemberTable: Sendable {
    enum Change: Sendable {
        case present(SWIMMember)
        case removed
    }

    let base: SWIMMembership?
    var changes: [String: Change] = [:]
    /// Names not in the snapshot, in the order they were first added; their slots follow the
    /// snapshot's. A slot is never reused for another name.
    var added: [String] = []
    var addedSlots: [String: Int] = [:]
    /// Members whose status is not dead.
    public private(set) var liveCount: Int
    /// Members whose status is dead (not yet reaped).
    public private(set) var deadNames: Set<String>
    /// Members held.
    public private(set) var count: Int

    public init(base: SWIMMembership? = nil) {
        self.base = base
        liveCount = base?.liveCount ?? 0
        deadNames = base?.deadNames ?? []
        count = base?.members.count ?? 0
    }

    /// The member named `name`, if held; assigning nil removes it.
    public internal(set) subscript(name: String) -> SWIMMember? {
        get {
            switch changes[name] {
            case .present(let member): member
            case .removed: nil
            case nil:
                if let base, let slot = base.slots[name] { base.members[slot] } else { nil }
            }
        }
        set {
            let old = self[name]
            if let old {
                count -= 1
                if old.status == .dead { deadNames.remove(name) } else { liveCount -= 1 }
            }
            if let newValue {
                count += 1
                if newValue.status == .dead { deadNames.insert(name) } else { liveCount += 1 }
                if base?.slots[name] == nil, addedSlots[name] == nil {
                    addedSlots[name] = added.count
                    added.append(name)
                }
                changes[name] = .present(newValue)
            } else if old != nil {
                changes[name] = base?.slots[name] == nil ? nil : .removed
            }
        }
    }

    /// Every member held, in slot order.
    public var values: [SWIMMember] { (0..<slotCount).compactMap { member(inSlot: $0) } }

    /// Slots handed out so far (held members plus removed ones).
    var slotCount: Int { (base?.members.count ?? 0) + added.count }

    /// The member in `slot`, if one is held there.
    func member(inSlot slot: Int) -> SWIMMember? {
        if let base, slot < base.members.count {
            let member = base.members[slot]
            return changes[member.address.name] == nil ? member : self[member.address.name]
        }
        return self[added[slot - (base?.members.count ?? 0)]]
    }
}

/// A random order of the slots `0..<count`, drawn one at a time (Fisher–Yates with the swaps kept
/// sparse): memory grows with the draws made, not with `count`, so a node of a 10,000-member
/// cluster that probes a few hundred members keeps a few hundred entries, not a 10,000-long list.
struct LazyShuffle: Sendable {
    private(set) var remaining = 0
    var swapped: [Int: Int] = [:]

    init(count: Int = 0) { remaining = count }

    mutating func next(using random: inout some RandomNumberGenerator) -> Int? {
        guard remaining > 0 else { return nil }
        let pick = Int.random(in: 0..<remaining, using: &random)
        let last = remaining - 1
        let value = swapped[pick] ?? pick
        swapped[pick] = swapped[last] ?? last
        swapped[last] = nil
        remaining = last
        return value
    }
}
