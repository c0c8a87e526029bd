import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

/// A deterministic network for the pure SWIM core: packets go through the real codec and
/// keyring, arrive after a fixed delay, and can be dropped to or from chosen nodes.
struct SimulatedNetwork {
    var nodes: [String: GossipNode<SplitMix64>] = [:]
    var now = 0.0
    var inFlight: [(at: Double, from: String, to: String, bytes: [UInt8])] = []
    var down: Set<String> = []
    /// Nodes in different groups cannot reach each other (empty: no partition).
    var partition: [Set<String>] = []
    var events: [String: [SWIM<SplitMix64>.Event]] = [:]
    let keyring = try! SiteKeyring(primary: [UInt8](repeating: 7, count: 32))
    let delay = 0.005
    /// Fraction of packets lost (decided by a seeded generator, so runs repeat).
    var loss = 0.0
    var lossRandom = SplitMix64(seed: 99)
    /// The largest sealed UDP packet sent.
    var largestPacket = 0

    static func address(_ i: Int) -> NodeAddress { NodeAddress(name: "gw-\(i)", ip: [10, 0, 0, UInt8(i)], port: 7946) }

    /// `count` nodes that joined through gw-1 and ran 10 s.
    static func joined(_ count: Int) -> SimulatedNetwork {
        var net = SimulatedNetwork(count: count)
        for i in 2...count { net.join("gw-\(i)", seeds: [1]) }
        net.run(until: 10)
        return net
    }

    /// `count` nodes that know nobody, or, `converged`, that all start from one shared snapshot
    /// listing every one of them alive.
    init(count: Int, seed: UInt64 = 1, converged: Bool = false) {
        let membership =
            converged
            ? SWIMMembership((1...count).map { SWIMMember(address: Self.address($0), incarnation: 0, status: .alive, metadata: [], since: 0) })
            : nil
        for i in 1...count {
            nodes["gw-\(i)"] = GossipNode(me: Self.address(i), random: SplitMix64(seed: seed &+ UInt64(i)), membership: membership)
        }
    }

    mutating func send(_ outbound: [SWIM<SplitMix64>.Outbound], from: String) {
        guard !down.contains(from) else { return }
        for packet in outbound {
            let sealed = keyring.seal(try! WireCodec.encode(packet.messages))
            largestPacket = max(largestPacket, sealed.count)
            if loss > 0, Double.random(in: 0..<1, using: &lossRandom) < loss { continue }
            inFlight.append((now + delay, from, packet.to.name, sealed))
        }
    }

    /// As the shell does: a UDP ping to each seed, then a push-pull with it.
    mutating func join(_ name: String, seeds: [Int]) {
        send(nodes[name]!.join(seeds.map(Self.address), now: now), from: name)
        for seed in seeds { pushPull(from: name, to: "gw-\(seed)") }
    }

    /// A push-pull exchange over a (lossless, instant) stream; none if either end is down.
    mutating func pushPull(from: String, to: String) {
        guard !down.contains(from), !down.contains(to), !cut(from, to), var a = nodes[from], var b = nodes[to] else { return }
        let reply = b.answerPushPull(a.pushPullRequest(), now: now)
        b.finishPushPull(a.completePushPull(reply, now: now))
        nodes[from] = a
        nodes[to] = b
    }

    /// Runs until `until`, ticking every 50 ms and delivering packets on time.
    mutating func run(until end: Double) {
        while now < end {
            now += 0.05
            let due = inFlight.filter { $0.at <= now }
            inFlight.removeAll { $0.at <= now }
            for packet in due where !down.contains(packet.to) && !cut(packet.from, packet.to) {
                guard case .success(let payload) = keyring.open(packet.bytes), let messages = try? WireCodec.decode(payload),
                    var node = nodes[packet.to]
                else { continue }
                let out = node.receive(messages, now: now)
                nodes[packet.to] = node
                send(out, from: packet.to)
            }
            for name in nodes.keys.sorted() where !down.contains(name) {
                var node = nodes[name]!
                let out = node.tick(now: now)
                events[name, default: []] += node.takeEvents()
                let peers = [node.duePushPull(now: now), node.dueReconnect(now: now)].compactMap { $0 }
                nodes[name] = node
                send(out, from: name)
                for peer in peers { pushPull(from: name, to: peer.name) }
            }
        }
    }

    func cut(_ a: String, _ b: String) -> Bool {
        guard let side = partition.firstIndex(where: { $0.contains(a) }) else { return false }
        return !partition[side].contains(b)
    }

    func view(_ name: String) -> [String: SWIMMember.Status] {
        nodes[name]!.swim.others.reduce(into: [:]) { $0[$1.address.name] = $1.status }
    }
}

@Suite("SWIM core")
struct SWIMTests {
    @Test("eight nodes joining through one seed all learn of each other")
    func join() {
        let net = SimulatedNetwork.joined(8)
        for i in 1...8 {
            #expect(net.view("gw-\(i)").count == 7 && net.view("gw-\(i)").values.allSatisfy { $0 == .alive }, "gw-\(i): \(net.view("gw-\(i)"))")
        }
    }

    @Test("a node that stops answering is suspected, then declared dead by everyone within the suspicion bound")
    func failureDetection() {
        var net = SimulatedNetwork.joined(6)
        net.down = ["gw-6"]
        let killedAt = net.now
        var detectedBy: [String: Double] = [:]
        while net.now < killedAt + 60 && detectedBy.count < 5 {
            net.run(until: net.now + 0.5)
            for i in 1...5 where detectedBy["gw-\(i)"] == nil && net.view("gw-\(i)")["gw-6"] == .dead { detectedBy["gw-\(i)"] = net.now - killedAt }
        }
        #expect(detectedBy.count == 5, "\(detectedBy) \((1...5).map { net.view("gw-\($0)")["gw-6"].map { "\($0)" } ?? "-" })")
        // min suspicion timeout = 4 × max(1, log10 6) s = 4 s, max = 24 s; plus a few probe periods.
        #expect(detectedBy.values.allSatisfy { $0 < 30 }, "\(detectedBy)")
        #expect(net.events["gw-1"]?.contains(.failed("gw-6")) == true)
        for i in 1...5 { #expect(net.view("gw-\(i)").filter { $0.value != .alive && $0.key != "gw-6" }.isEmpty) }
    }

    @Test("a briefly unreachable node refutes the suspicion with a higher incarnation and is never declared dead")
    func refutation() {
        var net = SimulatedNetwork.joined(5)
        net.down = ["gw-5"]
        var suspected = false
        while net.now < 25 && !suspected {
            net.run(until: net.now + 0.1)
            suspected = (1...4).contains { net.view("gw-\($0)")["gw-5"] == .suspect }
        }
        #expect(suspected)
        net.down = []
        net.run(until: net.now + 15)
        for i in 1...4 { #expect(net.view("gw-\(i)")["gw-5"] == .alive, "gw-\(i): \(net.view("gw-\(i)"))") }
        #expect(net.nodes["gw-5"]!.swim.incarnation >= 1)
        #expect(net.events["gw-5"]?.contains { if case .refuted = $0 { true } else { false } } == true)
        #expect(!(net.events["gw-1"] ?? []).contains(.failed("gw-5")))
    }

    @Test("metadata changes spread, and the broadcast queue drains")
    func metadata() {
        var net = SimulatedNetwork.joined(5)
        net.nodes["gw-3"]!.updateMetadata(Array("images=2".utf8))
        net.run(until: 20)
        for i in [1, 2, 4, 5] {
            #expect(net.nodes["gw-\(i)"]!.swim.members["gw-3"]?.metadata == Array("images=2".utf8))
        }
        net.run(until: 40)
        #expect((1...5).allSatisfy { net.nodes["gw-\($0)"]!.swim.pendingBroadcasts == 0 })
    }

    @Test("the suspicion timeout shrinks from max to min with independent confirmations")
    func suspicionTimeout() {
        var swim = SWIM(me: SimulatedNetwork.address(1), random: SplitMix64(seed: 1))
        // Two nodes: nobody could confirm, so the minimum applies at once (memberlist's rule).
        _ = swim.receive([.alive(node: SimulatedNetwork.address(2), incarnation: 0, metadata: [])], now: 0)
        #expect(swim.suspicionTimeout(confirmations: 0) == 4)
        for i in 3...5 { _ = swim.receive([.alive(node: SimulatedNetwork.address(i), incarnation: 0, metadata: [])], now: 0) }
        let none = swim.suspicionTimeout(confirmations: 0)
        let one = swim.suspicionTimeout(confirmations: 1)
        let all = swim.suspicionTimeout(confirmations: 3)
        #expect(none == 24 && all == 4 && one < none && one > all)
    }

    @Test("a suspicion times out at the timeout for the cluster's current size, also after it shrank; the dead are forgotten on time")
    func suspicionFollowsClusterSize() {
        let snapshot = SWIMMembership(
            (1...40).map { SWIMMember(address: SimulatedNetwork.address($0), incarnation: 0, status: .alive, metadata: [], since: 0) })
        var swim = SWIM(me: SimulatedNetwork.address(1), random: SplitMix64(seed: 1), membership: snapshot)
        swim.applySuspect("gw-2", incarnation: 0, from: "gw-3", now: 0)  // one confirmation
        _ = swim.tick(now: 0.05)  // the earliest deadline is now known, for 40 members
        let before = swim.suspicionTimeout(confirmations: 1)
        for i in 10...39 { swim.applyDead("gw-\(i)", incarnation: 0, from: "gw-3", now: 0.1) }
        let after = swim.suspicionTimeout(confirmations: 1)
        #expect(after < before)  // 14 s for 10 members instead of 22.4 s for 40
        _ = swim.tick(now: after - 0.01)
        #expect(swim.members["gw-2"]?.status == .suspect)
        _ = swim.tick(now: after + 0.01)
        #expect(swim.members["gw-2"]?.status == .dead)
        _ = swim.tick(now: 30.05)
        #expect(swim.members["gw-10"]?.status == .dead)
        _ = swim.tick(now: 30.15)
        #expect(swim.members["gw-10"] == nil && swim.members["gw-2"]?.status == .dead)
        _ = swim.tick(now: after + 30.02)
        #expect(swim.members["gw-2"] == nil)
    }

    @Test("a record written on one node reaches all 30 by rumour alone, within a few gossip rounds")
    func recordRumour() {
        var net = SimulatedNetwork.joined(30)
        net.run(until: 40)  // let the join chatter drain
        let start = net.now
        _ = try! net.nodes["gw-7"]!.put("release", Array("esp32/app 2.0.0".utf8))
        var reachedAt: Double?
        while net.now < start + 10, reachedAt == nil {
            net.run(until: net.now + 0.05)
            if net.nodes.values.allSatisfy({ $0.records.get("release", owner: "gw-7") != nil }) { reachedAt = net.now - start }
        }
        // 200 ms gossip rounds to 3 nodes each: log3(30) ≈ 3 rounds, plus delivery.
        #expect(reachedAt.map { $0 < 2 } == true, "reached after \(reachedAt.map { "\($0)" } ?? "never")")
        #expect(net.nodes["gw-1"]!.takeRecordChanges().map(\.key) == ["release"])
    }

    @Test("push-pull swaps full membership and every missing record, both ways")
    func pushPull() {
        var a = GossipNode(me: SimulatedNetwork.address(1), random: SplitMix64(seed: 1))
        var b = GossipNode(me: SimulatedNetwork.address(2), random: SplitMix64(seed: 2))
        for i in 0..<100 { _ = try! a.put("a\(i)", [UInt8(i)]) }
        for i in 0..<50 { _ = try! b.put("b\(i)", [UInt8(i)]) }
        // What the wire cannot carry is refused at the source.
        #expect(throws: WireError.self) { try a.put(String(repeating: "k", count: 201), []) }
        #expect(throws: WireError.self) { try a.put("big", [UInt8](repeating: 0, count: 1_201)) }
        #expect((try? a.put("held/" + String(repeating: "ab", count: 32), [1])) != nil)
        _ = b.receive([.alive(node: SimulatedNetwork.address(3), incarnation: 4, metadata: [9])], now: 0)
        let request = a.pushPullRequest()
        let reply = b.answerPushPull(request, now: 1)
        let finish = a.completePushPull(reply, now: 1)
        b.finishPushPull(finish)
        #expect(a.records.records.count == 151 && b.records.records.count == 151)
        #expect(a.records.digest() == ["gw-1": 101, "gw-2": 50] && b.records.digest() == ["gw-1": 101, "gw-2": 50])
        #expect(a.swim.members["gw-3"]?.metadata == [9] && b.swim.members["gw-1"]?.status == .alive)
        #expect(a.takeRecordChanges().count == 50 && b.takeRecordChanges().count == 101)
        // A second exchange has nothing to send.
        let again = b.answerPushPull(a.pushPullRequest(), now: 2)
        #expect(!again.contains { if case .record = $0 { true } else { false } })
    }

    @Test("no UDP packet exceeds the budget, even with large records and metadata queued, under 10 % loss")
    func packetBudget() {
        var net = SimulatedNetwork.joined(12)
        net.loss = 0.1
        for i in 1...12 {
            net.nodes["gw-\(i)"]!.updateMetadata([UInt8](repeating: UInt8(i), count: 600))
            for k in 0..<5 { _ = try! net.nodes["gw-\(i)"]!.put("k\(k)", [UInt8](repeating: 1, count: 1_000)) }
        }
        net.run(until: 100)  // rumours, then anti-entropy rounds (30 s) fill what loss dropped
        #expect(net.largestPacket <= 1_400, "largest packet \(net.largestPacket) bytes")
        for i in 1...12 { #expect(net.nodes["gw-\(i)"]!.records.records.count == 60, "gw-\(i)") }
    }

    @Test("after a partition both halves declare the other failed; once healed, reconnects bring everyone back alive")
    func partitionHeal() {
        var net = SimulatedNetwork.joined(8)
        let left = Set((1...4).map { "gw-\($0)" }), right = Set((5...8).map { "gw-\($0)" })
        net.partition = [left, right]
        net.run(until: net.now + 60)
        #expect(net.view("gw-1")["gw-5"] == nil || net.view("gw-1")["gw-5"] == .dead, "\(net.view("gw-1"))")
        #expect(net.view("gw-6").filter { left.contains($0.key) }.allSatisfy { $0.value == .dead })
        _ = try! net.nodes["gw-2"]!.put("written-while-apart", [1])
        net.partition = []
        let healed = net.now
        var allAliveAt: Double?
        while net.now < healed + 60, allAliveAt == nil {
            net.run(until: net.now + 0.5)
            let views = (1...8).map { net.view("gw-\($0)") }
            if views.allSatisfy({ $0.count == 7 && $0.values.allSatisfy { $0 == .alive } }) { allAliveAt = net.now - healed }
        }
        #expect(allAliveAt.map { $0 <= 25 } == true, "all alive after \(allAliveAt.map { "\($0)" } ?? "never") s")
        net.run(until: net.now + 35)  // a push-pull round carries the record across
        #expect((1...8).allSatisfy { net.nodes["gw-\($0)"]!.records.get("written-while-apart", owner: "gw-2") != nil })
    }
}
