import OTAMeshCommon
import OTAMeshGossip

/// A deterministic discrete-event simulation of a gossip cluster over the real, pure
/// ``GossipNode`` (SWIM + Lifeguard + replicated records): no sockets, no clocks, no threads.
/// Events — packet deliveries, push-pull stream legs, node timers, crashes — come off a queue in
/// time order (ties in the order they were scheduled); every random draw comes from streams of
/// one seed, so a configuration always gives the same run.
///
/// Nodes start converged: all of them share one ``SWIMMembership`` snapshot in which everyone
/// is alive, so N nodes cost N small overlays instead of N² member entries. Each node's timer
/// starts at a random point of the first probe interval and its first push-pull at a random
/// point of its push-pull period, as in a cluster that has been running for a while.
///
/// The simulation records what the experiments measure: traffic, when each node first held each
/// record written through ``put(node:key:value:)``, when each node suspected or declared dead a
/// crashed node, and — while ``countingFalsePositives`` is on — which nodes wrongly suspected or
/// declared dead a live one.
public struct GossipSimulation: Sendable {
    public typealias Node = GossipNode<SplitMix64>

    enum Payload: Sendable {
        case messages([WireMessage])
        case sealed([[UInt8]])
    }

    enum Leg: Sendable {
        case request, reply, finish
    }

    enum Event: Sendable {
        case tick(node: Int, count: Int)
        case packet(from: Int, to: Int, Payload)
        case stream(Leg, initiator: Int, responder: Int, Payload)
        case crash(node: Int)
    }

    /// One record written with ``put(node:key:value:)`` and how far it got.
    public struct RecordSpread: Sendable, Equatable {
        public var owner: Int
        public var key: String
        public var version: UInt64
        public var writtenAt: Double
        /// Per node: when it first held this version (or a newer one); the owner from the write.
        public var heldAt: [Double?]
        /// Live nodes holding it.
        public var liveHolders: Int
    }

    /// When each node first suspected, and first declared dead, a crashed node.
    public struct Detection: Sendable, Equatable {
        public var crashedAt: Double
        public var suspectedAt: [Double?]
        public var declaredDeadAt: [Double?]
        /// Live nodes that have declared it dead.
        public var declaredDeadBy: Int
    }

    public let configuration: SimulationConfiguration
    public private(set) var nodes: [Node]
    public private(set) var now = 0.0
    public private(set) var traffic = Traffic()
    public private(set) var crashed: [Bool]
    public private(set) var liveCount: Int
    public private(set) var records: [RecordSpread] = []
    /// Crashed node → its detection.
    public private(set) var detections: [Int: Detection] = [:]
    /// While true, suspicions and deaths of live nodes are recorded as false positives.
    public var countingFalsePositives = false
    /// (observer, live member) pairs, as observer × N + member, wrongly suspected / declared dead.
    public private(set) var wronglySuspected: Set<Int> = []
    public private(set) var wronglyDeclaredDead: Set<Int> = []
    /// Packets the sealed path could not encode (a core bug if ever non-zero).
    public private(set) var unencodable = 0

    let addresses: [NodeAddress]
    let slotByName: [String: Int]
    var queue = EventQueue<Event>()
    var partitions: [(start: Double, end: Double, inGroup: [Bool])] = []
    var tickStart: [Double]
    var nextRejoinAt: [Double]
    var lossRandom: SplitMix64
    var latencyRandom: SplitMix64
    var nonceRandom: SplitMix64
    let keyring: SiteKeyring

    public init(_ configuration: SimulationConfiguration) {
        precondition(configuration.nodes >= 2 && configuration.nodes < 1 << 24, "simulations need 2…16,777,215 nodes, not \(configuration.nodes)")
        self.configuration = configuration
        let count = configuration.nodes
        addresses = (0..<count).map(Self.address)
        slotByName = Dictionary(uniqueKeysWithValues: addresses.enumerated().map { ($1.name, $0) })
        let metadata = [UInt8](repeating: 0x6D, count: configuration.metadataBytes)
        let membership = SWIMMembership(addresses.map { SWIMMember(address: $0, incarnation: 0, status: .alive, metadata: metadata, since: 0) })
        nodes = addresses.enumerated().map { index, address in
            Node(
                me: address, metadata: metadata, settings: configuration.effectiveSettings,
                random: SplitMix64(seed: configuration.seed, stream: RandomStream.nodeBase + UInt64(index)), membership: membership)
        }
        crashed = Array(repeating: false, count: count)
        liveCount = count
        lossRandom = SplitMix64(seed: configuration.seed, stream: RandomStream.loss)
        latencyRandom = SplitMix64(seed: configuration.seed, stream: RandomStream.latency)
        nonceRandom = SplitMix64(seed: configuration.seed, stream: RandomStream.nonce)
        keyring = try! SiteKeyring(primary: [UInt8](repeating: 0x5A, count: 32))  // 32 bytes: cannot fail
        var setup = SplitMix64(seed: configuration.seed, stream: RandomStream.setup)
        tickStart = []
        nextRejoinAt = []
        for index in 0..<count {
            let start = setup.unit() * configuration.settings.probeInterval  // the configured one, also for gossip-only
            tickStart.append(start)
            nextRejoinAt.append(start + setup.unit() * (configuration.rejoinInterval ?? 0))
            // The first push-pull falls at a random point of the period: the node behaves as
            // if its timer had started `pushPullInterval` before that point.
            let firstPushPull = setup.unit() * nodes[index].pushPullPeriod
            _ = nodes[index].duePushPull(now: firstPushPull - configuration.settings.pushPullInterval)
            queue.schedule(.tick(node: index, count: 0), at: start)
        }
    }

    /// Node `index`'s address: `node-index` at 10.x.y.z:7946.
    public static func address(_ index: Int) -> NodeAddress {
        NodeAddress(
            name: "node-\(index)", ip: [10, UInt8(truncatingIfNeeded: index >> 16), UInt8(truncatingIfNeeded: index >> 8), UInt8(truncatingIfNeeded: index)],
            port: 7946)
    }

    /// The node an address belongs to, if it is one of this simulation's.
    func index(of address: NodeAddress) -> Int? {
        guard address.ip.count == 4 else { return nil }
        let index = Int(address.ip[1]) << 16 | Int(address.ip[2]) << 8 | Int(address.ip[3])
        return index < addresses.count && addresses[index].name == address.name ? index : nil
    }

    // MARK: Driving

    /// Processes every event due up to `end`, then sets the clock to `end`.
    public mutating func run(until end: Double) {
        while let next = queue.nextTime, next <= end, let due = queue.pop() {
            now = due.time
            handle(due.event)
        }
        now = max(now, end)
    }

    /// Node `node` writes a record (now); the simulation follows how it spreads.
    @discardableResult
    public mutating func put(node: Int, key: String, value: [UInt8]) -> ReplicatedRecords.Record {
        guard let record = try? nodes[node].put(key, value) else {
            preconditionFailure("simulated record \(key) does not fit the wire (key ≤ \(WireCodec.maxKey), value ≤ \(WireCodec.maxValue) bytes)")
        }
        var held = [Double?](repeating: nil, count: nodes.count)
        held[node] = now
        records.append(
            RecordSpread(
                owner: node, key: key, version: record.version, writtenAt: now, heldAt: held,
                liveHolders: crashed[node] ? 0 : 1))
        // A new record leaves at once (the shell's put does the same).
        if !crashed[node] { send(nodes[node].gossipNow(), from: node) }
        return record
    }

    /// Node `node` stops at `time` (now if earlier): no more timers, packets or streams.
    public mutating func crash(node: Int, at time: Double? = nil) {
        if let time, time > now {
            queue.schedule(.crash(node: node), at: time)
        } else {
            markCrashed(node)
        }
    }

    /// Cuts `partition.group` off from the other nodes during its window.
    public mutating func partition(_ partition: Partition) {
        var inGroup = [Bool](repeating: false, count: nodes.count)
        for index in partition.group where index >= 0 && index < nodes.count { inGroup[index] = true }
        partitions.append((partition.start, partition.end, inGroup))
    }

    /// Whether every live node holds every other live node as alive.
    public func membershipConverged() -> Bool {
        for observer in nodes.indices where !crashed[observer] {
            let members = nodes[observer].swim.members
            for other in nodes.indices where other != observer && !crashed[other] {
                guard members[addresses[other].name]?.status == .alive else { return false }
            }
        }
        return true
    }

    mutating func markCrashed(_ node: Int) {
        guard !crashed[node] else { return }
        crashed[node] = true
        liveCount -= 1
        for index in records.indices where records[index].heldAt[node] != nil { records[index].liveHolders -= 1 }
        for subject in detections.keys.sorted() where detections[subject]?.declaredDeadAt[node] != nil {
            detections[subject]?.declaredDeadBy -= 1
        }
        detections[node] = Detection(
            crashedAt: now, suspectedAt: Array(repeating: nil, count: nodes.count),
            declaredDeadAt: Array(repeating: nil, count: nodes.count), declaredDeadBy: 0)
    }

    // MARK: Events

    mutating func handle(_ event: Event) {
        switch event {
        case let .tick(node, count):
            guard !crashed[node] else { return }
            let out = nodes[node].tick(now: now)
            observe(node)
            send(out, from: node)
            // As the gateway shell does: the periodic push-pull, and Serf-style reconnects to failed members.
            for peer in [nodes[node].duePushPull(now: now), nodes[node].dueReconnect(now: now)].compactMap({ $0 }) {
                guard let responder = index(of: peer) else { continue }
                traffic.streams += 1
                sendLeg(.request, initiator: node, responder: responder, nodes[node].pushPullRequest())
            }
            if let interval = configuration.rejoinInterval, now >= nextRejoinAt[node] {
                nextRejoinAt[node] = now + interval
                rejoinSeeds(node)
            }
            queue.schedule(.tick(node: node, count: count + 1), at: tickStart[node] + Double(count + 1) * configuration.tickInterval)
        case let .packet(from, to, payload):
            guard !crashed[to], !isPartitioned(from, to) else {
                traffic.blocked += 1
                return
            }
            guard let messages = open(payload) else { return }
            let out = nodes[to].receive(messages, now: now)
            observe(to)
            send(out, from: to)
        case let .stream(leg, initiator, responder, payload):
            let (from, to) = leg == .reply ? (responder, initiator) : (initiator, responder)
            guard !crashed[to], !isPartitioned(from, to) else {
                traffic.streamsFailed += 1
                return
            }
            guard let messages = open(payload) else { return }
            switch leg {
            case .request:
                let reply = nodes[responder].answerPushPull(messages, now: now)
                observe(responder)
                sendLeg(.reply, initiator: initiator, responder: responder, reply)
            case .reply:
                let finish = nodes[initiator].completePushPull(messages, now: now)
                observe(initiator)
                sendLeg(.finish, initiator: initiator, responder: responder, finish)
            case .finish:
                nodes[responder].finishPushPull(messages)
                observe(responder)
            }
        case let .crash(node):
            markCrashed(node)
        }
    }

    /// The shell's reconnect: join each seed this node does not hold alive.
    mutating func rejoinSeeds(_ node: Int) {
        for seed in configuration.seeds where seed != node && seed >= 0 && seed < nodes.count {
            guard nodes[node].swim.members[addresses[seed].name]?.status != .alive else { continue }
            send(nodes[node].join([addresses[seed]], now: now), from: node)
            traffic.streams += 1
            sendLeg(.request, initiator: node, responder: seed, nodes[node].pushPullRequest())
        }
    }

    func isPartitioned(_ a: Int, _ b: Int) -> Bool {
        partitions.contains { $0.start <= now && now < $0.end && $0.inGroup[a] != $0.inGroup[b] }
    }

    func latency(_ random: inout SplitMix64) -> Double {
        let network = configuration.network
        guard network.jitter > 0 else { return network.latency }
        return max(0, network.latency + network.jitter * (2 * random.unit() - 1))
    }

    // MARK: Packets and streams

    mutating func send(_ outbound: [SWIM<SplitMix64>.Outbound], from: Int) {
        for packet in outbound {
            traffic.packets += 1
            guard let to = index(of: packet.to), !isPartitioned(from, to) else {
                traffic.udpBytes += Self.countedSize(packet.messages)
                traffic.blocked += 1
                continue
            }
            let payload: Payload
            switch configuration.path {
            case .counted:
                traffic.udpBytes += Self.countedSize(packet.messages)
                payload = .messages(packet.messages)
            case .sealed:
                guard let sealed = seal(packet.messages) else { continue }
                traffic.udpBytes += sealed.count
                payload = .sealed([sealed])
            }
            if configuration.network.loss > 0, lossRandom.unit() < configuration.network.loss {
                traffic.lost += 1
                continue
            }
            queue.schedule(.packet(from: from, to: to, payload), at: now + latency(&latencyRandom))
        }
    }

    mutating func sendLeg(_ leg: Leg, initiator: Int, responder: Int, _ messages: [WireMessage]) {
        let (from, to) = leg == .reply ? (responder, initiator) : (initiator, responder)
        let frames = stride(from: 0, to: max(messages.count, 1), by: WireCodec.maxMessages).map {
            Array(messages[$0..<min($0 + WireCodec.maxMessages, messages.count)])
        }
        let payload: Payload
        switch configuration.path {
        case .counted:
            traffic.streamBytes += frames.reduce(0) { $0 + 4 + Self.countedSize($1) }
            payload = .messages(messages)
        case .sealed:
            var sealed: [[UInt8]] = []
            for frame in frames {
                guard let bytes = seal(frame) else { return }
                sealed.append(bytes)
            }
            traffic.streamBytes += sealed.reduce(0) { $0 + 4 + $1.count }
            payload = .sealed(sealed)
        }
        guard !crashed[to], !isPartitioned(from, to) else {
            traffic.streamsFailed += 1
            return
        }
        queue.schedule(.stream(leg, initiator: initiator, responder: responder, payload), at: now + latency(&latencyRandom))
    }

    /// Bytes one packet of `messages` takes on the wire: count byte, messages, envelope.
    static func countedSize(_ messages: [WireMessage]) -> Int {
        1 + messages.reduce(0) { $0 + WireCodec.size(of: $1) } + SiteKeyring.overhead
    }

    mutating func seal(_ messages: [WireMessage]) -> [UInt8]? {
        guard let payload = try? WireCodec.encode(messages) else {
            unencodable += 1
            return nil
        }
        let nonce = (0..<12).map { _ in UInt8(truncatingIfNeeded: nonceRandom.next()) }
        return keyring.seal(payload, nonce: nonce)
    }

    func open(_ payload: Payload) -> [WireMessage]? {
        switch payload {
        case .messages(let messages):
            return messages
        case .sealed(let frames):
            var messages: [WireMessage] = []
            for frame in frames {
                guard case .success(let plain) = keyring.open(frame), let decoded = try? WireCodec.decode(plain) else { return nil }
                messages += decoded
            }
            return messages
        }
    }

    // MARK: Observation

    /// Takes the node's membership events and record changes and records what they show.
    mutating func observe(_ observer: Int) {
        for event in nodes[observer].takeEvents() {
            switch event {
            case .suspected(let name):
                guard let subject = slotByName[name] else { continue }
                if crashed[subject] {
                    if detections[subject]?.suspectedAt[observer] == nil { detections[subject]?.suspectedAt[observer] = now }
                } else if countingFalsePositives {
                    wronglySuspected.insert(observer * nodes.count + subject)
                }
            case .failed(let name):
                guard let subject = slotByName[name] else { continue }
                if crashed[subject] {
                    if detections[subject]?.declaredDeadAt[observer] == nil {
                        detections[subject]?.declaredDeadAt[observer] = now
                        if !crashed[observer] { detections[subject]?.declaredDeadBy += 1 }
                    }
                } else if countingFalsePositives {
                    wronglyDeclaredDead.insert(observer * nodes.count + subject)
                }
            case .joined, .refuted:
                continue
            }
        }
        let changes = nodes[observer].takeRecordChanges()
        guard !changes.isEmpty, !records.isEmpty else { return }
        for change in changes {
            for index in records.indices
            where records[index].heldAt[observer] == nil && records[index].key == change.key
                && change.version >= records[index].version && change.owner == addresses[records[index].owner].name
            {
                records[index].heldAt[observer] = now
                if !crashed[observer] { records[index].liveHolders += 1 }
            }
        }
    }
}
