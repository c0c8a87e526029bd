import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

/// A deterministic network for the pure SWIM core: packets go through the real codec and
/// keyring, arrive after a fixed delay, and can be dropped to or from chosen nodes.
struct SimulatedNetwork {
    var nodes: [String: SWIM<SplitMix64>] = [:]
    var now = 0.0
    var inFlight: [(at: Double, to: String, bytes: [UInt8])] = []
    var down: Set<String> = []
    var events: [String: [SWIM<SplitMix64>.Event]] = [:]
    let keyring = try! SiteKeyring(primary: [UInt8](repeating: 7, count: 32))
    let delay = 0.005

    static func address(_ i: Int) -> NodeAddress { NodeAddress(name: "gw-\(i)", ip: [10, 0, 0, UInt8(i)], port: 7946) }

    /// `count` nodes that joined through gw-1 and ran 10 s.
    static func joined(_ count: Int) -> SimulatedNetwork {
        var net = SimulatedNetwork(count: count)
        for i in 2...count { net.join("gw-\(i)", seeds: [1]) }
        net.run(until: 10)
        return net
    }

    init(count: Int, seed: UInt64 = 1) {
        for i in 1...count {
            nodes["gw-\(i)"] = SWIM(me: Self.address(i), random: SplitMix64(seed: seed &+ UInt64(i)))
        }
    }

    mutating func send(_ outbound: [SWIM<SplitMix64>.Outbound], from: String) {
        guard !down.contains(from) else { return }
        for packet in outbound {
            let sealed = keyring.seal(try! WireCodec.encode(packet.messages))
            inFlight.append((now + delay, packet.to.name, sealed))
        }
    }

    mutating func join(_ name: String, seeds: [Int]) {
        send(nodes[name]!.join(seeds.map(Self.address), now: now), from: name)
    }

    /// Runs until `until`, ticking every 50 ms and delivering packets on time.
    mutating func run(until end: Double) {
        while now < end {
            now += 0.05
            let due = inFlight.filter { $0.at <= now }
            inFlight.removeAll { $0.at <= now }
            for packet in due where !down.contains(packet.to) {
                guard case .success(let payload) = keyring.open(packet.bytes), let messages = try? WireCodec.decode(payload),
                    var node = nodes[packet.to] else { continue }
                let out = node.receive(messages, now: now)
                nodes[packet.to] = node
                send(out, from: packet.to)
            }
            for name in nodes.keys.sorted() where !down.contains(name) {
                var node = nodes[name]!
                let out = node.tick(now: now)
                events[name, default: []] += node.takeEvents()
                nodes[name] = node
                send(out, from: name)
            }
        }
    }

    func view(_ name: String) -> [String: SWIMMember.Status] {
        nodes[name]!.others.reduce(into: [:]) { $0[$1.address.name] = $1.status }
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
        #expect(detectedBy.count == 5, "\(detectedBy)")
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
        #expect(net.nodes["gw-5"]!.incarnation >= 1)
        #expect(net.events["gw-5"]?.contains { if case .refuted = $0 { true } else { false } } == true)
        #expect(!(net.events["gw-1"] ?? []).contains(.failed("gw-5")))
    }

    @Test("metadata changes spread, and the broadcast queue drains")
    func metadata() {
        var net = SimulatedNetwork.joined(5)
        net.nodes["gw-3"]!.updateMetadata(Array("images=2".utf8))
        net.run(until: 20)
        for i in [1, 2, 4, 5] {
            #expect(net.nodes["gw-\(i)"]!.members["gw-3"]?.metadata == Array("images=2".utf8))
        }
        net.run(until: 40)
        #expect((1...5).allSatisfy { net.nodes["gw-\($0)"]!.pendingBroadcasts == 0 })
    }

    @Test("the suspicion timeout shrinks from max to min with independent confirmations")
    func suspicionTimeout() {
        let swim = SWIM(me: SimulatedNetwork.address(1), random: SplitMix64(seed: 1))
        let none = swim.suspicionTimeout(confirmations: 0)
        let one = swim.suspicionTimeout(confirmations: 1)
        let all = swim.suspicionTimeout(confirmations: 3)
        #expect(none == 24 && all == 4 && one < none && one > all)
    }
}
