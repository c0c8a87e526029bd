/// How fast one record spreads: N converged nodes, node 0 writes a record (`put`), and the
/// simulation follows it until every live node holds it. A *round* is one gossip interval
/// (200 ms by default): the time in which every node holding news sends it to `gossipNodes`
/// (3) random members, besides piggybacking it on its probes and acks.
public struct DisseminationExperiment: Sendable {
    public var configuration: SimulationConfiguration
    /// Simulated seconds before the write, for probes to settle.
    public var warmUp: Double
    /// Give up this long after the write.
    public var limit: Double
    /// Traffic is measured over at least this long after the write (and until 100 %), so the
    /// figure covers the record's whole rumour, the probes and the push-pulls due meanwhile.
    public var measureFor: Double
    public var recordBytes: Int

    public init(configuration: SimulationConfiguration, warmUp: Double = 3, limit: Double = 120, measureFor: Double = 10, recordBytes: Int = 64) {
        self.configuration = configuration
        self.warmUp = warmUp
        self.limit = limit
        self.measureFor = measureFor
        self.recordBytes = recordBytes
    }

    public func run() -> DisseminationResult {
        var simulation = GossipSimulation(configuration)
        simulation.run(until: warmUp)
        let written = simulation.now
        let before = simulation.traffic
        simulation.put(node: 0, key: "rollout", value: (0..<recordBytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        while simulation.now < written + limit {
            simulation.run(until: min(simulation.now + 0.05, written + limit))
            if simulation.records[0].liveHolders == simulation.liveCount, simulation.now >= written + measureFor { break }
        }
        let spread = simulation.records[0]
        let times = spread.heldAt.enumerated().compactMap { simulation.crashed[$0.offset] ? nil : $0.element.map { $0 - written } }.sorted()
        let live = simulation.liveCount
        let needed = Measure.countFor(permille: 999, of: live)
        let t999 = times.count >= needed ? times[needed - 1] : nil
        let t100 = times.count >= live ? times[live - 1] : nil
        let settings = configuration.settings
        let elapsed = simulation.now - written
        let traffic = simulation.traffic.since(before)
        let perNode = Double(configuration.nodes) * elapsed
        let goal = Measure.log2Ceiling(configuration.nodes) + 4
        let rounds999 = t999.map { Measure.rounds($0, settings.gossipInterval) }
        return DisseminationResult(
            nodes: configuration.nodes, lossPercent: configuration.network.loss * 100, latencyMs: configuration.network.latency * 1000,
            jitterMs: configuration.network.jitter * 1000, seed: configuration.seed, model: configuration.model, path: configuration.path,
            seconds999: t999, seconds100: t100, rounds999: rounds999, rounds100: t100.map { Measure.rounds($0, settings.gossipInterval) },
            probePeriods999: t999.map { $0 / settings.probeInterval }, probePeriods100: t100.map { $0 / settings.probeInterval },
            goalRounds: goal, goalMet: configuration.network.loss == 0 ? rounds999.map { $0 <= goal } ?? false : nil,
            holders: spread.liveHolders, liveNodes: live, measuredSeconds: elapsed,
            bytesPerSecondPerNode: Double(traffic.bytes) / perNode, udpBytesPerSecondPerNode: Double(traffic.udpBytes) / perNode,
            streamBytesPerSecondPerNode: Double(traffic.streamBytes) / perNode, traffic: traffic)
    }
}

/// One dissemination measurement. Times are seconds from the write; nil: not reached within
/// the experiment's limit.
public struct DisseminationResult: Sendable, Equatable, Codable {
    public var nodes: Int
    public var lossPercent: Double
    public var latencyMs: Double
    public var jitterMs: Double
    public var seed: UInt64
    public var model: SimulationModel
    public var path: PacketPath
    /// Until 99.9 % (⌈0.999 × live⌉ nodes) and 100 % of live nodes held the record.
    public var seconds999: Double?
    public var seconds100: Double?
    /// The same in gossip rounds (rounded up) and in probe periods.
    public var rounds999: Int?
    public var rounds100: Int?
    public var probePeriods999: Double?
    public var probePeriods100: Double?
    /// The goal: 99.9 % within ⌈log2 N⌉ + 4 rounds at 0 % loss; judged only at 0 % loss.
    public var goalRounds: Int
    public var goalMet: Bool?
    public var holders: Int
    public var liveNodes: Int
    /// Traffic is averaged over this many seconds after the write.
    public var measuredSeconds: Double
    /// Mean bytes sent per node per second: all, UDP (probes, acks, gossip) and push-pull streams.
    public var bytesPerSecondPerNode: Double
    public var udpBytesPerSecondPerNode: Double
    public var streamBytesPerSecondPerNode: Double
    public var traffic: Traffic
}

/// Small measurement helpers shared by the experiments.
enum Measure {
    /// ⌈log2 n⌉.
    static func log2Ceiling(_ n: Int) -> Int {
        var bits = 0
        while 1 << bits < n { bits += 1 }
        return bits
    }

    /// Whole rounds of `interval` in `seconds`, rounded up (a hair under a boundary counts as it).
    static func rounds(_ seconds: Double, _ interval: Double) -> Int {
        max(0, Int((seconds / interval - 1e-9).rounded(.up)))
    }

    /// ⌈permille/1000 × count⌉, in integers.
    static func countFor(permille: Int, of count: Int) -> Int {
        (permille * count + 999) / 1000
    }

    /// The value at quantile q (nearest rank) of sorted values.
    static func quantile(_ q: Double, of sorted: [Double]) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((q * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}
