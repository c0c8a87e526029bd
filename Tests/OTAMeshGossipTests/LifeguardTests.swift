import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshGossip

/// Lifeguard's local health (awareness) and nack accounting, on the pure SWIM core with an
/// injected clock: a node whose indirect probes come back with neither ack nor nack is the one
/// that is cut off, so it slows its own probing instead of accusing healthy members.
@Suite("Lifeguard local health")
struct LifeguardTests {
    typealias Node = SWIM<SplitMix64>
    static func address(_ i: Int) -> NodeAddress { NodeAddress(name: "gw-\(i)", ip: [10, 0, 0, UInt8(i)], port: 7946) }

    /// gw-1 in a converged cluster of `count`.
    static func node(_ count: Int = 5) -> Node {
        let membership = SWIMMembership((1...count).map { SWIMMember(address: address($0), incarnation: 0, status: .alive, metadata: [], since: 0) })
        return Node(me: address(1), random: SplitMix64(seed: 3), membership: membership)
    }

    /// Runs gw-1 from `start` for `seconds` in 10 ms steps; `answer` sees every packet it sends
    /// and returns what comes back (nothing: lost).
    static func run(
        _ node: inout Node, from start: Double, for seconds: Double,
        answer: (Node.Outbound) -> [WireMessage]
    ) -> (end: Double, probes: [(at: Double, score: Int)], sent: [Node.Outbound]) {
        var now = start
        var probes: [(at: Double, score: Int)] = []
        var sent: [Node.Outbound] = []
        while now < start + seconds {
            for out in node.tick(now: now) {
                sent.append(out)
                if out.messages.contains(where: { if case .ping = $0 { true } else { false } }) { probes.append((now, node.awareness)) }
                let replies = answer(out)
                if !replies.isEmpty { _ = node.receive(replies, now: now) }
            }
            now += 0.01
        }
        return (now, probes, sent)
    }

    @Test("each helper that neither acks nor nacks raises the score (one when no helper is left), to its cap; the probe period stretches with it")
    func missedNacksRaiseAwareness() {
        var node = Self.node()
        #expect(node.awareness == 0)
        let (_, probes, sent) = Self.run(&node, from: 0, for: 60) { _ in [] }  // this node is cut off
        #expect(node.awareness == node.settings.awarenessMax - 1)
        #expect(sent.contains { $0.messages.contains { if case .pingRequest = $0 { true } else { false } } }, "helpers were asked")
        // 4 others: the first probe asks 3 helpers (+3), the next 2 (+2: one member is suspect
        // now), then 1, then none (+1).
        #expect(probes.prefix(5).map(\.score) == [0, 3, 5, 6, 7], "\(probes)")
        // A probe period is the configured 1 s × (1 + score).
        for (probe, next) in zip(probes, probes.dropFirst()).prefix(4) {
            #expect(abs(next.at - probe.at - Double(1 + probe.score)) < 0.05, "\(probes)")
        }
    }

    @Test("helpers that nack show this node can talk: a dead target is suspected, the score stays 0")
    func nacksKeepAwareness() {
        var node = Self.node(9)
        // Six probes, each with at least one alive helper to ask.
        let (_, _, sent) = Self.run(&node, from: 0, for: 5.5) { out in
            // Every helper answers a ping-request with a nack (the target is really gone).
            out.messages.compactMap { message in
                if case let .pingRequest(sequence, _, _) = message { return .nack(sequence: sequence, from: out.to) }
                return nil
            }
        }
        #expect(sent.contains { $0.messages.contains { if case .pingRequest = $0 { true } else { false } } })
        #expect(node.awareness == 0)
        #expect(node.takeEvents().contains { if case .suspected = $0 { true } else { false } }, "the silent targets are suspected")
    }

    @Test("acked probes bring the score back down, one per probe")
    func acksLowerAwareness() {
        var node = Self.node()
        let (now, _, _) = Self.run(&node, from: 0, for: 7) { _ in [] }
        let raised = node.awareness
        #expect(raised >= 3)
        var acked = 0
        // Reachable again: each probed member acks and refutes the suspicion it was under.
        _ = Self.run(&node, from: now, for: 40) { out in
            out.messages.flatMap { message -> [WireMessage] in
                guard case let .ping(sequence, target, _) = message else { return [] }
                acked += 1
                return [.ack(sequence: sequence, from: target), .alive(node: target, incarnation: 1, metadata: [])]
            }
        }
        #expect(node.awareness == 0)
        #expect(acked >= raised)
    }

    @Test("refuting a suspicion about itself raises the score")
    func refuteRaisesAwareness() {
        var node = Self.node()
        _ = node.receive([.suspect(node: "gw-1", incarnation: 0, from: "gw-2")], now: 1)
        #expect(node.awareness == 1)
        #expect(node.incarnation == 1)
        _ = node.receive([.suspect(node: "gw-1", incarnation: 0, from: "gw-3")], now: 2)
        #expect(node.awareness == 1, "an old accusation, already refuted, counts once")
    }

    @Test("a relay whose target does not answer nacks the requester after the probe timeout; one that answers is acked instead")
    func relayNacks() {
        var node = Self.node()
        let requester = Self.address(2)
        let pings = node.receive([.pingRequest(sequence: 41, target: Self.address(3), requester: requester)], now: 100)
        #expect(pings.count == 1 && pings[0].to == Self.address(3))
        #expect(!node.tick(now: 100.4).contains { $0.messages.contains { if case .nack = $0 { true } else { false } } }, "not before the timeout")
        let late = node.tick(now: 100.5)
        #expect(late.contains { $0.to == requester && $0.messages == [.nack(sequence: 41, from: Self.address(1))] })

        let again = node.receive([.pingRequest(sequence: 42, target: Self.address(4), requester: requester)], now: 200)
        guard case let .ping(ours, _, _)? = again.first?.messages.first else {
            Issue.record("no ping relayed: \(again)")
            return
        }
        let forwarded = node.receive([.ack(sequence: ours, from: Self.address(4))], now: 200.1)
        #expect(forwarded == [Node.Outbound(to: requester, messages: [.ack(sequence: 42, from: Self.address(4))])])
        #expect(!node.tick(now: 201).contains { $0.messages.contains { if case .nack = $0 { true } else { false } } })
    }
}
