import OTAMeshCommon
import OTAMeshGossip
import OTAMeshTestSupport
import Testing

@testable import OTAMeshSimulation

/// The simulator over the real gossip core. Small N only: these run in debug builds; the large
/// runs are `otamesh simulate` in release (docs/benchmarks.md).
@Suite("Gossip simulator")
struct SimulationTests {
    static func configuration(_ nodes: Int, loss: Double = 0, seed: UInt64 = 1, path: PacketPath = .counted) -> SimulationConfiguration {
        SimulationConfiguration(nodes: nodes, seed: seed, network: NetworkConditions(loss: loss), path: path)
    }

    @Test("the same seed gives the same results and the same table bytes; another seed gives another run")
    func determinism() {
        let experiment = DisseminationExperiment(configuration: Self.configuration(60, loss: 0.1), measureFor: 3)
        let first = experiment.run()
        let second = experiment.run()
        #expect(first == second)
        #expect(SimulationTable.dissemination([first]) == SimulationTable.dissemination([second]))
        var reseeded = experiment
        reseeded.configuration.seed = 2
        let other = reseeded.run()
        #expect(other.traffic != first.traffic || other.seconds100 != first.seconds100)

        let failure = FailureDetectionExperiment(configuration: Self.configuration(30, loss: 0.1), soak: 10)
        #expect(failure.run() == failure.run())
    }

    @Test("a record reaches all 200 nodes within ⌈log2 N⌉ + 4 rounds at 0 % loss")
    func dissemination() {
        let result = DisseminationExperiment(configuration: Self.configuration(200), measureFor: 0).run()
        #expect(result.holders == 200 && result.liveNodes == 200)
        #expect(result.goalRounds == 12)
        #expect(result.rounds100.map { $0 <= result.goalRounds } == true, "\(result)")
        #expect(result.goalMet == true)
        #expect(result.rounds999 == result.rounds100)  // ⌈0.999 × 200⌉ = 200
        #expect(result.traffic.lost == 0 && result.traffic.blocked == 0)
        #expect(result.bytesPerSecondPerNode > 0 && result.bytesPerSecondPerNode < 42_000, "the memberlist-derived ceiling")
    }

    @Test("at 10 % loss a record still reaches every node, a little later")
    func disseminationUnderLoss() {
        let result = DisseminationExperiment(configuration: Self.configuration(200, loss: 0.1), measureFor: 0).run()
        #expect(result.holders == 200, "\(result)")
        #expect(result.traffic.lost > 0)
        #expect(result.goalMet == nil)  // the goal is stated at 0 % loss
    }

    @Test("the gossip-only model runs the same node with probing off: records spread, nobody is ever suspected")
    func gossipOnly() {
        var configuration = Self.configuration(150, loss: 0.1)
        configuration.model = .gossipOnly
        #expect(configuration.effectiveSettings.probeInterval >= 1e9 && configuration.settings.probeInterval == 1)
        let result = DisseminationExperiment(configuration: configuration, measureFor: 0).run()
        #expect(result.model == .gossipOnly && result.holders == 150, "\(result)")
        var simulation = GossipSimulation(configuration)
        simulation.countingFalsePositives = true
        simulation.run(until: 30)
        #expect(simulation.wronglySuspected.isEmpty && simulation.traffic.lost > 0)
        // The experiments that measure failure detection always run the full model.
        #expect(FailureDetectionExperiment(configuration: configuration).configuration.model == .full)
    }

    @Test("a crashed node is declared dead by every live node within Lifeguard's bound, and a lossless soak has no false positives")
    func failureDetection() {
        let result = FailureDetectionExperiment(configuration: Self.configuration(50), soak: 10).run()
        #expect(result.declaredDeadBy == 49 && result.observers == 49, "\(result)")
        #expect(abs(result.suspicionMaxSeconds - 40.775) < 0.001)  // 6 × 4 × log10(50) × 1 s
        #expect(result.deadMaxSeconds.map { $0 <= result.boundSeconds } == true, "\(result)")
        #expect(result.firstSuspectedSeconds.map { $0 <= 3 } == true, "someone probes it within a few periods: \(result)")
        #expect(result.falseSuspectedPairs == 0 && result.falseDeadPairs == 0)
    }

    @Test("under 10 % loss live nodes are suspected now and then but refute it: none is declared dead")
    func falsePositivesUnderLoss() {
        let result = FailureDetectionExperiment(configuration: Self.configuration(40, loss: 0.1), soak: 60).run()
        #expect(result.falseDeadPairs == 0, "\(result)")
        #expect(result.falseSuspectedRate < 0.5, "\(result)")
        #expect(result.declaredDeadBy == result.observers, "\(result)")
    }

    @Test("after a partition longer than the suspicion timeout, the shell's seed rejoin heals membership; push-pull carries the records across")
    func partitionHeals() {
        var configuration = Self.configuration(40)
        configuration.rejoinInterval = 30
        let result = PartitionExperiment(configuration: configuration, duration: 45, limit: 300).run()
        #expect(result.deadPairs == result.crossPairs, "each side declared the other dead: \(result)")
        #expect(result.membershipSeconds.map { $0 <= 2 * 30 } == true, "within two rejoin intervals: \(result)")
        // Records written during the partition crossed by push-pull only (a record learned by
        // push-pull is not gossiped on): a few push-pull periods (60 s at N = 40).
        #expect(result.recordsSeconds.map { $0 <= 4 * 60 } == true, "\(result)")
    }

    @Test("without seed rejoins the core's own reconnects to failed members cross a healed cut")
    func partitionHealsByReconnect() {
        let result = PartitionExperiment(configuration: Self.configuration(20), duration: 30, limit: 300).run()
        #expect(result.deadPairs == result.crossPairs, "\(result)")
        // One reconnect attempt per node every 10 s; each push-pull refutes both sides' deaths.
        #expect(result.membershipSeconds.map { $0 <= 30 } == true, "\(result)")
        #expect(result.recordsSeconds != nil, "\(result)")
    }

    @Test("a partition shorter than the suspicion timeout heals by refutation alone, without anyone declared dead")
    func shortPartition() {
        let result = PartitionExperiment(configuration: Self.configuration(40), duration: 2, limit: 300).run()
        #expect(result.deadPairs == 0 && result.suspectedPairs > 0, "\(result)")
        #expect(result.membershipSeconds.map { $0 <= 5 } == true, "\(result)")
        #expect(result.recordsSeconds != nil, "\(result)")
    }

    @Test("counting bytes and running the real codec and keyring give the same deliveries and the same byte counts")
    func countedMatchesSealed() {
        for loss in [0.0, 0.1] {
            let counted = DisseminationExperiment(configuration: Self.configuration(24, loss: loss), measureFor: 40).run()
            var sealed = DisseminationExperiment(configuration: Self.configuration(24, loss: loss, path: .sealed), measureFor: 40).run()
            #expect(sealed.path == .sealed)
            sealed.path = .counted
            #expect(counted == sealed)
            #expect(counted.traffic.streams > 0, "the run covers push-pulls too")
        }
    }

    @Test("events come off the queue in time order, ties in the order they were scheduled")
    func eventQueue() {
        var queue = EventQueue<Int>()
        var random = SplitMix64(seed: 3)
        for value in 0..<500 { queue.schedule(value, at: Double(Int.random(in: 0..<50, using: &random))) }
        var popped: [(Double, Int)] = []
        while let next = queue.pop() { popped.append((next.time, next.event)) }
        #expect(popped.count == 500)
        #expect(zip(popped, popped.dropFirst()).allSatisfy { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) })
    }

    @Test("tables render numbers without locale, right-aligned under fixed-width headers")
    func table() {
        #expect(SimulationTable.fixed(1.005, 1) == "1.0" && SimulationTable.fixed(2.25, 2) == "2.25" && SimulationTable.fixed(0.04, 1) == "0.0")
        #expect(SimulationTable.count(1_234_567) == "1,234,567" && SimulationTable.count(999) == "999")
        let lines = SimulationTable.render([("N", 6), ("x", 2)], [["100", "1"], ["10,000", "22"]])
        #expect(lines == ["     N   x", "   100   1", "10,000  22"])
    }
}
