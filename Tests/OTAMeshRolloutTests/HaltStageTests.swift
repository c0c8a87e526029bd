import OTAMeshRollout
import OTAMeshTrust
import Testing

/// Failures past the plan's threshold halt the rollout everywhere; stages advance only after
/// soak, on success, and on evidence from a majority.
@Suite("halt and stage decisions")
struct HaltStageTests {
    typealias F = Fixture

    /// Devices of stage 0 (bucket below 10 %), in the order they are used.
    static let early = F.devices(30) { $0 < 1000 }
    static let late = F.devices(5) { $0 >= 5000 }

    static func state(_ plan: RolloutPlan, succeeded: Int = 0, failed: Int = 0, inFlight: Int = 0, epoch: Int64 = 1) -> RolloutState {
        var state = F.approved(plan)
        state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        var next = 0
        func add(_ phase: DeviceOutcome.Phase, _ detail: String) {
            let device = early[next]
            state.record(F.outcome(device, phase, epoch: epoch, detail: detail), device: device)
            next += 1
        }
        for _ in 0..<succeeded { add(.succeeded, "2.0.0") }
        for _ in 0..<failed { add(.failed, "device reported: flash write failed") }
        for _ in 0..<inFlight { add(.installing, "") }
        return state
    }

    @Test("a failure count halts only past minFinished and only when strictly more than allowed")
    func failureCount() {
        let plan = F.plan(maxFailurePercent: nil, maxFailures: 2, minFinished: 4)
        // 3 failures but only 3 finished (in-flight attempts do not count).
        #expect(F.view(Self.state(plan, failed: 3, inFlight: 5)).thresholdCrossed == nil)
        // Exactly the allowed number.
        #expect(F.view(Self.state(plan, succeeded: 5, failed: 2)).thresholdCrossed == nil)
        let view = F.view(Self.state(plan, succeeded: 1, failed: 3))
        #expect(view.finished == 4 && view.failed == 3)
        #expect(view.thresholdCrossed == "3 devices failed, more than the 2 allowed")
        // maxFailures 0 tolerates no failure at all, once enough finished.
        #expect(F.view(Self.state(F.plan(maxFailurePercent: nil, maxFailures: 0, minFinished: 1), failed: 1)).thresholdCrossed != nil)
        // No rule, no halt.
        #expect(F.view(Self.state(F.plan(maxFailurePercent: nil, maxFailures: nil), failed: 10)).thresholdCrossed == nil)
    }

    @Test("a failure share halts only when strictly more than the plan's percentage of finished devices")
    func failureShare() {
        let plan = F.plan(maxFailurePercent: 25, minFinished: 4)
        #expect(F.view(Self.state(plan, succeeded: 6, failed: 2)).thresholdCrossed == nil, "2 of 8 is exactly 25 %")
        #expect(F.view(Self.state(plan, succeeded: 6, failed: 3)).thresholdCrossed == "3 of 9 finished devices failed, more than 25%")
        #expect(F.view(Self.state(plan, failed: 3)).thresholdCrossed == nil, "3 finished, below minFinished 4")
        #expect(F.view(Self.state(plan, succeeded: 1, failed: 3)).thresholdCrossed != nil)
    }

    @Test("a halt stops new updates everywhere, lets in-flight ones finish, and a higher resume lifts it")
    func haltAndResume() throws {
        let plan = F.plan(maxFailures: 2, minFinished: 4)
        var state = Self.state(plan, succeeded: 2, failed: 3, inFlight: 1)
        var view = F.view(state)
        #expect(view.mode == .running)
        let mark = try #require(view.haltDue(now: F.now + 5000, gateway: "gw-2"))
        #expect(mark == HaltMark(epoch: 1, at: F.now + 5000, gateway: "gw-2", reason: "3 devices failed, more than the 2 allowed"))

        state.setHalt(mark)
        view = F.view(state)
        #expect(view.mode == .halted && view.halt == mark)
        #expect(view.haltDue(now: F.now + 6000, gateway: "gw-3") == nil, "already halted in this epoch")
        let fresh = Self.early[20]
        #expect(
            view.decide(F.facts(fresh), version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1")
                == .wait("rollout halted: 3 devices failed, more than the 2 allowed"))
        let flying = try #require(state.outcomes.values.first { $0.phase == .installing })
        #expect(view.decide(F.facts(Self.early[5]), version: "1.0.0", outcome: flying, inFlightHere: 1, now: F.now, gateway: "gw-1") == .inFlight(flying))
        #expect(view.stageDue(now: F.now + 24 * F.hour, gateway: "gw-1", members: 1, censusGateways: 1) == nil)

        // A resume at a sequence above the halt's epoch lifts it.
        state.add(F.control(.resume, 2, by: [F.a, F.b]))
        view = F.view(state)
        #expect(view.controlEpoch == 2)
        #expect(view.mode == .running && view.halt == nil)
        guard case .start = view.decide(F.facts(fresh), version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1") else {
            Issue.record("a resumed rollout starts new devices")
            return
        }
        // The failures still count: a gateway that still sees them past the threshold halts
        // again, in the new epoch (only retry-failed forgives failures).
        #expect(view.haltDue(now: F.now + 9000, gateway: "gw-3")?.epoch == 2)
        // A late copy of the old halt changes nothing.
        state.setHalt(HaltMark(epoch: 1, at: F.now + 1, gateway: "gw-9", reason: "late"))
        #expect(F.view(state).mode == .running)
    }

    @Test("a halt set after a resume holds until a resume with a still higher sequence")
    func haltOfTheCurrentEpoch() {
        var state = Self.state(F.plan(maxFailures: 2, minFinished: 4), succeeded: 2, failed: 3)
        state.add(F.control(.resume, 3, by: [F.a, F.c]))
        let mark = F.view(state).haltDue(now: F.now, gateway: "gw-1")
        #expect(mark?.epoch == 3)
        state.setHalt(mark!)
        #expect(F.view(state).mode == .halted)
        state.add(F.control(.resume, 4, by: [F.a, F.c]))
        #expect(F.view(state).mode == .running)
    }

    @Test("retry-failed forgives earlier epochs' failures and offers those devices again; a new failure stays failed")
    func retryFailed() throws {
        let plan = F.plan(maxFailures: 2, minFinished: 4)
        var state = Self.state(plan, succeeded: 2, failed: 3)
        state.setHalt(try #require(F.view(state).haltDue(now: F.now, gateway: "gw-1")))
        #expect(F.view(state).mode == .halted)

        state.add(F.control(.retryFailed, 5, by: [F.b, F.c]))
        let view = F.view(state)
        #expect(view.retryEpoch == 5 && view.controlEpoch == 5)
        #expect(view.mode == .running)
        #expect(view.failed == 0 && view.finished == 2, "old failures no longer count; successes do")
        #expect(view.thresholdCrossed == nil && view.haltDue(now: F.now, gateway: "gw-1") == nil)
        #expect(view.stages[0].failed == 0 && view.stages[0].succeeded == 2)

        let failedDevice = Self.early[2]
        let old = try #require(state.outcomes[failedDevice])
        #expect(old.phase == .failed && old.epoch == 1)
        let later = F.now + 1000
        #expect(
            view.decide(F.facts(failedDevice), version: "1.0.0", outcome: old, inFlightHere: 0, now: later, gateway: "gw-2")
                == .start(DeviceOutcome(epoch: 5, phase: .offered, bucket: old.bucket, gateway: "gw-2", started: later, updated: later)))

        // A failure of the current epoch is final until the next retry.
        let again = DeviceOutcome(
            epoch: 5, phase: .failed, bucket: old.bucket, gateway: "gw-2", started: later, updated: later + 1, detail: "device reported: checksum")
        guard case .failedBefore(let why) = view.decide(F.facts(failedDevice), version: "1.0.0", outcome: again, inFlightHere: 0, now: later, gateway: "gw-2")
        else {
            Issue.record("a failure of the current epoch is not offered again")
            return
        }
        #expect(why.contains("esp32/app-2.0.0.bin") && why.contains("checksum"))
        // And the new attempt's outcome replaces the old one in the merged state.
        state.record(again, device: failedDevice)
        #expect(F.view(state).failed == 1)
    }

    // MARK: Stages

    static func staged(succeeded: Int, plan: RolloutPlan = F.plan(stages: [10, 50, 100], soak: 600, success: 90)) -> RolloutState {
        var state = Self.state(plan, succeeded: succeeded)
        state.setCensus(Census(version: 1, perStage: [10, 50, 100]), gateway: "gw-1")
        return state
    }

    @Test("stageDue: nothing before soak, nothing below the success share, nothing without a majority's census")
    func stageDue() throws {
        let soaked = F.now + 600_000
        let ready = F.view(Self.staged(succeeded: 9))
        #expect(ready.stages[0].targeted == 10 && ready.stages[0].succeeded == 9)
        #expect(ready.stageDue(now: soaked - 1, gateway: "gw-1", members: 1, censusGateways: 1) == nil, "still soaking")
        #expect(F.view(Self.staged(succeeded: 8)).stageDue(now: soaked, gateway: "gw-1", members: 1, censusGateways: 1) == nil, "8 of 10 is below 90 %")
        #expect(ready.stageDue(now: soaked, gateway: "gw-1", members: 3, censusGateways: 1) == nil, "census from 1 of 3 gateways")
        #expect(ready.stageDue(now: soaked, gateway: "gw-1", members: 2, censusGateways: 1) == nil, "half is no majority")
        #expect(ready.stageDue(now: soaked, gateway: "gw-1", members: 3, censusGateways: 2) == StageMark(stage: 1, since: soaked, gateway: "gw-1"))
        #expect(ready.stageDue(now: soaked, gateway: "gw-1", members: 1, censusGateways: 1) == StageMark(stage: 1, since: soaked, gateway: "gw-1"))

        // One stage at a time: in stage 1 the same 9 successes are far from 90 % of 50.
        var state = Self.staged(succeeded: 9)
        state.setStage(try #require(ready.stageDue(now: soaked, gateway: "gw-1", members: 1, censusGateways: 1)))
        let next = F.view(state)
        #expect(next.stage == 1 && next.stageSince == soaked)
        #expect(next.stageDue(now: soaked + 24 * F.hour, gateway: "gw-1", members: 1, censusGateways: 1) == nil)

        // The last stage never advances further.
        state.setStage(StageMark(stage: 2, since: soaked, gateway: "gw-1"))
        #expect(F.view(state).stageDue(now: soaked + 24 * F.hour, gateway: "gw-1", members: 1, censusGateways: 1) == nil)
    }

    @Test("only census written after the soak ended is evidence: a side cut off before then, still seen alive, never advances")
    func freshEvidence() throws {
        let soaked = F.now + 600_000
        let all: Set<String> = ["gw-1", "gw-2", "gw-3"]
        var state = Self.state(F.plan(stages: [10, 50, 100], soak: 600, success: 90), succeeded: 9)
        state.setCensus(Census(version: 1, perStage: [10, 50, 100], at: F.now + 1000), gateway: "gw-1")
        for gateway in ["gw-2", "gw-3"] { state.setCensus(Census(version: 1, perStage: [0, 0, 0], at: F.now + 1000), gateway: gateway) }
        let soaking = F.view(state)
        #expect(soaking.evidenceSince == soaked)
        #expect(!soaking.censusStale(state.census["gw-1"], now: soaked - 1), "no decision is pending while the stage soaks")
        #expect(soaking.censusStale(state.census["gw-1"], now: soaked), "once the soak ends every gateway writes its census again")
        #expect(soaking.freshCensusGateways(alive: all) == 0, "census from before the soak ended is no evidence")

        // gw-1 was cut off from gw-2 and gw-3 just before the soak ended; SWIM still shows them
        // alive. Its own rewrite is fresh, theirs cannot arrive: 1 of 3, no advance.
        state.setCensus(Census(version: 2, perStage: [10, 50, 100], at: soaked), gateway: "gw-1")
        let cut = F.view(state)
        #expect(!cut.censusStale(state.census["gw-1"], now: soaked + 5000), "written once per evidence point, not every tick")
        #expect(cut.freshCensusGateways(alive: all) == 1)
        #expect(cut.stageDue(now: soaked + 1000, gateway: "gw-1", members: 3, censusGateways: cut.freshCensusGateways(alive: all)) == nil)

        // Connected, gw-2's rewrite arrives: 2 of 3 fresh, the stage advances.
        state.setCensus(Census(version: 2, perStage: [0, 0, 0], at: soaked + 400), gateway: "gw-2")
        let joined = F.view(state)
        #expect(joined.freshCensusGateways(alive: all) == 2)
        #expect(joined.freshCensusGateways(alive: ["gw-1", "gw-3"]) == 1, "a writer this gateway does not see alive does not count")
        let mark = try #require(joined.stageDue(now: soaked + 1000, gateway: "gw-1", members: 3, censusGateways: 2))

        // The next decision needs evidence from after the next soak; the last stage's completion,
        // evidence from after the last stage began.
        state.setStage(mark)
        #expect(F.view(state).evidenceSince == soaked + 1000 + 600_000)
        #expect(F.view(state).freshCensusGateways(alive: all) == 0)
        state.setStage(StageMark(stage: 2, since: soaked + 2000, gateway: "gw-2"))
        #expect(F.view(state).evidenceSince == soaked + 2000)
    }

    @Test("census records carry their time; one without (older gateways) counts as written at 0; a bad one is a problem")
    func censusRecords() {
        let (key, value) = RolloutRecords.census([3, 12, 40], at: 1_733_000_000_123, rollout: F.rollout)
        #expect(String(decoding: value, as: UTF8.self) == "3,12,40 1733000000123")
        let decoded = RolloutRecords.decode([.init(key: key, owner: "gw-1", value: value), .init(key: key, owner: "gw-2", value: Array("3,12,40".utf8))])
        #expect(decoded.rollouts[F.rollout]?.census["gw-1"]?.at == 1_733_000_000_123)
        #expect(decoded.rollouts[F.rollout]?.census["gw-2"]?.at == 0)
        for bad in ["3,12,40 soon", "3,12,40 -1", "3,,40 5", "3,12,40 5 6", ""] {
            let problems = RolloutRecords.decode([.init(key: key, owner: "gw-1", value: Array(bad.utf8))]).problems
            #expect(problems.count == 1, "'\(bad)'")
        }
    }

    @Test("a signed advance raises the stage (clamped to the last), never lowers it, and needs the threshold")
    func advanceControl() {
        var state = Self.staged(succeeded: 0)
        state.add(F.control(.advance, 2, stage: 1, by: [F.a]))
        #expect(F.view(state).stage == 0, "one signature is not enough")
        state.add(F.control(.advance, 2, stage: 1, by: [F.b]))
        var view = F.view(state)
        #expect(view.stage == 1 && view.stageSince == F.issued * 1000)
        #expect(view.mode == .running, "an advance is not a resume or pause")
        let middle = F.devices(1) { (1000..<5000).contains($0) }[0]
        guard case .start = view.decide(F.facts(middle), version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1") else {
            Issue.record("stage 1 (50 %) reaches buckets 1000…4999")
            return
        }
        guard case .notSelected = view.decide(F.facts(Self.late[0]), version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1") else {
            Issue.record("stage 1 (50 %) does not reach bucket ≥ 5000")
            return
        }
        state.add(F.control(.advance, 3, stage: 9, by: [F.a, F.c]))
        view = F.view(state)
        #expect(view.stage == 2)
        let last = F.devices(1) { $0 >= 9000 }[0]
        guard case .start = view.decide(F.facts(last), version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1") else {
            Issue.record("the last stage (100 %) reaches every device")
            return
        }
        state.add(F.control(.advance, 4, stage: 0, by: [F.a, F.c]))
        #expect(F.view(state).stage == 2)
    }

    @Test("a device of a later stage waits for its stage")
    func laterStage() {
        let view = F.view(Self.staged(succeeded: 0))
        let device = Self.late[0]
        let bucket = StageSelection.bucket(rollout: F.rollout, device: device)
        #expect(
            view.decide(F.facts(device), version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1")
                == .notSelected("bucket \(bucket) is in stage 3; stage 1 of 3 runs"))
    }

    @Test("the rollout completes when the last stage's devices all finished")
    func completion() {
        var state = F.approved(F.plan(stages: [100]))
        state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        let devices = Array(Self.early.prefix(3))
        state.setCensus(Census(version: 1, perStage: [3]), gateway: "gw-1")
        for device in devices.dropLast() { state.record(F.outcome(device, .succeeded), device: device) }
        #expect(F.view(state).mode == .running)
        state.record(F.outcome(devices[2], .downloading), device: devices[2])
        #expect(F.view(state).mode == .running, "one still in flight")
        state.record(F.outcome(devices[2], .succeeded, updated: F.now + 1), device: devices[2])
        #expect(F.view(state).mode == .completed)
    }
}
