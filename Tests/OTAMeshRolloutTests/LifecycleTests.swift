import OTAMeshRollout
import OTAMeshTrust
import Testing

/// A rollout's lifecycle ends: its device set is fixed per stage, completion and abort are
/// terminal, and of several rollouts covering a device the newest approved one governs it.
@Suite("rollout lifecycle")
struct LifecycleTests {
    typealias F = Fixture

    static let stageOne = F.devices(3) { $0 < 1000 }

    @Test("a fully signed abort retires a plan that was never approved; a later approval does not start it")
    func abortUnapproved() {
        var state = F.state(F.planCopy(by: [F.a]))
        #expect(F.view(state).mode == .awaitingApproval)
        state.add(F.control(.abort, 2, by: [F.a]))
        #expect(F.view(state).mode == .awaitingApproval, "one signature of two: the abort is pending, not valid")
        state.add(F.control(.abort, 2, by: [F.b]))
        #expect(F.view(state).mode == .aborted)
        // The second admin now co-signs the plan, as the old hint told them to: still aborted.
        state.add(F.planCopy(by: [F.b]))
        let view = F.view(state)
        #expect(view.plan != nil && view.mode == .aborted)
        #expect(!view.covers(F.facts(Self.stageOne[0])))
        #expect(
            view.decide(F.facts(Self.stageOne[0]), version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1")
                == .notSelected("rollout \(F.rollout) was aborted"))
    }

    @Test("an aborted rollout records no new success for a device that already runs the target")
    func abortedCountsNothingNew() {
        var state = F.approved(F.plan(stages: [100]))
        state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        state.add(F.control(.abort, 2, by: [F.a, F.b]))
        let view = F.view(state)
        guard case .notSelected = view.decide(F.facts("dev-1"), version: "2.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1") else {
            Issue.record("an aborted rollout took a device")
            return
        }
    }

    @Test("completion is terminal: later devices, census growth and failures change nothing")
    func completionTerminal() throws {
        let plan = F.plan(stages: [100], maxFailures: 0, minFinished: 1)
        var state = F.approved(plan)
        state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        state.setCensus(Census(version: 1, perStage: [2]), gateway: "gw-1")
        state.record(F.outcome("dev-1", .succeeded, detail: "2.0.0"), device: "dev-1")
        #expect(F.view(state).mode == .running)
        #expect(F.view(state).completionDue(now: F.now, gateway: "gw-1", members: 1, censusGateways: 1) == nil)
        state.record(F.outcome("dev-2", .succeeded, detail: "2.0.0"), device: "dev-2")
        var view = F.view(state)
        #expect(view.mode == .completed)
        let mark = try #require(view.completionDue(now: F.now + 10, gateway: "gw-1", members: 1, censusGateways: 1))
        #expect(mark.succeeded == 2 && mark.failed == 0)
        // Without fresh evidence from a majority no gateway may declare it over.
        #expect(view.completionDue(now: F.now + 10, gateway: "gw-1", members: 3, censusGateways: 1) == nil)
        state.setCompletion(mark)

        // A newly seen device grows the census, and another device fails past the threshold.
        state.setCensus(Census(version: 2, perStage: [4]), gateway: "gw-1")
        state.record(F.outcome("dev-3", .failed, detail: "device reported: boom"), device: "dev-3")
        view = F.view(state)
        #expect(view.mode == .completed, "flipped to \(view.mode)")
        #expect(view.haltDue(now: F.now + 20, gateway: "gw-1") == nil)
        #expect(view.completion == mark)
        #expect(!view.isOpen)
        #expect(
            view.decide(F.facts("dev-9"), version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1")
                == .notSelected("rollout \(F.rollout) completed"))
    }

    @Test("each stage's device set is fixed when the stage starts, unless the plan is dynamic")
    func fixedDeviceSet() {
        let device = Self.stageOne[0]
        for dynamic in [false, true] {
            var plan = F.plan()
            plan.dynamic = dynamic
            var state = F.approved(plan)
            state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
            let view = F.view(state)
            var early = F.facts(device)
            early.firstSeen = F.now - 1
            var late = F.facts(device)
            late.firstSeen = F.now + 1
            guard case .start = view.decide(early, version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1") else {
                Issue.record("a device known before the stage began was not started")
                continue
            }
            let decision = view.decide(late, version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1")
            if dynamic {
                guard case .start = decision else { Issue.record("a dynamic plan left out a new device: \(decision)"); continue }
            } else {
                guard case .notSelected(let why) = decision, why.contains("fixed") else {
                    Issue.record("a fixed plan took a new device: \(decision)"); continue
                }
            }
            #expect(view.inDeviceSet(late) == dynamic)
        }
    }

    @Test("a gateway that does not hold the target starts no device")
    func unavailableTarget() {
        var state = F.approved(F.plan(stages: [100]))
        state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        let view = F.view(state)
        guard
            case .wait(let why) = view.decide(
                F.facts("dev-1"), version: "1.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1",
                available: false)
        else {
            Issue.record("started without the image")
            return
        }
        #expect(why.contains("not ready on this gateway"))
        // A device already on the target still counts, image or not.
        guard
            case .alreadyCurrent = view.decide(
                F.facts("dev-1"), version: "2.0.0", outcome: nil, inFlightHere: 0, now: F.now, gateway: "gw-1",
                available: false)
        else {
            Issue.record("a device on the target was not counted")
            return
        }
    }

    @Test("of several rollouts covering a device, the newest approved open one governs it")
    func governance() {
        func rollout(_ id: String, issued: Int64, signers: [TUFSigner], abort: Bool = false, selector: DeviceSelector = DeviceSelector()) -> RolloutView {
            let plan = F.plan(id: id, selector: selector)
            var state = RolloutState(id: id)
            state.add(F.signed(plan.command(site: F.site, issued: issued), by: signers))
            if abort { state.add(F.control(.abort, 2, by: [F.a, F.b], rollout: id)) }
            return F.view(state)
        }
        let device = F.facts("dev-1", hardware: "esp32")
        let old = rollout("r-00000000000a", issued: F.issued, signers: [F.a, F.b])
        let new = rollout("r-00000000000b", issued: F.issued + 60, signers: [F.a, F.b])
        #expect(RolloutGovernance.governing(device, newestFirst: RolloutGovernance.newestFirst([old, new])) == new.id)
        // Unapproved, aborted or non-matching newer rollouts leave the device to the older one.
        let unapproved = rollout("r-00000000000c", issued: F.issued + 120, signers: [F.a])
        let aborted = rollout("r-00000000000d", issued: F.issued + 180, signers: [F.a, F.b], abort: true)
        let other = rollout("r-00000000000e", issued: F.issued + 240, signers: [F.a, F.b], selector: try! DeviceSelector(parsing: "hardware=esp8266"))
        #expect(RolloutGovernance.governing(device, newestFirst: RolloutGovernance.newestFirst([old, unapproved, aborted, other])) == old.id)
        #expect(RolloutGovernance.governing(F.facts("dev-1", hardware: "esp8266"), newestFirst: RolloutGovernance.newestFirst([old, other])) == other.id)
    }

    @Test("hardware is inferred only from a version that names one hardware")
    func hardwareInference() {
        let device = DeviceFacts(id: "d", gateway: "gw-1", version: "1.0.0")
        #expect(device.inferringHardware(from: [("1.0.0", "ESP32"), ("2.0.0", "esp32")]).hardware == "esp32")
        #expect(device.inferringHardware(from: [("1.0.0", "esp32"), ("1.0.0", "esp8266")]).hardware == nil, "ambiguous")
        #expect(device.inferringHardware(from: [("3.0.0", "esp32")]).hardware == nil, "unknown image")
        var reported = device
        reported.hardware = "esp32s3"
        #expect(reported.inferringHardware(from: [("1.0.0", "esp32")]).hardware == "esp32s3", "a reported value is kept")
    }

    @Test("a preview counts matching devices per stage and gateway, names devices left out and warns")
    func preview() throws {
        let plan = F.plan(stages: [1, 10, 50], selector: try DeviceSelector(parsing: "hardware=esp32"))
        var devices: [DeviceFacts] = []
        for n in 0..<40 { devices.append(F.facts("dev-\(n)", gateway: n % 2 == 0 ? "gw-1" : "gw-2", hardware: "esp32")) }
        for n in 40..<45 { devices.append(F.facts("dev-\(n)", hardware: nil)) }
        devices.append(F.facts("dev-99", hardware: "esp8266"))
        var current = F.facts("dev-100", hardware: "esp32")
        current.version = "2.0.0"
        devices.append(current)
        let preview = RolloutPreview(plan: plan, devices: devices)
        #expect(preview.devices == 47 && preview.matching == 41)
        #expect(preview.leftOut == ["hardware": 5], "the esp8266 device reports hardware: it is not left out, it does not match")
        #expect(preview.alreadyCurrent == 1)
        let expected = plan.stages.map { percent in
            devices.filter { $0.hardware == "esp32" && StageSelection.bucket(rollout: plan.id, device: $0.id) < percent * 100 }.count
        }
        #expect(preview.perStage == expected)
        #expect(preview.gateways.values.map { $0.last! }.reduce(0, +) == expected.last!)
        #expect(preview.warnings.contains { $0.contains("5 devices report no hardware") && $0.contains("Arduino ESP32 HTTPUpdate") })
        #expect(preview.warnings.contains { $0.contains("last stage is 50%") })

        let none = RolloutPreview(plan: F.plan(selector: try DeviceSelector(parsing: "tag=nowhere")), devices: devices)
        #expect(none.matching == 0 && none.warnings.contains { $0.contains("matches none of the 47 devices") })
        let tiny = RolloutPreview(plan: F.plan(stages: [1, 100]), devices: F.devices(3) { $0 >= 100 }.map { F.facts($0) })
        #expect(tiny.perStage == [0, 3])
        #expect(tiny.warnings.contains { $0.contains("stage 1 (1%) selects no device") })
    }
}
