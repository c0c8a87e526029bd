import OTAMeshRollout
import OTAMeshTrust
import Testing

@testable import OTAMeshSimulation

/// The rollout simulator at a small scale (40 gateways × 25 devices, 10 % loss, the last four
/// gateways cut off from 40 s to 100 s): the full scale is `otamesh lab simulate --experiment
/// rollout` in release (docs/benchmarks.md, "Rollout simulator").
@Suite("Rollout simulator")
struct RolloutSimulationTests {
    static func scenario(bad: Range<Int> = 0..<0, seed: UInt64 = 1, members: StageMembers = .known) -> RolloutScenario {
        RolloutScenario(
            gateways: 40, devicesPerGateway: 25, seed: seed, loss: 0.1, stages: [10, 50, 100], soakSeconds: 60,
            successPercent: 80, maxFailures: 20, badGateways: bad, partition: Partition(from: 40, until: 100, group: Set(36..<40)), stageMembers: members,
            limit: 900)
    }

    /// Every gateway's full state, rebuilt from the records it holds, is the same; and the view
    /// it acted on (built from its tally) counts what the full state's view counts.
    static func expectConverged(_ simulation: inout RolloutSimulation) {
        var cache = VerificationCache()
        let reference = simulation.materializedState(of: 0)
        #expect(reference.outcomes.count > 0)
        for gateway in 0..<simulation.gatewayCount {
            let full = simulation.materializedState(of: gateway)
            #expect(full == reference, "gateway \(gateway) differs")
            let incremental = simulation.view(of: gateway)
            let direct = RolloutView(state: full, trust: simulation.trust, cache: &cache)
            #expect(incremental.stages == direct.stages && incremental.finished == direct.finished && incremental.failed == direct.failed)
            #expect(incremental.mode == direct.mode && incremental.stage == direct.stage && incremental.gateways == direct.gateways)
        }
    }

    @Test("a good rollout completes at every gateway through loss and a partition; states end equal")
    func completes() {
        var simulation = RolloutSimulation(Self.scenario())
        let result = simulation.run()
        #expect(result.modes == ["completed": 40], "\(result)")
        #expect(result.failed == 0 && result.thresholdAt == nil && result.haltWriters == 0)
        #expect(result.succeeded == result.matching && result.started == result.matching, "every matching device updated once")
        #expect(result.matching < result.devices, "some devices are of another hardware")
        #expect(result.advances.map(\.stage) == [0, 1, 2])
        #expect(result.planEverywhereSeconds.map { $0 < 5 } == true)
        #expect(result.minorityAdvances == 0, "the cut-off gateways never advance on their own")
        #expect(result.statesEqual)
        #expect(result.endedAt < 900)
        Self.expectConverged(&simulation)
    }

    @Test("a failing group halts the whole mesh: the halt reaches every gateway, nothing starts after it, the minority catches up")
    func halts() {
        var simulation = RolloutSimulation(Self.scenario(bad: 4..<8))
        let result = simulation.run()
        #expect(result.modes == ["halted": 40], "\(result)")
        let crossed = try! #require(result.thresholdAt)
        #expect(crossed > 40 && crossed < 100, "the failures cross in stage 2, during the partition")
        #expect(result.haltWriters >= 1)
        #expect(result.haltLiveSeconds.map { $0 < 10 } == true, "the halt crosses the majority in seconds")
        #expect(result.haltAllSeconds.map { $0 >= 100 - crossed } == true, "the minority learns it only after the heal")
        #expect(result.startsAfterHalt == 0)
        #expect(result.minorityAdvances == 0)
        #expect(result.minorityStage == 0 && result.majorityStage == 1, "the majority advanced during the partition, the minority did not")
        #expect(result.catchUpSeconds.map { $0 >= 0 && $0 < 40 } == true)
        #expect(result.advances.map(\.stage) == [0, 1], "no stage after the halt")
        #expect(result.failed > 20 && result.succeeded > 0)
        #expect(result.statesEqual)
        Self.expectConverged(&simulation)
    }

    /// The engine's rule: `members` is what SWIM holds alive, and a long cut makes SWIM declare
    /// (and later reap) the other side, so the minority's alive view is only itself. It still
    /// does not advance: the majority is taken over every gateway that ever wrote a census.
    @Test("with the engine's alive-members rule, a long-cut minority still never advances on its own")
    func aliveMembersRule() {
        var simulation = RolloutSimulation(Self.scenario(members: .alive))
        let result = simulation.run()
        #expect(result.minorityAdvances == 0, "the cut-off gateways must not write stage 2 themselves")
        #expect(result.minorityStage == 0 && result.majorityStage == 1)
        #expect(result.modes == ["completed": 40] && result.statesEqual)
    }

    @Test("the same seed gives the same run and the same table; another seed another run")
    func determinism() {
        var first = RolloutSimulation(Self.scenario(bad: 4..<8))
        var second = RolloutSimulation(Self.scenario(bad: 4..<8))
        let (a, b) = (first.run(), second.run())
        #expect(a == b)
        #expect(SimulationTable.rollout([a]) == SimulationTable.rollout([b]))
        var other = RolloutSimulation(Self.scenario(bad: 4..<8, seed: 2))
        let c = other.run()
        #expect(c.packets != a.packets || c.thresholdAt != a.thresholdAt)
    }
}
