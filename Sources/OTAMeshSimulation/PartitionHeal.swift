/// A partition and its healing: N converged nodes split into two halves (0..<N/2 and the rest)
/// for `duration` seconds; halfway through, one node on each side writes a record; then the
/// network heals and the simulation follows until every node holds both records and every node
/// holds every other as alive again.
///
/// A partition longer than the suspicion timeout makes each side declare the other dead, and a
/// member declared dead is no longer probed, gossiped to or chosen for push-pull: the pure core
/// alone never crosses the healed cut again. What heals it is the shell's reconnect
/// (``SimulationConfiguration/rejoinInterval`` with ``SimulationConfiguration/seeds``, one seed
/// per side here), which this experiment sets unless told not to.
public struct PartitionExperiment: Sendable {
    public var configuration: SimulationConfiguration
    public var warmUp: Double
    public var duration: Double
    /// Give up this long after the heal.
    public var limit: Double
    /// Membership convergence is checked this often (records are timed exactly).
    public var checkEvery: Double

    /// Seeds default to node 0 (one side) and node N/2 (the other). Runs the full model whatever
    /// `configuration.model` says: suspicion and refutation are half of what it measures.
    public init(configuration: SimulationConfiguration, warmUp: Double = 3, duration: Double = 20, limit: Double = 300, checkEvery: Double = 0.5) {
        var configuration = configuration
        configuration.model = .full
        if configuration.seeds.isEmpty { configuration.seeds = [0, configuration.nodes / 2] }
        self.configuration = configuration
        self.warmUp = warmUp
        self.duration = duration
        self.limit = limit
        self.checkEvery = checkEvery
    }

    public func run() -> PartitionResult {
        let count = configuration.nodes
        let half = count / 2
        var simulation = GossipSimulation(configuration)
        simulation.run(until: warmUp)
        let start = simulation.now
        let healed = start + duration
        simulation.partition(Partition(from: start, until: healed, group: Set(0..<half)))
        simulation.countingFalsePositives = true
        simulation.run(until: start + duration / 2)
        simulation.put(node: half > 1 ? 1 : 0, key: "side-a", value: Array("written during the partition, side A".utf8))
        simulation.put(node: count - 1, key: "side-b", value: Array("written during the partition, side B".utf8))
        simulation.run(until: healed)
        simulation.countingFalsePositives = false
        let suspectedPairs = simulation.wronglySuspected.count
        let deadPairs = simulation.wronglyDeclaredDead.count

        var membershipAt: Double?
        var recordsAt: Double?
        while simulation.now < healed + limit, membershipAt == nil || recordsAt == nil {
            simulation.run(until: min(simulation.now + checkEvery, healed + limit))
            if recordsAt == nil, simulation.records.allSatisfy({ $0.liveHolders == simulation.liveCount }) {
                recordsAt = simulation.records.compactMap { $0.heldAt.compactMap { $0 }.max() }.max().map { max(0, $0 - healed) }
            }
            if membershipAt == nil, simulation.membershipConverged() { membershipAt = simulation.now - healed }
        }
        return PartitionResult(
            nodes: count, lossPercent: configuration.network.loss * 100, seed: configuration.seed, partitionSeconds: duration,
            rejoinSeconds: configuration.rejoinInterval, recordsSeconds: recordsAt, membershipSeconds: membershipAt,
            membershipResolutionSeconds: checkEvery, suspectedPairs: suspectedPairs, deadPairs: deadPairs,
            crossPairs: 2 * half * (count - half))
    }
}

/// One partition/heal measurement; times are seconds from the heal, nil if not reached.
public struct PartitionResult: Sendable, Equatable, Codable {
    public var nodes: Int
    public var lossPercent: Double
    public var seed: UInt64
    public var partitionSeconds: Double
    /// The shell's reconnect interval (nil: none).
    public var rejoinSeconds: Double?
    /// Until every node held both records written during the partition (exact).
    public var recordsSeconds: Double?
    /// Until every node held every other as alive (checked every `membershipResolutionSeconds`).
    public var membershipSeconds: Double?
    public var membershipResolutionSeconds: Double
    /// During the partition: (observer, member) pairs suspected / declared dead, against the
    /// pairs across the cut (2 × |A| × |B|).
    public var suspectedPairs: Int
    public var deadPairs: Int
    public var crossPairs: Int
}
