import OTAMeshRollout
import OTAMeshTrust
import Testing

/// What a gateway does for one device, and what the device's reports and silence mean.
@Suite("device decisions")
struct DecideTests {
    typealias F = Fixture

    static let device = F.devices(1) { $0 < 1000 }[0]
    static let bucket = StageSelection.bucket(rollout: F.rollout, device: device)

    static func view(_ plan: RolloutPlan) -> RolloutView {
        var state = F.approved(plan)
        state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        return F.view(state)
    }

    static func decide(
        _ view: RolloutView, version: String? = "1.0.0", outcome: DeviceOutcome? = nil, inFlightHere: Int = 0,
        now: Int64 = F.now, facts: DeviceFacts = F.facts(device)
    ) -> RolloutView.DeviceDecision {
        view.decide(facts, version: version, outcome: outcome, inFlightHere: inFlightHere, now: now, gateway: "gw-1")
    }

    @Test("a selected device starts an attempt: offered, in this epoch, with its bucket")
    func start() {
        #expect(
            Self.decide(Self.view(F.plan()), now: F.now + 7)
                == .start(DeviceOutcome(epoch: 1, phase: .offered, bucket: Self.bucket, gateway: "gw-1", started: F.now + 7, updated: F.now + 7)))
    }

    @Test("the gateway's concurrency limit makes further devices wait")
    func concurrency() {
        let view = Self.view(F.plan(concurrency: 2))
        #expect(Self.decide(view, inFlightHere: 2) == .wait("2 updates in flight on this gateway (concurrency 2)"))
        #expect(Self.decide(view, inFlightHere: 3) == .wait("3 updates in flight on this gateway (concurrency 2)"))
        guard case .start = Self.decide(view, inFlightHere: 1) else {
            Issue.record("one slot is still free")
            return
        }
    }

    @Test("outside the maintenance window new updates wait; in-flight ones go on")
    func window() throws {
        let view = Self.view(F.plan(window: try MaintenanceWindow(parsing: "22:00-04:00")))
        #expect(Self.decide(view, now: F.now + 12 * F.hour) == .wait("outside the maintenance window 22:00-04:00 UTC"))
        #expect(Self.decide(view, now: F.now + 4 * F.hour) == .wait("outside the maintenance window 22:00-04:00 UTC"))
        for hour: Int64 in [22, 23, 0, 3] {
            guard case .start = Self.decide(view, now: F.now + hour * F.hour) else {
                Issue.record("\(hour):00 is inside the window")
                continue
            }
        }
        let flying = F.outcome(Self.device, .downloading)
        #expect(Self.decide(view, outcome: flying, now: F.now + 12 * F.hour) == .inFlight(flying))
    }

    @Test("a device already running the target version is recorded as a success, not updated")
    func alreadyCurrent() {
        let view = Self.view(F.plan())
        #expect(
            Self.decide(view, version: "2.0.0", now: F.now + 3)
                == .alreadyCurrent(
                    DeviceOutcome(
                        epoch: 1, phase: .succeeded, bucket: Self.bucket, gateway: "gw-1", started: F.now + 3,
                        updated: F.now + 3, detail: "already ran 2.0.0")))
        guard case .start = Self.decide(view, version: "2.0.1") else {
            Issue.record("another version is updated")
            return
        }
        #expect(Self.decide(view, outcome: F.outcome(Self.device, .succeeded)) == .succeeded)
    }

    @Test("devices the selector does not match are not selected")
    func selector() throws {
        let view = Self.view(F.plan(selector: try DeviceSelector(parsing: "hardware=nrf52")))
        #expect(Self.decide(view) == .notSelected("does not match hardware=nrf52"))
        guard case .start = Self.decide(view, facts: F.facts(Self.device, hardware: "NRF52")) else {
            Issue.record("a matching device is selected")
            return
        }
    }

    static let target = F.plan().target

    @Test("confirm: the target version succeeds; another version after install failed; a reported error fails")
    func confirm() {
        let view = Self.view(F.plan())
        let offered = F.outcome(Self.device, .offered)
        let installing = F.outcome(Self.device, .installing, updated: F.now + 50)
        let later = F.now + 100

        var succeeded = installing
        succeeded.phase = .succeeded
        succeeded.updated = later
        succeeded.detail = "2.0.0"
        #expect(view.confirm(installing, version: "2.0.0", error: nil, now: later) == succeeded)
        #expect(view.confirm(offered, version: "2.0.0", error: nil, now: later)?.phase == .succeeded)
        // Running the target wins over an error report in the same message.
        #expect(view.confirm(installing, version: "2.0.0", error: "late error", now: later)?.phase == .succeeded)

        let rebooted = view.confirm(installing, version: "1.0.0", error: nil, now: later)
        #expect(rebooted?.phase == .failed)
        #expect(rebooted?.detail == "rebooted into 1.0.0, not 2.0.0")
        #expect(rebooted?.updated == later)
        // Before the whole image arrived, the old version is simply what it still runs.
        #expect(view.confirm(F.outcome(Self.device, .downloading), version: "1.0.0", error: nil, now: later) == nil)
        #expect(view.confirm(offered, version: "1.0.0", error: nil, now: later) == nil)
        #expect(view.confirm(offered, version: nil, error: nil, now: later) == nil)

        let reported = view.confirm(offered, version: nil, error: "flash write failed", now: later)
        #expect(reported?.phase == .failed && reported?.detail == "device reported: flash write failed")
        #expect(view.confirm(offered, version: nil, error: String(repeating: "x", count: 500), now: later)?.detail.count == 120)

        // Finished attempts do not change, and time never runs backwards on an outcome.
        #expect(view.confirm(F.outcome(Self.device, .failed), version: "2.0.0", error: nil, now: later) == nil)
        #expect(view.confirm(installing, version: "2.0.0", error: nil, now: F.now)?.updated == F.now + 50)
    }

    @Test("what a device reports lands in the outcome as one line its record carries unchanged")
    func reportedText() throws {
        let view = Self.view(F.plan())
        let installing = F.outcome(Self.device, .installing)
        let multiLine = try #require(view.confirm(installing, version: nil, error: "E (1234) esp_ota_ops: invalid magic\nabort()", now: F.now + 1))
        #expect(multiLine.detail == "device reported: E (1234) esp_ota_ops: invalid magic abort()")
        let longVersion = String(repeating: "2.0.0-rc.1+build.", count: 20)
        let rebooted = try #require(view.confirm(installing, version: longVersion, error: nil, now: F.now + 1))
        #expect(rebooted.detail.count == DeviceOutcome.maxDetail && rebooted.detail.hasPrefix("rebooted into 2.0.0-rc.1+build."))
        // Peers decode from its record exactly the outcome the writer holds.
        for outcome in [multiLine, rebooted] {
            let record = RolloutRecords.outcome(outcome, device: Self.device, rollout: F.rollout)
            let decoded = RolloutRecords.decode([RolloutRecords.Entry(key: record.key, owner: outcome.gateway, value: record.value)])
            #expect(decoded.rollouts[F.rollout]?.outcomes[Self.device] == outcome)
        }
    }

    @Test("an attempt fails once the device timeout passes without confirmation")
    func timeout() {
        let view = Self.view(F.plan(timeout: 1800))
        let downloading = F.outcome(Self.device, .downloading, started: F.now, updated: F.now + 60_000)
        #expect(view.timedOut(downloading, now: F.now + 1_800_000) == nil)
        let failed = view.timedOut(downloading, now: F.now + 1_800_001)
        #expect(
            failed
                == DeviceOutcome(
                    epoch: 1, phase: .failed, bucket: Self.bucket, gateway: "gw-1", started: F.now,
                    updated: F.now + 1_800_001, detail: "no confirmation within 1800 s (last: downloading)"))
        #expect(view.timedOut(F.outcome(Self.device, .succeeded), now: F.now + 10 * F.hour) == nil)
        // A timed-out failure loses to a later success report from the device.
        var state = F.approved()
        state.record(failed!, device: Self.device)
        state.record(view.confirm(downloading, version: "2.0.0", error: nil, now: F.now + 1_900_000)!, device: Self.device)
        #expect(state.outcomes[Self.device]?.phase == .succeeded)
    }

    @Test("without an approved plan nothing is decided")
    func noPlan() {
        let view = F.view(F.state())
        #expect(Self.decide(view) == .notSelected("rollout \(F.rollout) is not approved"))
        #expect(view.confirm(F.outcome(Self.device, .installing), version: "2.0.0", error: nil, now: F.now) == nil)
        #expect(view.timedOut(F.outcome(Self.device, .installing), now: F.now + 100 * F.hour) == nil)
        #expect(view.planProblem == "no plan received")
    }
}
