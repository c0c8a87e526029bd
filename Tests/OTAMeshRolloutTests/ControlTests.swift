import OTAMeshRollout
import OTAMeshTrust
import Testing

/// A rollout runs only on a plan that enough of the site's admins signed, and obeys only
/// controls they signed; at one sequence the safer control wins.
@Suite("signed plans and controls")
struct ControlTests {
    typealias F = Fixture

    static func isWait(_ decision: RolloutView.DeviceDecision, containing text: String) -> Bool {
        if case .wait(let why) = decision { return why.contains(text) }
        return false
    }

    static func isStart(_ decision: RolloutView.DeviceDecision) -> Bool {
        if case .start = decision { return true }
        return false
    }

    /// A device of stage 0 (bucket below 10 %).
    static let early = F.devices(1) { $0 < 1000 }[0]

    static func decide(_ view: RolloutView, _ device: String = early, outcome: DeviceOutcome? = nil) -> RolloutView.DeviceDecision {
        view.decide(F.facts(device), version: "1.0.0", outcome: outcome, inFlightHere: 0, now: F.now, gateway: "gw-1")
    }

    @Test("2 of 3: one admin's plan waits for approval, a second admin's copy makes it run at stage 0")
    func approval() throws {
        var state = F.state(F.planCopy(by: [F.a]))
        var view = F.view(state)
        #expect(view.mode == .awaitingApproval)
        #expect(view.plan == nil)
        let problem = try #require(view.planProblem)
        #expect(problem.contains("1 valid signature(s)") && problem.contains("2 required"), "\(problem)")
        #expect(view.planHash == state.commands[1]?.keys.first)
        #expect(view.pending.map(\.sequence) == [1])
        #expect(
            view.decide(F.facts(Self.early), version: nil, outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1")
                == .notSelected("rollout \(F.rollout) is not approved"))
        #expect(view.stageDue(now: F.now, gateway: "gw-1", members: 1, censusGateways: 1) == nil)

        state.merge(F.state(F.planCopy(by: [F.b])))
        view = F.view(state)
        #expect(view.plan == F.plan())
        #expect(view.planProblem == nil)
        #expect(view.pending.isEmpty, "the approved plan is no longer pending: \(view.pending)")
        #expect(view.mode == .running)
        #expect(view.stage == 0 && view.stageSince == nil)
        // The first gateway to see the approved plan starts stage 0.
        let mark = try #require(view.stageDue(now: F.now, gateway: "gw-1", members: 3, censusGateways: 0))
        #expect(mark == StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        state.setStage(mark)
        view = F.view(state)
        #expect(view.mode == .running && view.stage == 0 && view.stageSince == F.now)
        #expect(Self.isStart(Self.decide(view)))
    }

    @Test("a plan signed with keys the site does not trust, for another site, or for another rollout never runs")
    func untrustedPlans() throws {
        let cases: [(RolloutState, String)] = [
            (F.state(F.planCopy(by: [F.outsider])), "0 valid signature(s)"),
            (F.state(F.planCopy(by: [F.a, F.outsider])), "1 valid signature(s)"),
            (F.state(F.planCopy(by: [F.a, F.b], site: "building-8")), "command for site building-8"),
        ]
        for (state, expected) in cases {
            let view = F.view(state)
            #expect(view.mode == .awaitingApproval && view.plan == nil)
            #expect(view.planProblem?.contains(expected) == true, "\(view.planProblem ?? "nil")")
            #expect(Self.decide(view) == .notSelected("rollout \(F.rollout) is not approved"))
        }
        // Well signed, but its id names another rollout than the one it was filed under.
        let elsewhere = F.planCopy(F.plan(id: "r-ffffffffffff"), by: [F.a, F.b])
        let view = F.view(F.state(elsewhere))
        #expect(view.mode == .awaitingApproval && view.plan == nil)
        #expect(view.pending.count == 1)
        // A trust file naming other admins: even the site's own admins' plan does not run.
        let otherTrust = try SiteTrust(site: F.site, threshold: 1, admins: [F.outsider.publicKey])
        #expect(F.view(F.approved(), trust: otherTrust).plan == nil)
    }

    @Test("pause with enough signatures pauses; a resume with a higher sequence resumes")
    func pauseResume() {
        var state = F.approved()
        state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        // One admin's pause is not enough.
        state.add(F.control(.pause, 2, by: [F.a]))
        var view = F.view(state)
        #expect(view.mode == .running)
        #expect(view.pending.map(\.sequence) == [2])
        #expect(view.lastSequence == 2, "the next command must take 3 even though #2 is not valid yet")
        state.add(F.control(.pause, 2, by: [F.c]))
        view = F.view(state)
        #expect(view.mode == .paused)
        #expect(view.controls.map(\.kind) == [.pause])
        #expect(Self.isWait(Self.decide(view), containing: "paused"))
        // In-flight updates finish while paused.
        let flying = F.outcome(Self.early, .downloading)
        #expect(Self.decide(view, outcome: flying) == .inFlight(flying))

        state.add(F.control(.resume, 3, by: [F.b, F.c]))
        view = F.view(state)
        #expect(view.mode == .running)
        #expect(Self.isStart(Self.decide(view)))
        // A later pause pauses again.
        state.add(F.control(.pause, 4, by: [F.a, F.b]))
        #expect(F.view(state).mode == .paused)
    }

    @Test("a forged control is ignored and listed as pending")
    func forgedControl() throws {
        var state = F.approved()
        let real = F.control(.pause, 2, by: [F.a, F.b])
        // The same body with the signatures' bytes flipped.
        let flipped = Set(real.signatures.map { CommandCopy.SignatureEntry(keyID: $0.keyID, signature: $0.signature.map { $0 ^ 0x5a }) })
        state.add(CommandCopy(signed: real.signed, signatures: flipped))
        var view = F.view(state)
        #expect(view.mode == .running)
        #expect(view.controls.isEmpty)
        let pending = try #require(view.pending.first)
        #expect(pending.sequence == 2 && pending.kind == "rollout.pause")
        #expect(pending.problem.contains("0 valid signature(s)"), "\(pending.problem)")

        // Real signatures moved onto an edited body (an abort instead of the pause) do not count either.
        var edited = F.state()
        let abort = RolloutControl(rollout: F.rollout, sequence: 3, kind: .abort, issued: F.issued).command(site: F.site)
        edited.add(CommandCopy(signed: abort.signed, signatures: real.signatures))
        state.merge(F.approved().merging(edited))
        view = F.view(state)
        #expect(view.mode == .running)
        #expect(view.pending.map(\.sequence).sorted() == [2, 3])
        // Once the genuine copy arrives, its union with the forged one still verifies.
        state.add(real)
        #expect(F.view(state).mode == .paused)
    }

    @Test("abort is terminal: a later resume does not bring the rollout back")
    func abortIsTerminal() {
        var state = F.approved()
        state.add(F.control(.abort, 2, by: [F.a, F.c]))
        state.add(F.control(.resume, 3, by: [F.a, F.b]))
        state.add(F.control(.retryFailed, 4, by: [F.a, F.b]))
        let view = F.view(state)
        #expect(view.mode == .aborted)
        // Released for good: the device is left to other rollouts and manual assignments.
        #expect(Self.decide(view) == .notSelected("rollout \(F.rollout) was aborted"))
        #expect(view.stageDue(now: F.now + 10 * F.hour, gateway: "gw-1", members: 1, censusGateways: 1) == nil)
    }

    @Test("at one sequence, pause beats resume and abort beats both, whatever order they arrived in")
    func saferWinsAtEqualSequence() {
        let pause = F.control(.pause, 5, by: [F.a, F.b])
        let resume = F.control(.resume, 5, by: [F.b, F.c])
        let abort = F.control(.abort, 5, by: [F.a, F.c])
        for order in [[pause, resume], [resume, pause]] {
            var state = F.approved()
            for copy in order { state.add(copy) }
            #expect(F.view(state).mode == .paused)
        }
        for order in [[pause, resume, abort], [abort, resume, pause]] {
            var state = F.approved()
            for copy in order { state.add(copy) }
            #expect(F.view(state).mode == .aborted)
        }
        // A resume one higher does win.
        var state = F.approved()
        state.add(pause)
        state.add(F.control(.resume, 6, by: [F.a, F.b]))
        #expect(F.view(state).mode == .running)
    }

    @Test("controls of another rollout or with a malformed payload are not obeyed")
    func foreignControls() {
        var state = F.approved()
        state.add(F.control(.pause, 2, by: [F.a, F.b], rollout: "r-ffffffffffff"))
        var bad = SignedCommand(site: F.site, sequence: 3, kind: "rollout.pause", payload: .object(JSONObject()), issued: F.issued)
        try! bad.sign(with: F.a)
        try! bad.sign(with: F.b)
        state.add(CommandCopy(bad))
        var unknown = SignedCommand(
            site: F.site, sequence: 4, kind: "rollout.explode",
            payload: .object(["rollout": .string(F.rollout)] as KeyValuePairs<String, JSONValue>), issued: F.issued)
        try! unknown.sign(with: F.a)
        try! unknown.sign(with: F.b)
        state.add(CommandCopy(unknown))
        let view = F.view(state)
        #expect(view.mode == .running)
        #expect(view.controls.isEmpty)
        #expect(view.pending.map(\.sequence) == [2, 3, 4])
        #expect(view.lastSequence == 4)
    }
}

extension RolloutState {
    func merging(_ other: RolloutState) -> RolloutState {
        var copy = self
        copy.merge(other)
        return copy
    }
}
