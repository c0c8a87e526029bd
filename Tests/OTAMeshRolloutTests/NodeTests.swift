import OTAMeshRollout
import Testing

/// The rollout node as its shell sees it: events in, an answer and directives out, no I/O.
@Suite("rollout node")
struct NodeTests {
    typealias F = Fixture

    /// A node of gw-1 holding `plan` approved and at its last stage.
    static func node(_ plan: RolloutPlan = F.plan(stages: [100]), limits: PushQueue.Limits = .unlimited) -> RolloutNode {
        var state = F.approved(plan)
        state.setStage(StageMark(stage: plan.stages.count - 1, since: F.now, gateway: "gw-1"))
        var decoded = RolloutRecords.Decoded()
        decoded.rollouts[plan.id] = state
        var node = RolloutNode(gateway: "gw-1", trust: F.trust, pushLimits: limits)
        node.load(decoded)
        return node
    }

    static func request(_ id: String, version: String? = "1.0.0") -> RolloutNode.Request {
        RolloutNode.Request(facts: F.facts(id), version: version, admitted: true)
    }

    static func writes(_ directives: [RolloutDirective]) -> [RolloutRecord] {
        directives.compactMap { if case .write(_, let record) = $0 { record } else { nil } }
    }

    static func pushes(_ directives: [RolloutDirective]) -> [String] {
        directives.compactMap { if case .push(_, let device, _) = $0 { device } else { nil } }
    }

    @Test("a request starts an attempt: the device is offered the target, the outcome is written and in the node's state at once")
    func requestStarts() {
        var node = Self.node(F.plan(stages: [100], concurrency: 1))
        let (answer, directives) = node.request(Self.request("dev-1"), now: F.now, isReady: { _ in true })
        #expect(answer == .offer(path: F.target.path, rollout: F.rollout))
        guard case .outcome("dev-1", let outcome)? = Self.writes(directives).first else {
            Issue.record("no outcome written: \(directives)")
            return
        }
        #expect(outcome.phase == .offered)
        #expect(node.state(F.rollout)?.outcomes["dev-1"] == outcome)
        // Its concurrency (1) is used up: the next device waits, and nothing is written for it.
        let (second, more) = node.request(Self.request("dev-2"), now: F.now, isReady: { _ in true })
        guard case .hold(let why) = second else {
            Issue.record("second device: \(second)")
            return
        }
        #expect(why.contains("concurrency 1"))
        #expect(Self.writes(more).isEmpty)
    }

    @Test("a target this gateway does not hold starts no device")
    func notReady() {
        var node = Self.node()
        let (answer, directives) = node.request(Self.request("dev-1"), now: F.now, isReady: { _ in false })
        guard case .hold(let why) = answer else {
            Issue.record("\(answer)")
            return
        }
        #expect(why.contains("not ready on this gateway"))
        #expect(directives.isEmpty)
    }

    @Test("a failed push that crosses the threshold writes the halt in the same event, before any other device could start")
    func failureHalts() {
        var node = Self.node(F.plan(stages: [100], maxFailures: 0, concurrency: 10))
        let push = [PushQueue.Candidate(facts: F.facts("dev-1"), version: "1.0.0"), PushQueue.Candidate(facts: F.facts("dev-2"), version: "1.0.0")]
        let started = node.upkeep(RolloutNode.Tick(now: F.now, devices: push.map(\.facts), pushDevices: push, alive: ["gw-1"]), isReady: { _ in true })
        #expect(Self.pushes(started).sorted() == ["dev-1", "dev-2"])
        let ended = node.pushEnded(rollout: F.rollout, device: "dev-1", .failed("device refused the image"), now: F.now + 1000)
        let records = Self.writes(ended)
        #expect(records.contains { if case .outcome("dev-1", let o) = $0 { o.phase == .failed && o.detail == "device refused the image" } else { false } })
        #expect(records.contains { if case .halt = $0 { true } else { false } })
        #expect(Self.pushes(ended).isEmpty, "a halted rollout starts nothing")
    }

    @Test("push limits: a crossed image frees its slot for the next device; an interrupted push records nothing and is taken up again")
    func pushSlots() {
        var node = Self.node(F.plan(stages: [100], concurrency: 10), limits: .init(maxConcurrent: 1, maxPerSegment: 1))
        let push = (1...3).map { PushQueue.Candidate(facts: F.facts("dev-\($0)"), version: "1.0.0") }
        let tick = RolloutNode.Tick(now: F.now, devices: push.map(\.facts), pushDevices: push, alive: ["gw-1"])
        let first = Self.pushes(node.upkeep(tick, isReady: { _ in true }))
        #expect(first.count == 1)
        let device = first[0]
        let crossed = node.pushProgress(rollout: F.rollout, device: device, phase: .installing, now: F.now + 1000)
        let second = Self.pushes(crossed)
        #expect(second.count == 1 && second != first, "the next device starts once the image crossed: \(crossed)")
        // The gateway stops: the push is cut short, its attempt stays in flight.
        let interrupted = node.pushEnded(rollout: F.rollout, device: second[0], .interrupted, now: F.now + 2000)
        #expect(Self.writes(interrupted).isEmpty)
        #expect(node.state(F.rollout)?.outcomes[second[0]]?.phase.isFinished == false)
        // The next start resumes it.
        let resumed = Self.pushes(node.upkeep(tick, isReady: { _ in true }))
        #expect(resumed.contains(second[0]))
    }

    @Test("a confirmed push succeeds; a device reporting the target later changes nothing")
    func confirmed() {
        var node = Self.node()
        let push = [PushQueue.Candidate(facts: F.facts("dev-1"), version: "1.0.0")]
        // A second (pull) device keeps the rollout from completing with the first.
        let devices = push.map(\.facts) + [F.facts("dev-2")]
        _ = node.upkeep(RolloutNode.Tick(now: F.now, devices: devices, pushDevices: push, alive: ["gw-1"]), isReady: { _ in true })
        let ended = node.pushEnded(rollout: F.rollout, device: "dev-1", .confirmed(version: "2.0.0"), now: F.now + 5000)
        #expect(node.state(F.rollout)?.outcomes["dev-1"]?.phase == .succeeded)
        #expect(ended.contains(.note(device: "dev-1", answer: "rollout \(F.rollout): succeeded: 2.0.0")))
        let (answer, later) = node.request(Self.request("dev-1", version: "2.0.0"), now: F.now + 6000, isReady: { _ in true })
        #expect(answer == .hold("rollout \(F.rollout): runs \(F.target.path)"))
        #expect(later.isEmpty)
    }

    @Test("the upkeep writes the census once, and again only when the counts change")
    func census() {
        var node = Self.node()
        let devices = (1...3).map { F.facts("dev-\($0)") }
        let first = Self.writes(node.upkeep(RolloutNode.Tick(now: F.now, devices: devices, alive: ["gw-1"]), isReady: { _ in true }))
        #expect(first.contains(.census([3], at: F.now)))
        let again = Self.writes(node.upkeep(RolloutNode.Tick(now: F.now + 1000, devices: devices, alive: ["gw-1"]), isReady: { _ in true }))
        #expect(!again.contains { if case .census = $0 { true } else { false } })
        let more = Self.writes(node.upkeep(RolloutNode.Tick(now: F.now + 2000, devices: devices + [F.facts("dev-9")], alive: ["gw-1"]), isReady: { _ in true }))
        #expect(more.contains(.census([4], at: F.now + 2000)))
    }

    @Test("a rollout whose devices a newer one governs says so: how many here, and which rollout (it starts none of them)")
    func superseded() {
        let older = F.plan(stages: [100])
        let newer = F.plan(id: "r-ffffffffffff", stages: [100])
        var decoded = RolloutRecords.Decoded()
        decoded.rollouts[older.id] = F.approved(older)
        decoded.rollouts[newer.id] = F.approved(newer)
        var node = RolloutNode(gateway: "gw-1", trust: F.trust)
        node.load(decoded)
        let devices = (1...3).map { F.facts("dev-\($0)") } + [F.facts("esp8266-1", hardware: "esp8266")]
        _ = node.upkeep(RolloutNode.Tick(now: F.now, devices: devices, alive: ["gw-1"]), isReady: { _ in true })
        // Both select every device; the newer governs them all.
        #expect(node.superseded(older.id) == RolloutStatus.Superseded(devices: 4, by: [newer.id]))
        #expect(node.superseded(newer.id) == nil)
        #expect(node.superseded("r-000000000000") == nil)
    }
}
