import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

@Suite("SWIM member table")
struct SWIMMemberTableTests {
    static func member(_ i: Int, status: SWIMMember.Status = .alive, incarnation: UInt64 = 0) -> SWIMMember {
        SWIMMember(address: SimulatedNetwork.address(i), incarnation: incarnation, status: status, metadata: [], since: 0)
    }

    @Test("a table over a shared snapshot reads and writes like a dictionary, and keeps its counts right")
    func dictionaryModel() {
        let snapshot = SWIMMembership((1...40).map { Self.member($0, status: $0 % 7 == 0 ? .dead : .alive) })
        var table = SWIMMemberTable(base: snapshot)
        var model = Dictionary(uniqueKeysWithValues: snapshot.members.map { ($0.address.name, $0) })
        var random = SplitMix64(seed: 21)
        for _ in 0..<3_000 {
            let name = "gw-\(Int.random(in: 1...60, using: &random))"
            if Int.random(in: 0..<4, using: &random) == 0 {
                table[name] = nil
                model[name] = nil
            } else {
                let status = [SWIMMember.Status.alive, .suspect, .dead].randomElement(using: &random)!
                let member = Self.member(Int(name.dropFirst(3))!, status: status, incarnation: UInt64.random(in: 0..<5, using: &random))
                table[name] = member
                model[name] = member
            }
            #expect(table[name] == model[name])
        }
        #expect(table.count == model.count)
        #expect(table.liveCount == model.values.count { $0.status != .dead })
        #expect(table.deadNames == Set(model.values.filter { $0.status == .dead }.map(\.address.name)))
        #expect(table.values.map(\.address.name).sorted() == model.keys.sorted())
        for name in model.keys { #expect(table[name] == model[name]) }
        // Slots: every held member has one, none is handed out twice.
        let held = (0..<table.slotCount).compactMap { table.member(inSlot: $0)?.address.name }
        #expect(held.count == Set(held).count && Set(held) == Set(model.keys))
        // The snapshot is never written: another table over it still sees the original.
        #expect(SWIMMemberTable(base: snapshot).values == snapshot.members)
    }

    @Test("a lazy shuffle draws every slot exactly once, in a seed-determined order")
    func lazyShuffle() {
        for count in [0, 1, 2, 17, 1_000] {
            var shuffle = LazyShuffle(count: count)
            var random = SplitMix64(seed: UInt64(count))
            var drawn: [Int] = []
            while let slot = shuffle.next(using: &random) { drawn.append(slot) }
            #expect(drawn.sorted() == Array(0..<count))
            #expect(shuffle.swapped.isEmpty || count == 0, "no memory kept once drawn out")
        }
        var a = LazyShuffle(count: 50), b = LazyShuffle(count: 50)
        var ra = SplitMix64(seed: 9), rb = SplitMix64(seed: 9)
        #expect((0..<50).map { _ in a.next(using: &ra) } == (0..<50).map { _ in b.next(using: &rb) })
    }

    @Test("pick draws distinct eligible members, never itself, about uniformly")
    func pick() {
        var members = (1...10).map { Self.member($0) }
        members[3].status = .dead
        members[4].status = .suspect
        var swim = SWIM(me: SimulatedNetwork.address(1), random: SplitMix64(seed: 4), membership: SWIMMembership(members))
        var tally: [String: Int] = [:]
        for _ in 0..<8_000 {
            let chosen = swim.pick(3, excluding: ["gw-2"])
            #expect(chosen.count == 3 && Set(chosen.map(\.address.name)).count == 3)
            #expect(chosen.allSatisfy { $0.status == .alive && !["gw-1", "gw-2"].contains($0.address.name) })
            for member in chosen { tally[member.address.name, default: 0] += 1 }
        }
        // 6 eligible (gw-3, gw-6…gw-10), 3 of them per draw: each in half the draws.
        #expect(tally.count == 6)
        #expect(tally.values.allSatisfy { abs($0 - 4_000) < 300 }, "\(tally)")
        // With suspects allowed, and asked for more than there are.
        let all = swim.pick(20, excluding: [], including: .suspect)
        #expect(Set(all.map(\.address.name)) == ["gw-2", "gw-3", "gw-5", "gw-6", "gw-7", "gw-8", "gw-9", "gw-10"])
    }

    @Test("a node started from a snapshot that lists it is converged and quiet; one that is not listed announces itself")
    func snapshotStart() {
        let snapshot = SWIMMembership((1...5).map { Self.member($0, incarnation: 2) })
        let listed = SWIM(me: SimulatedNetwork.address(3), random: SplitMix64(seed: 1), membership: snapshot)
        #expect(listed.members.count == 4 && listed.members["gw-3"] == nil && listed.incarnation == 2)
        #expect(listed.pendingBroadcasts == 0 && listed.memberCount == 5)
        let newcomer = SWIM(me: SimulatedNetwork.address(9), random: SplitMix64(seed: 1), membership: snapshot)
        #expect(newcomer.members.count == 5 && newcomer.pendingBroadcasts == 1)
        let relabelled = SWIM(me: SimulatedNetwork.address(2), metadata: [1], random: SplitMix64(seed: 1), membership: snapshot)
        #expect(relabelled.incarnation == 3 && relabelled.pendingBroadcasts == 1)
    }

    @Test("nodes started from one shared snapshot detect a failure and spread a record as joined nodes do")
    func convergedNetwork() {
        var net = SimulatedNetwork(count: 12, converged: true)
        #expect((1...12).allSatisfy { net.view("gw-\($0)").count == 11 })
        net.run(until: 5)
        _ = try! net.nodes["gw-4"]!.put("release", [1, 2, 3])
        net.down = ["gw-12"]
        net.run(until: 60)
        for i in 1...11 {
            #expect(net.nodes["gw-\(i)"]!.records.get("release", owner: "gw-4") != nil, "gw-\(i)")
            #expect(net.view("gw-\(i)")["gw-12"] == .dead || net.view("gw-\(i)")["gw-12"] == nil, "gw-\(i): \(net.view("gw-\(i)"))")
            #expect(net.view("gw-\(i)").filter { $0.key != "gw-12" }.values.allSatisfy { $0 == .alive })
        }
    }
}
