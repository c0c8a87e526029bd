/// SWIM failure detection and dissemination with the Lifeguard refinements, as a pure state
/// machine: time comes in as `now` (seconds), randomness from an injected generator, packets in
/// as decoded messages and out as ``SWIM/Outbound`` values. The NIO shell only moves bytes.
///
/// Defaults follow memberlist's LAN profile (see ``SWIMSettings``).
public struct SWIM<Random: RandomNumberGenerator & Sendable>: Sendable {
    public struct Outbound: Sendable, Equatable {
        public var to: NodeAddress
        public var messages: [WireMessage]

        public init(to: NodeAddress, messages: [WireMessage]) {
            self.to = to
            self.messages = messages
        }
    }

    /// Membership changes the shell reports (logs, metrics, discovery of images).
    public enum Event: Sendable, Equatable {
        case joined(NodeAddress)
        case suspected(String)
        case failed(String)
        case refuted(incarnation: UInt64)
    }

    public let settings: SWIMSettings
    public private(set) var me: NodeAddress
    public private(set) var incarnation: UInt64 = 0
    public private(set) var metadata: [UInt8]
    /// Every other member this node knows (never this node itself).
    public private(set) var members: SWIMMemberTable
    /// Lifeguard's local health score: 0 = healthy. A failed probe raises it by the helpers that
    /// neither acked nor nacked (by one when there was no helper to ask), as does refuting a
    /// suspicion about this node (all suggest the fault is ours: slow, overloaded or cut off);
    /// each acked probe lowers it by one. Probe interval and timeout
    /// scale by 1 + score, so an unhealthy node accuses others more slowly.
    public private(set) var awareness = 0
    public private(set) var events: [Event] = []

    var random: Random
    var sequence: UInt32 = 0
    /// The current probe round: slots of ``members`` in random order.
    var probeOrder = LazyShuffle()
    var nextProbeAt = 0.0
    var nextGossipAt = 0.0
    var probe: Probe?
    /// Indirect probes this node runs for others: our sequence → (requester, their sequence, deadline).
    var relayed: [UInt32: (requester: NodeAddress, sequence: UInt32, deadline: Double)] = [:]
    var suspicions: [String: Suspicion] = [:]
    /// When tick must next look at the suspicions: the earliest timeout, valid while the member
    /// count is the one it was computed with (timeouts shrink with the cluster); nil after a
    /// suspicion was added or confirmed. Spares scanning every suspicion on every tick.
    var suspicionsDue: (at: Double, memberCount: Int)?
    /// When tick must next look for long-dead members to forget.
    var reapDue = 0.0
    var broadcasts = BroadcastQueue()

    struct Probe {
        var sequence: UInt32
        var target: String
        var sentAt: Double
        var indirectSent = false
        var expectedNacks = 0
        var nacks = 0
        var acked = false
    }

    struct Suspicion {
        var start: Double
        var confirmations: Set<String>
    }

    /// A node that knows nobody yet (it joins through seeds) or, given `membership`, a node that
    /// starts from that shared view of the cluster. If the view lists this node it is taken as
    /// converged: this node keeps the listed incarnation and announces nothing (unless its
    /// metadata differs), as if it had been a member all along.
    public init(
        me: NodeAddress, metadata: [UInt8] = [], settings: SWIMSettings = SWIMSettings(), random: Random,
        membership: SWIMMembership? = nil
    ) {
        self.me = me
        self.metadata = metadata
        self.settings = settings
        self.random = random
        members = SWIMMemberTable(base: membership)
        if let listed = members[me.name] {
            members[me.name] = nil
            incarnation = listed.incarnation
            if listed.metadata != metadata { updateMetadata(metadata) }
        } else {
            enqueue(.alive(node: me, incarnation: 0, metadata: metadata), about: me.name)
        }
    }

    /// Members other than this node, by name.
    public var others: [SWIMMember] { members.values.filter { $0.address.name != me.name }.sorted { $0.address.name < $1.address.name } }

    /// Takes the events since the last call.
    public mutating func takeEvents() -> [Event] {
        defer { events.removeAll() }
        return events
    }

    /// Changes this node's metadata (e.g. the images it holds) and announces it.
    public mutating func updateMetadata(_ metadata: [UInt8]) {
        self.metadata = metadata
        incarnation += 1
        enqueue(.alive(node: me, incarnation: incarnation, metadata: metadata), about: me.name)
    }

    /// Contacts seed nodes (static `join` addresses or mDNS finds): a ping with our alive.
    public mutating func join(_ seeds: [NodeAddress], now: Double) -> [Outbound] {
        seeds.filter { $0.name != me.name }.map { seed in
            sequence &+= 1
            return Outbound(
                to: seed,
                messages: [
                    .ping(sequence: sequence, target: seed, source: me),
                    .alive(node: me, incarnation: incarnation, metadata: metadata),
                ])
        }
    }

    // MARK: Time

    var memberCount: Int { members.liveCount + 1 }
    var scale: Double { Double(1 + awareness) }

    /// Advances timers: starts probes, escalates to indirect probes, raises suspicion, declares
    /// the dead, reaps them. Call it at least every `probeTimeout / 2`.
    public mutating func tick(now: Double) -> [Outbound] {
        var out: [Outbound] = []
        // Indirect probes we relay that got no answer: nack the requester. Expired entries are
        // taken in key order, never in the dictionary's (per-process, hash-seeded) order, so the
        // same inputs and generator give the same packets in the same order in every process.
        var unanswered: [UInt32] = []
        for (ours, relay) in relayed where now >= relay.deadline { unanswered.append(ours) }
        for ours in unanswered.sorted() {
            guard let relay = relayed.removeValue(forKey: ours) else { continue }
            out.append(Outbound(to: relay.requester, messages: [.nack(sequence: relay.sequence, from: me)]))
        }
        if var current = probe {
            if !current.acked, !current.indirectSent, now >= current.sentAt + settings.probeTimeout * scale,
                let target = members[current.target]
            {
                let helpers = pick(settings.indirectChecks, excluding: [current.target])
                for helper in helpers {
                    out.append(Outbound(to: helper.address, messages: [.pingRequest(sequence: current.sequence, target: target.address, requester: me)]))
                }
                current.indirectSent = true
                current.expectedNacks = helpers.count
                probe = current
            }
            if now >= current.sentAt + settings.probeInterval * scale {
                finishProbe(current, now: now)
                probe = nil
            }
        }
        if now >= nextGossipAt {
            nextGossipAt = now + settings.gossipInterval
            out += gossip()
        }
        if probe == nil, now >= nextProbeAt, let target = nextTarget() {
            sequence &+= 1
            probe = Probe(sequence: sequence, target: target.address.name, sentAt: now)
            nextProbeAt = now + settings.probeInterval * scale
            out.append(Outbound(to: target.address, messages: packet([.ping(sequence: sequence, target: target.address, source: me)])))
        }
        // Suspicions whose (shrinking) timeout passed: dead. In name order, for the same reason.
        var expired: [String] = []
        if !suspicions.isEmpty, suspicionsDue.map({ now >= $0.at || $0.memberCount != memberCount }) ?? true {
            var timeouts: [Double] = []  // by confirmations; a loop, as a closure here would copy self
            for confirmations in 0...max(1, settings.indirectChecks) { timeouts.append(suspicionTimeout(confirmations: confirmations)) }
            var earliest = Double.infinity
            for (name, suspicion) in suspicions {
                let deadline = suspicion.start + timeouts[min(suspicion.confirmations.count, timeouts.count - 1)]
                if now >= deadline { expired.append(name) } else { earliest = min(earliest, deadline) }
            }
            suspicionsDue = (earliest, memberCount)
        }
        for name in expired.sorted() {
            suspicions[name] = nil
            if var member = members[name], member.status == .suspect {
                member.status = .dead
                member.since = now
                reapDue = min(reapDue, now + settings.reapTimeout)
                members[name] = member
                events.append(.failed(name))
                enqueue(.dead(node: name, incarnation: member.incarnation, from: me.name), about: name)
            }
        }
        // Forget the long dead.
        if now >= reapDue {
            var forgotten: [String] = []
            var next = Double.infinity
            for name in members.deadNames {
                let reapAt = (members[name]?.since ?? now) + settings.reapTimeout
                if now >= reapAt { forgotten.append(name) } else { next = min(next, reapAt) }
            }
            for name in forgotten { members[name] = nil }
            reapDue = next
        }
        return out
    }

    mutating func finishProbe(_ finished: Probe, now: Double) {
        if finished.acked {
            awareness = max(0, awareness - 1)
            return
        }
        // Lifeguard (as memberlist): each helper that neither acked nor nacked suggests the fault
        // is ours; with no helper to ask, any failed probe counts once.
        let missed = finished.expectedNacks > 0 ? max(0, finished.expectedNacks - finished.nacks) : 1
        awareness = min(settings.awarenessMax - 1, awareness + missed)
        guard var member = members[finished.target], member.status == .alive else { return }
        member.status = .suspect
        member.since = now
        members[finished.target] = member
        suspicions[finished.target] = Suspicion(start: now, confirmations: [])
        suspicionsDue = nil
        events.append(.suspected(finished.target))
        enqueue(.suspect(node: finished.target, incarnation: member.incarnation, from: me.name), about: finished.target)
    }

    /// Lifeguard's shrinking suspicion timeout: from max down to min as independent
    /// confirmations arrive (log-scaled, reaching min at k confirmations). k is the number of
    /// members who could confirm, min(indirectChecks, N − 2); with none (two nodes) min applies
    /// at once. (memberlist uses k = 0 whenever N − 2 < 3, so 3- and 4-node clusters under loss
    /// declare members dead after 4 s; waiting for the confirmations they can give is sturdier.)
    public func suspicionTimeout(confirmations: Int) -> Double {
        let n = Double(max(memberCount, 2))
        let minimum = settings.suspicionMultiplier * max(1, log10(n)) * settings.probeInterval
        let confirmers = min(settings.indirectChecks, max(0, memberCount - 2))
        guard confirmers > 0 else { return minimum }
        let maximum = settings.suspicionMaxMultiplier * minimum
        let k = Double(confirmers)
        let fraction = log(Double(confirmations) + 1) / log(k + 1)
        return max(minimum, maximum - (maximum - minimum) * min(1, fraction))
    }

    mutating func nextTarget() -> SWIMMember? {
        for _ in 0..<2 {
            while let slot = probeOrder.next(using: &random) {
                if let member = members.member(inSlot: slot), member.status != .dead, member.address.name != me.name { return member }
            }
            // A new round: every live member once, in random order (SWIM's round-robin).
            probeOrder = LazyShuffle(count: members.slotCount)
        }
        return nil
    }

    /// Up to `count` distinct random members whose status is at most `including`
    /// (alive < suspect < dead), uniformly: random slots are drawn and ineligible ones skipped,
    /// which costs O(count) while most members are eligible (nearly always); if the draws run
    /// out, the rest come from a shuffle of every eligible member.
    mutating func pick(_ count: Int, excluding: Set<String>, including: SWIMMember.Status = .alive) -> [SWIMMember] {
        let slots = members.slotCount
        guard count > 0, slots > 0 else { return [] }
        let me = me.name
        func eligible(_ member: SWIMMember) -> Bool {
            member.status <= including && member.address.name != me && !excluding.contains(member.address.name)
        }
        var chosen: [SWIMMember] = []
        var taken: Set<Int> = []
        for _ in 0..<(4 * count + 8) where chosen.count < count {
            let slot = Int.random(in: 0..<slots, using: &random)
            guard !taken.contains(slot), let member = members.member(inSlot: slot), eligible(member) else { continue }
            taken.insert(slot)
            chosen.append(member)
        }
        if chosen.count < count {
            var rest = (0..<slots).filter { !taken.contains($0) }.compactMap { members.member(inSlot: $0) }.filter(eligible)
            rest.shuffle(using: &random)
            chosen += rest.prefix(count - chosen.count)
        }
        return chosen
    }

    // MARK: Receiving

    /// Handles one decoded packet.
    public mutating func receive(_ messages: [WireMessage], now: Double) -> [Outbound] {
        var out: [Outbound] = []
        for message in messages {
            switch message {
            case let .ping(seq, target, source):
                guard target.name == me.name else { continue }  // meant for a previous owner of this address
                out.append(Outbound(to: source, messages: packet([.ack(sequence: seq, from: me)])))
            case let .pingRequest(seq, target, requester):
                sequence &+= 1
                relayed[sequence] = (requester, seq, now + settings.probeTimeout * scale)
                out.append(Outbound(to: target, messages: packet([.ping(sequence: sequence, target: target, source: me)])))
            case let .ack(seq, from):
                if let relay = relayed.removeValue(forKey: seq) {
                    out.append(Outbound(to: relay.requester, messages: [.ack(sequence: relay.sequence, from: from)]))
                } else if var current = probe, current.sequence == seq {
                    current.acked = true
                    probe = current
                }
            case let .nack(seq, _):
                if var current = probe, current.sequence == seq {
                    current.nacks += 1
                    probe = current
                }
            case let .alive(node, inc, meta):
                applyAlive(node, incarnation: inc, metadata: meta, now: now)
            case let .suspect(name, inc, from):
                applySuspect(name, incarnation: inc, from: from, now: now)
            case let .dead(name, inc, from):
                applyDead(name, incarnation: inc, from: from, now: now)
            case .record, .digest, .covered:
                continue  // replicated records: handled by ``GossipNode``
            }
        }
        return out
    }

    mutating func applyAlive(_ node: NodeAddress, incarnation inc: UInt64, metadata meta: [UInt8], now: Double) {
        if node.name == me.name { return }  // only this node speaks for itself
        if var known = members[node.name] {
            // alive(i) beats suspect/dead only with a higher incarnation; beats alive(j) if i > j.
            guard inc > known.incarnation else { return }
            let revived = known.status != .alive
            known.address = node
            known.incarnation = inc
            known.metadata = meta
            if revived {
                known.status = .alive
                known.left = false
                known.since = now
                suspicions[node.name] = nil
                events.append(.joined(node))
            }
            members[node.name] = known
        } else {
            members[node.name] = SWIMMember(address: node, incarnation: inc, status: .alive, metadata: meta, since: now)
            events.append(.joined(node))
        }
        enqueue(.alive(node: node, incarnation: inc, metadata: meta), about: node.name)
    }

    mutating func applySuspect(_ name: String, incarnation inc: UInt64, from: String, now: Double) {
        if name == me.name {
            refute(above: inc)
            return
        }
        guard var known = members[name], known.status != .dead else { return }
        if known.status == .suspect {
            // An independent confirmation shortens the timeout (Lifeguard).
            if inc == known.incarnation, from != me.name, var suspicion = suspicions[name], !suspicion.confirmations.contains(from) {
                suspicion.confirmations.insert(from)
                suspicions[name] = suspicion
                suspicionsDue = nil
                enqueue(.suspect(node: name, incarnation: inc, from: from), about: name)
            }
            return
        }
        guard inc >= known.incarnation else { return }
        known.status = .suspect
        known.incarnation = inc
        known.since = now
        members[name] = known
        suspicions[name] = Suspicion(start: now, confirmations: from == me.name ? [] : [from])
        suspicionsDue = nil
        events.append(.suspected(name))
        enqueue(.suspect(node: name, incarnation: inc, from: from), about: name)
    }

    mutating func applyDead(_ name: String, incarnation inc: UInt64, from: String, now: Double) {
        if name == me.name {
            refute(above: inc)
            return
        }
        guard var known = members[name], known.status != .dead, inc >= known.incarnation else { return }
        known.status = .dead
        known.left = from == name
        known.incarnation = inc
        known.since = now
        reapDue = min(reapDue, now + settings.reapTimeout)
        members[name] = known
        suspicions[name] = nil
        events.append(.failed(name))
        enqueue(.dead(node: name, incarnation: inc, from: from), about: name)
    }

    /// Someone thinks this node is suspect or dead: raise the incarnation above theirs and say alive.
    mutating func refute(above inc: UInt64) {
        guard inc >= incarnation else { return }
        incarnation = inc + 1
        // Lifeguard (memberlist's refute): being accused suggests this node is the slow one.
        awareness = min(settings.awarenessMax - 1, awareness + 1)
        events.append(.refuted(incarnation: incarnation))
        enqueue(.alive(node: me, incarnation: incarnation, metadata: metadata), about: me.name)
    }

    // MARK: Dissemination

    /// Queues an update; a newer one about the same member replaces the older.
    mutating func enqueue(_ message: WireMessage, about subject: String) {
        broadcasts.enqueue(message, subject: subject)
    }

    /// `head` (a probe or an answer) with as many pending updates as fit in one UDP packet.
    mutating func packet(_ head: [WireMessage]) -> [WireMessage] {
        head + piggyback(budget: settings.maxPacketBytes - 1 - head.reduce(0) { $0 + WireCodec.size(of: $1) })
    }

    /// Queues any update for dissemination (a replicated record, say); a newer one with the
    /// same subject replaces the older.
    public mutating func publish(_ message: WireMessage, subject: String) {
        enqueue(message, about: subject)
    }

    /// Updates to piggyback within `budget` bytes: fewest transmits first, each sent at most
    /// retransmitMultiplier × ⌈log10(N + 1)⌉ times.
    mutating func piggyback(budget: Int) -> [WireMessage] {
        let limit = settings.retransmitMultiplier * Int(log10(Double(memberCount + 1)).rounded(.up))
        return broadcasts.take(budget: budget, maxCount: settings.maxPiggyback, limit: limit)
    }

    /// A gossip round: pending updates to `gossipNodes` random members (alive or suspect).
    /// Runs every `gossipInterval`; ``GossipNode`` also runs one at once when news arrives.
    public mutating func gossip() -> [Outbound] {
        guard !broadcasts.isEmpty else { return [] }
        var out: [Outbound] = []
        for member in pick(settings.gossipNodes, excluding: [], including: .suspect) {
            let updates = piggyback(budget: settings.maxPacketBytes - 1)
            if updates.isEmpty { break }
            out.append(Outbound(to: member.address, messages: updates))
        }
        return out
    }

    // MARK: Push-pull

    /// This node's view for a full-state exchange: itself and every member it knows.
    public func stateMessages() -> [WireMessage] {
        [.alive(node: me, incarnation: incarnation, metadata: metadata)]
            + others.map { member in
                switch member.status {
                case .alive: .alive(node: member.address, incarnation: member.incarnation, metadata: member.metadata)
                case .suspect: .suspect(node: member.address.name, incarnation: member.incarnation, from: me.name)
                case .dead: .dead(node: member.address.name, incarnation: member.incarnation, from: member.left ? member.address.name : me.name)
                }
            }
    }

    /// Merges a peer's full state. As in memberlist, a remote "dead" only makes the member
    /// suspect here: this node then checks for itself before declaring it failed. A member's
    /// own "dead" (it left) is taken as said: there is nothing to check.
    public mutating func mergeState(_ messages: [WireMessage], now: Double) {
        for message in messages {
            switch message {
            case let .alive(node, inc, meta): applyAlive(node, incarnation: inc, metadata: meta, now: now)
            case let .dead(name, inc, from) where from == name: applyDead(name, incarnation: inc, from: from, now: now)
            case let .suspect(name, inc, from), let .dead(name, inc, from): applySuspect(name, incarnation: inc, from: from, now: now)
            default: continue
            }
        }
    }

    /// Updates still waiting to be spread.
    public var pendingBroadcasts: Int { broadcasts.count }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
