import OTAMeshRollout
import Testing

/// Configuration plans (apps.md): a device succeeds once it runs the target and its filesystem
/// holds its configuration; the configuration comes after the firmware, stage by stage.
@Suite("configuration plans")
struct ConfigurationPlanTests {
    typealias F = Fixture

    static func plan(stages: [Int] = [100]) -> RolloutPlan {
        var plan = F.plan(stages: stages)
        plan.configuration = true
        return plan
    }

    /// A node of gw-1 holding `plan` approved at `stage`.
    static func node(_ plan: RolloutPlan = plan(), stage: Int? = nil) -> RolloutNode {
        var state = F.approved(plan)
        state.setStage(StageMark(stage: stage ?? plan.stages.count - 1, since: F.now, gateway: "gw-1"))
        var decoded = RolloutRecords.Decoded()
        decoded.rollouts[plan.id] = state
        var node = RolloutNode(gateway: "gw-1", trust: F.trust)
        node.load(decoded)
        return node
    }

    static func ask(
        _ node: inout RolloutNode, _ id: String, version: String?, configured: Bool = false, filesystem: Bool = false, at: Int64 = F.now
    ) -> RolloutAnswer {
        node.request(
            RolloutNode.Request(facts: F.facts(id), version: version, admitted: true, configured: configured, filesystem: filesystem), now: at,
            isReady: { _ in true }
        ).0
    }

    @Test("the plan's configuration flag is signed with it and reads back; plans without it read as before")
    func json() throws {
        let plan = Self.plan()
        #expect(plan.json["configuration"] == .bool(true))
        #expect(try RolloutPlan(json: plan.json).configuration)
        #expect(F.plan().json["configuration"] == nil)
        #expect(try RolloutPlan(json: F.plan().json).configuration == false)
    }

    @Test(
        "firmware first: a new configuration waits until the device runs the target; then it is offered and the attempt succeeds only once the device reports it"
    )
    func firmwareThenConfiguration() {
        var node = Self.node()
        guard case .hold(let why) = Self.ask(&node, "dev-1", version: "1.0.0", filesystem: true) else {
            Issue.record("a configuration before the firmware")
            return
        }
        #expect(why.contains("firmware first"))
        #expect(node.state(F.rollout)?.outcomes["dev-1"] == nil, "a filesystem request starts no attempt before the firmware")
        // The firmware: offered, installed; the device reboots into 2.0.0, its configuration not there yet.
        #expect(Self.ask(&node, "dev-1", version: "1.0.0") == .offer(path: F.target.path, rollout: F.rollout))
        _ = node.concluded(device: "dev-1", version: "2.0.0", rollout: F.rollout, upToDate: true, now: F.now + 1000, configured: false)
        #expect(node.state(F.rollout)?.outcomes["dev-1"]?.phase.isFinished == false, "running the target is not enough")
        #expect(Self.ask(&node, "dev-1", version: "2.0.0", filesystem: true, at: F.now + 2000) == .offer(path: F.target.path, rollout: F.rollout))
        // The device reports its configuration: the attempt succeeds.
        _ = node.configured(device: "dev-1", version: "2.0.0", now: F.now + 3000)
        #expect(node.state(F.rollout)?.outcomes["dev-1"]?.phase == .succeeded)
        #expect(
            Self.ask(&node, "dev-1", version: "2.0.0", configured: true, filesystem: true, at: F.now + 4000) == .none, "after success the device is current")
    }

    @Test("a device already on the target takes its new configuration through an attempt; already configured, it counts at once")
    func settingsOnly() {
        var node = Self.node()
        #expect(Self.ask(&node, "dev-2", version: "2.0.0", filesystem: true) == .offer(path: F.target.path, rollout: F.rollout))
        #expect(node.state(F.rollout)?.outcomes["dev-2"]?.phase == .offered)
        #expect(Self.ask(&node, "dev-1", version: "2.0.0", configured: true) == .hold("rollout \(F.rollout): already runs \(F.target.path)"))
        #expect(node.state(F.rollout)?.outcomes["dev-1"]?.phase == .succeeded)
        _ = node.configured(device: "dev-2", version: "2.0.0", now: F.now + 1000)
        #expect(node.state(F.rollout)?.outcomes["dev-2"]?.phase == .succeeded)
    }

    @Test("stage by stage: a covered device whose stage has not begun keeps the configuration it has")
    func staged() throws {
        var node = Self.node(Self.plan(stages: [1, 100]), stage: 0)
        let later = try #require((0..<500).map { "dev-\($0)" }.first { StageSelection.bucket(rollout: F.rollout, device: $0) >= 100 })
        guard case .hold(let why) = Self.ask(&node, later, version: "2.0.0", filesystem: true) else {
            Issue.record("a later stage's device got its configuration")
            return
        }
        #expect(why.contains("its configuration comes with its stage"), "\(why)")
    }

    @Test(
        "settings changed after a completed configuration plan wait for the next one (not served at once); another version, or a device it did not configure, is served as usual"
    )
    func governedAfterCompletion() {
        var state = F.approved(Self.plan())
        state.setStage(StageMark(stage: 0, since: F.now, gateway: "gw-1"))
        _ = state.record(
            DeviceOutcome(epoch: 1, phase: .succeeded, bucket: 0, gateway: "gw-1", started: F.now, updated: F.now, detail: "2.0.0, configured"), device: "dev-1"
        )
        state.setCompletion(CompletionMark(at: F.now + 1000, gateway: "gw-1", succeeded: 1, failed: 0))
        var decoded = RolloutRecords.Decoded()
        decoded.rollouts[F.rollout] = state
        var node = RolloutNode(gateway: "gw-1", trust: F.trust)
        node.load(decoded)
        guard case .hold(let why) = Self.ask(&node, "dev-1", version: "2.0.0", filesystem: true, at: F.now + 2000) else {
            Issue.record("changed settings went out outside a configuration rollout")
            return
        }
        #expect(why.contains("next configuration rollout") && why.contains("--configuration"), "\(why)")
        #expect(Self.ask(&node, "dev-1", version: "2.0.0", configured: true, filesystem: true, at: F.now + 2000) == .none, "already current")
        #expect(Self.ask(&node, "dev-1", version: "1.5.0", filesystem: true, at: F.now + 2000) == .none, "runs another version since")
        #expect(Self.ask(&node, "dev-7", version: "2.0.0", filesystem: true, at: F.now + 2000) == .none, "never configured by it")
    }

    @Test(
        "a configuration plan pushes only to devices that take a pushed filesystem (firmware and configuration, or the configuration alone), and fails the others with the reason; configured and on the target, one counts at once; the census marks no device succeeded on its version alone"
    )
    func pushesOnlyToConfigurable() {
        var node = Self.node()
        func candidate(_ id: String, _ version: String, configurable: Bool, configured: Bool = false) -> PushQueue.Candidate {
            var facts = F.facts(id)
            facts.version = version
            return PushQueue.Candidate(facts: facts, version: version, configurable: configurable, configured: configured)
        }
        let push = [
            candidate("dev-9", "1.0.0", configurable: false), candidate("dev-10", "1.0.0", configurable: true),
            candidate("dev-11", "2.0.0", configurable: true, configured: true), candidate("dev-12", "2.0.0", configurable: true),
        ]
        let current = [F.facts("dev-8")].map { facts -> DeviceFacts in
            var facts = facts
            facts.version = "2.0.0"
            return facts
        }
        let directives = node.upkeep(
            RolloutNode.Tick(now: F.now, devices: current + push.map(\.facts), pushDevices: push, alive: ["gw-1"]), isReady: { _ in true })
        let pushed = Set(directives.compactMap { if case .push(_, let device, _) = $0 { device } else { nil } })
        #expect(pushed == ["dev-10", "dev-12"])
        #expect(node.state(F.rollout)?.outcomes["dev-11"]?.phase == .succeeded)
        #expect(node.state(F.rollout)?.outcomes["dev-9"]?.phase == .failed, "a device that cannot take it fails with the reason")
        #expect(node.state(F.rollout)?.outcomes["dev-9"]?.detail == PushQueue.cannotConfigure)
        #expect(node.state(F.rollout)?.outcomes["dev-8"] == nil)
        // The push reports both done: the attempt succeeds with its configuration.
        _ = node.pushEnded(rollout: F.rollout, device: "dev-10", .confirmed(version: "2.0.0"), now: F.now + 1000)
        #expect(node.state(F.rollout)?.outcomes["dev-10"]?.phase == .succeeded)
        #expect(node.state(F.rollout)?.outcomes["dev-10"]?.detail == "2.0.0, configured")
    }
}
