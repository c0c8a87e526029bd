import OTAMeshGossip

/// The simulated LAN: every UDP packet is lost with probability `loss` and otherwise arrives
/// after `latency ± jitter` seconds (uniform); a push-pull stream is never lost but each leg takes
/// one such latency, and fails if its peer is crashed or on the other side of a partition.
public struct NetworkConditions: Sendable, Equatable, Codable {
    /// Fraction of UDP packets dropped, 0…1.
    public var loss: Double
    /// One-way latency in seconds.
    public var latency: Double
    /// Latency varies uniformly within ± this.
    public var jitter: Double

    public init(loss: Double = 0, latency: Double = 0.001, jitter: Double = 0.0005) {
        self.loss = loss
        self.latency = latency
        self.jitter = jitter
    }
}

/// A window of time in which the nodes of `group` and all the others cannot exchange anything
/// (packets or streams, in either direction).
public struct Partition: Sendable, Equatable {
    public var start: Double
    public var end: Double
    public var group: Set<Int>

    public init(from start: Double, until end: Double, group: Set<Int>) {
        self.start = start
        self.end = end
        self.group = group
    }
}

/// How packets travel between simulated nodes.
public enum PacketPath: String, Sendable, Equatable, Codable {
    /// Messages are handed over as values; bytes are counted as the wire would carry them
    /// (`WireCodec.size(of:)` per message + 1 count byte + the keyring envelope). Fast: the
    /// path for large N.
    case counted
    /// Every packet and stream frame is encoded with ``WireCodec``, sealed with a
    /// ``SiteKeyring`` and opened and decoded on arrival, as the shell does. Slow: for small N
    /// and for checking that `counted` gives the same results.
    case sealed
}

/// What every simulated node runs.
public enum SimulationModel: String, Sendable, Equatable, Codable, CaseIterable {
    /// The whole GossipNode: SWIM probes, indirect probes, suspicion and refutation (Lifeguard),
    /// piggybacked and gossiped updates, replicated records, push-pull.
    case full
    /// The same GossipNode with probing switched off (the probe interval is set beyond any run):
    /// no failure detection, so no suspicions — only the dissemination path, the core's own
    /// broadcast queue, retransmit limit, gossip rounds and push-pull. Under loss at large N the
    /// full model's views diverge (every node ends up holding an update and a table entry about
    /// nearly every member: N² state), which does not fit a simulation of 10,000 nodes; this
    /// model does, and it leaves out the suspicion traffic that competes with records.
    case gossipOnly = "gossip-only"

    /// The probe interval that switches probing off.
    static let probingOff = 1e9
}

/// One simulation run: the cluster, the network, the protocol settings and the seed that fixes
/// every random draw.
public struct SimulationConfiguration: Sendable, Equatable {
    /// Node count; node `i` is named `node-i` and listens on 10.x.y.z:7946 (x.y.z = i).
    public var nodes: Int
    public var seed: UInt64
    public var model: SimulationModel
    public var network: NetworkConditions
    public var settings: SWIMSettings
    /// Each node's timer (`GossipNode.tick` and the push-pull check) runs this often; its
    /// phase is random, so nodes do not tick in lockstep.
    public var tickInterval: Double
    public var path: PacketPath
    /// Bytes of SWIM metadata per node (carried by alive messages and full-state exchanges).
    public var metadataBytes: Int
    /// The protocol settings the nodes run with (`settings`, probing off for gossip-only).
    public var effectiveSettings: SWIMSettings {
        var effective = settings
        if model == .gossipOnly { effective.probeInterval = SimulationModel.probingOff }
        return effective
    }

    /// The shell's reconnect, after Serf's: every `rejoinInterval` seconds a node joins again
    /// each of `seeds` it does not hold alive (a ping with its alive, then a push-pull). Nil:
    /// never — the pure core has no reconnect of its own.
    public var rejoinInterval: Double?
    public var seeds: [Int]

    public init(
        nodes: Int, seed: UInt64 = 1, model: SimulationModel = .full, network: NetworkConditions = NetworkConditions(),
        settings: SWIMSettings = SWIMSettings(),
        tickInterval: Double = 0.05, path: PacketPath = .counted, metadataBytes: Int = 0,
        rejoinInterval: Double? = nil, seeds: [Int] = []
    ) {
        self.nodes = nodes
        self.seed = seed
        self.model = model
        self.network = network
        self.settings = settings
        self.tickInterval = tickInterval
        self.path = path
        self.metadataBytes = metadataBytes
        self.rejoinInterval = rejoinInterval
        self.seeds = seeds
    }
}

/// What went over the simulated network (sent, so a packet lost on the way still counts).
public struct Traffic: Sendable, Equatable, Codable {
    public var packets = 0
    /// Dropped by the loss rate.
    public var lost = 0
    /// Dropped because sender and receiver were partitioned, or the receiver had crashed.
    public var blocked = 0
    /// UDP bytes, envelope included.
    public var udpBytes = 0
    /// Push-pull exchanges started, and those that failed (peer crashed or partitioned).
    public var streams = 0
    public var streamsFailed = 0
    /// Push-pull bytes: each leg in frames of ≤ 64 messages, each frame sealed, plus a 4-byte
    /// length prefix.
    public var streamBytes = 0

    public init() {}

    public var bytes: Int { udpBytes + streamBytes }

    /// What was sent between `earlier` and this.
    public func since(_ earlier: Traffic) -> Traffic {
        var delta = Traffic()
        delta.packets = packets - earlier.packets
        delta.lost = lost - earlier.lost
        delta.blocked = blocked - earlier.blocked
        delta.udpBytes = udpBytes - earlier.udpBytes
        delta.streams = streams - earlier.streams
        delta.streamsFailed = streamsFailed - earlier.streamsFailed
        delta.streamBytes = streamBytes - earlier.streamBytes
        return delta
    }
}
