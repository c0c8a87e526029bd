import OTAMeshRollout
import OTAMeshTestSupport
import OTAMeshTrust
import PropertyBased

/// One site with three admins (A, B, C; any two must sign), one rollout, and builders for
/// plans, signed commands, outcomes and views.
enum Fixture {
    static let site = "building-7"
    static let rollout = "r-0123456789ab"

    static let signing = try! SignedSite(site: site, admins: ["a", "b", "c"], threshold: 2, outsiders: ["outsider"])
    static let a = signing.key("a")
    static let b = signing.key("b")
    static let c = signing.key("c")
    /// A well-formed key that the site's trust file does not list.
    static let outsider = signing.key("outsider")
    static let trust = signing.trust

    /// 2026-11-23T00:00:00Z: midnight UTC, in seconds (what commands carry) and milliseconds
    /// (what the view's clock and the marks use).
    static let issued: Int64 = ISOTime.parse("2026-11-23T00:00:00Z")!
    static let now: Int64 = issued * 1000
    static let hour: Int64 = 3_600_000

    static let target = RolloutTarget(
        path: "esp32/app-2.0.0.bin", sha256: String(repeating: "5e", count: 32),
        length: 1_234_567, version: "2.0.0", hardware: "esp32")

    static func plan(
        id: String = rollout, stages: [Int] = [10, 50, 100], soak: Int64 = 600, success: Int = 90,
        maxFailurePercent: Int? = nil, maxFailures: Int? = nil, minFinished: Int = 0, concurrency: Int = 4,
        timeout: Int64 = 1800, window: MaintenanceWindow? = nil, selector: DeviceSelector = DeviceSelector()
    ) -> RolloutPlan {
        RolloutPlan(
            id: id, target: target, selector: selector, stages: stages, soakSeconds: soak, successPercent: success,
            maxFailurePercent: maxFailurePercent, maxFailures: maxFailures, minFinished: minFinished,
            concurrency: concurrency, deviceTimeoutSeconds: timeout, window: window)
    }

    static func signed(_ command: SignedCommand, by signers: [TUFSigner]) -> CommandCopy {
        CommandCopy(try! SignedSite.signed(command, with: signers))
    }

    static func planCopy(_ plan: RolloutPlan = plan(), by signers: [TUFSigner], site: String = site) -> CommandCopy {
        signed(plan.command(site: site, issued: issued), by: signers)
    }

    static func control(
        _ kind: RolloutControl.Kind, _ sequence: Int64, stage: Int? = nil, by signers: [TUFSigner],
        rollout: String = rollout, issued: Int64 = issued
    ) -> CommandCopy {
        signed(RolloutControl(rollout: rollout, sequence: sequence, kind: kind, stage: stage, issued: issued).command(site: site), by: signers)
    }

    static func state(_ copies: CommandCopy..., id: String = rollout) -> RolloutState {
        var state = RolloutState(id: id)
        for copy in copies { state.add(copy) }
        return state
    }

    /// A state whose plan two admins approved.
    static func approved(_ plan: RolloutPlan = plan()) -> RolloutState {
        state(planCopy(plan, by: [a, b]), id: plan.id)
    }

    static func view(_ state: RolloutState, trust: SiteTrust = trust) -> RolloutView {
        var cache = VerificationCache()
        return RolloutView(state: state, trust: trust, cache: &cache)
    }

    /// `count` device ids (`dev-N`) whose bucket in `rollout` satisfies `predicate`.
    static func devices(_ count: Int, rollout: String = rollout, where predicate: (Int) -> Bool) -> [String] {
        var found: [String] = []
        var n = 0
        while found.count < count {
            let id = "dev-\(n)"
            if predicate(StageSelection.bucket(rollout: rollout, device: id)) { found.append(id) }
            n += 1
        }
        return found
    }

    static func facts(_ id: String, gateway: String = "gw-1", hardware: String? = "esp32", tags: Set<String> = []) -> DeviceFacts {
        DeviceFacts(id: id, hardware: hardware, tags: tags, gateway: gateway)
    }

    static func outcome(
        _ device: String, _ phase: DeviceOutcome.Phase, epoch: Int64 = 1, gateway: String = "gw-1",
        started: Int64 = now, updated: Int64? = nil, detail: String = ""
    ) -> DeviceOutcome {
        DeviceOutcome(
            epoch: epoch, phase: phase, bucket: StageSelection.bucket(rollout: rollout, device: device), gateway: gateway,
            started: started, updated: updated ?? started, detail: detail)
    }
}

// MARK: Random rollout state

/// One thing a replica can learn about the rollout.
enum Op: Sendable, Hashable, CustomStringConvertible {
    case outcome(String, DeviceOutcome)
    case census(String, Census)
    case halt(HaltMark)
    case stage(StageMark)
    case command(CommandCopy)
    case completion(CompletionMark)

    func apply(to state: inout RolloutState) {
        switch self {
        case let .outcome(device, outcome): state.record(outcome, device: device)
        case let .census(gateway, census): state.setCensus(census, gateway: gateway)
        case let .halt(mark): state.setHalt(mark)
        case let .stage(mark): state.setStage(mark)
        case let .command(copy): state.add(copy)
        case let .completion(mark): state.setCompletion(mark)
        }
    }

    var description: String {
        switch self {
        case let .outcome(device, o): "outcome(\(device): e\(o.epoch) \(o.phase) b\(o.bucket) \(o.gateway) s\(o.started) u\(o.updated) '\(o.detail)')"
        case let .census(gateway, c): "census(\(gateway) v\(c.version) \(c.perStage))"
        case let .halt(m): "halt(e\(m.epoch) at\(m.at) \(m.gateway) '\(m.reason)')"
        case let .stage(m): "stage(\(m.stage) since\(m.since) \(m.gateway))"
        case let .command(copy): "command(#\(copy.sequence) \(copy.kind) \(copy.bodyHash.prefix(8)) sigs \(copy.signatures.count))"
        case let .completion(m): "completion(at\(m.at) \(m.gateway) \(m.succeeded)/\(m.failed))"
        }
    }
}

/// Really signed command copies, so that unions of signatures are exercised: the plan signed by
/// A, by B and by C separately; two pauses at sequence 2 with different signers and a resume at
/// the same sequence (another body); an abort; an advance. Plus copies of the plan body carrying
/// subsets of 24 junk signatures, whose unions pass the 16-signature cap.
enum Pool {
    static let copies: [CommandCopy] = [
        Fixture.planCopy(by: [Fixture.a]),
        Fixture.planCopy(by: [Fixture.b]),
        Fixture.planCopy(by: [Fixture.c]),
        Fixture.control(.pause, 2, by: [Fixture.a]),
        Fixture.control(.pause, 2, by: [Fixture.b]),
        Fixture.control(.resume, 2, by: [Fixture.c]),
        Fixture.control(.abort, 3, by: [Fixture.a, Fixture.b]),
        Fixture.control(.advance, 4, stage: 1, by: [Fixture.b]),
    ]
    static let planBody = copies[0].signed
    static let junk: [CommandCopy.SignatureEntry] = (0..<24).map { i in
        CommandCopy.SignatureEntry(
            keyID: String(repeating: String(i % 16, radix: 16), count: 64),
            signature: [UInt8](repeating: UInt8(i), count: 8 + i % 5))
    }
}

enum Gens {
    static let devices = ["dev-0", "dev-1", "dev-2", "dev-3", "dev-4"]
    static let gateways = ["gw-a", "gw-b", "gw-c"]
    static let buckets = [0, 17, 999, 5000, 9999]
    /// Details as devices report them, including a multi-line error and an overlong version.
    static let details = [
        "", "2.0.0", "device reported: flash write failed", "no confirmation within 1800 s (last: offered)",
        "device reported: E (1234) esp_ota_ops: OTA image has invalid magic byte\nabort()",
        "already ran " + String(repeating: "2.0.0-rc.1+build.", count: 12),
    ]
    static let reasons = ["", "3 devices failed, more than the 2 allowed", "2 of 4 finished devices failed, more than 25%"]

    static func pick<T>(_ items: [T], _ rng: inout any SeededRandomNumberGenerator) -> T { items.randomElement(using: &rng)! }

    /// Small domains on purpose: equal epochs, phases and timestamps collide often, so the
    /// tie-breaks of every join are exercised.
    static let op = Generator<Op, Shrink.None<Op>> { rng in
        let t = Fixture.now
        switch Int.random(in: 0..<11, using: &rng) {
        case 0...3:
            return .outcome(
                pick(devices, &rng),
                DeviceOutcome(
                    epoch: Int64.random(in: 1...3, using: &rng), phase: pick(DeviceOutcome.Phase.allCases, &rng),
                    bucket: pick(buckets, &rng), gateway: pick(gateways, &rng), started: t + Int64.random(in: 0...2, using: &rng),
                    updated: t + Int64.random(in: 0...3, using: &rng), detail: pick(details, &rng)))
        case 4:
            return .census(
                pick(gateways, &rng),
                Census(
                    version: UInt64.random(in: 0...3, using: &rng),
                    perStage: (0..<Int.random(in: 1...3, using: &rng)).map { _ in Int.random(in: 0...4, using: &rng) },
                    at: t + Int64.random(in: 0...2, using: &rng)))
        case 5:
            return .halt(
                HaltMark(
                    epoch: Int64.random(in: 1...3, using: &rng), at: t + Int64.random(in: 0...2, using: &rng),
                    gateway: pick(gateways, &rng), reason: pick(reasons, &rng)))
        case 6:
            return .stage(
                StageMark(
                    stage: Int.random(in: 0...3, using: &rng), since: t + Int64.random(in: 0...2, using: &rng),
                    gateway: pick(gateways, &rng)))
        case 10:
            return .completion(
                CompletionMark(
                    at: t + Int64.random(in: 0...2, using: &rng), gateway: pick(gateways, &rng),
                    succeeded: Int.random(in: 0...2, using: &rng), failed: Int.random(in: 0...1, using: &rng)))
        case 7:
            let count = Int.random(in: 1...12, using: &rng)
            return .command(CommandCopy(signed: Pool.planBody, signatures: Set(Pool.junk.shuffled(using: &rng).prefix(count))))
        default:
            return .command(pick(Pool.copies, &rng))
        }
    }

    static func ops(_ count: ClosedRange<Int> = 0...20) -> Generator<[Op], Generator<Op, Shrink.None<Op>>.ArrayShrink> { op.array(of: count) }

    static func state(_ ops: [Op]) -> RolloutState {
        var state = RolloutState(id: Fixture.rollout)
        for op in ops { op.apply(to: &state) }
        return state
    }
}

func merged(_ states: RolloutState...) -> RolloutState {
    var result = states[0]
    for state in states.dropFirst() { result.merge(state) }
    return result
}
