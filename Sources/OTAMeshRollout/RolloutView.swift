import OTAMeshTrust

/// Remembers which command copies verified, so a gateway checks each signature set once.
public struct VerificationCache: Sendable {
    var results: [String: Result<SignedCommand, TrustError>] = [:]
    public init() {}

    /// `hash`: the copy's body hash when the caller holds it (hashing the body is the costly part).
    mutating func verify(_ copy: CommandCopy, hash: String? = nil, trust: SiteTrust) -> Result<SignedCommand, TrustError> {
        let key =
            (hash ?? copy.bodyHash) + "/"
            + copy.signatures.sorted().map { $0.keyID + ":" + String($0.signature.count) + ":" + String($0.signature.hashValue) }.joined(separator: ",")
        if let known = results[key] { return known }
        let result: Result<SignedCommand, TrustError>
        if let command = copy.command {
            do throws(TrustError) {
                try command.verify(trust: trust, lastSequence: nil)
                result = .success(command)
            } catch { result = .failure(error) }
        } else {
            result = .failure(.malformed(file: "command", reason: "not a signed command"))
        }
        if results.count > 10_000 { results.removeAll() }
        results[key] = result
        return result
    }
}

/// What a rollout's merged state means, as every gateway computes it from the same inputs:
/// whether the plan is approved, the mode, the stage and the progress per stage and gateway.
/// Pure: the clock comes in as `now` (milliseconds since the Unix epoch).
public struct RolloutView: Sendable {
    public enum Mode: String, Sendable, Codable, CaseIterable {
        case awaitingApproval = "awaiting approval"
        case running, paused, halted, aborted, completed
    }

    /// Progress of one stage, cumulative like the stages (stage 2 includes stage 1's devices).
    public struct StageProgress: Sendable, Equatable, Codable {
        public init(percent: Int, targeted: Int, succeeded: Int, failed: Int, inFlight: Int) {
            self.percent = percent; self.targeted = targeted; self.succeeded = succeeded; self.failed = failed; self.inFlight = inFlight
        }
        public var percent: Int
        /// Matching devices in the stage, summed over the gateways' census.
        public var targeted: Int
        public var succeeded: Int
        /// Failures of the current retry epoch.
        public var failed: Int
        public var inFlight: Int
    }

    public struct GatewayProgress: Sendable, Equatable, Codable {
        /// Matching devices of this gateway in the current stage.
        public var targeted: Int
        public var succeeded: Int
        public var failed: Int
        public var inFlight: Int

        public init(targeted: Int, succeeded: Int, failed: Int, inFlight: Int) {
            (self.targeted, self.succeeded, self.failed, self.inFlight) = (targeted, succeeded, failed, inFlight)
        }
    }

    /// A command seen but not (yet) carrying enough valid admin signatures.
    public struct Pending: Sendable, Equatable, Codable {
        public var sequence: Int64
        public var kind: String
        public var bodyHash: String
        public var problem: String
        /// Key ids of the site admins that signed it so far.
        public var signers: [String]?
        /// For a pending advance: the stage index it asks for.
        public var stage: Int?
    }

    public let id: String
    public let plan: RolloutPlan?
    public let planHash: String?
    /// Seconds (Unix) the approved plan was issued: of several rollouts covering a device, the
    /// newest approved one governs it.
    public let planIssued: Int64
    /// Why the plan does not (yet) run, e.g. `1 valid signature(s) …, 2 required`.
    public let planProblem: String?
    public let controls: [RolloutControl]
    public let pending: [Pending]
    /// The highest sequence seen on any command, valid or not: the next command takes one more.
    public let lastSequence: Int64
    public let mode: Mode
    /// The highest valid resume or retry-failed sequence (1: the plan). A halt of a lower epoch
    /// no longer holds.
    public let controlEpoch: Int64
    /// Failures of attempts before this epoch are forgiven (retry-failed).
    public let retryEpoch: Int64
    public let halt: HaltMark?
    public let stage: Int
    public let stageSince: Int64?
    /// Set once the rollout finished its last stage: terminal, whatever comes later.
    public let completion: CompletionMark?
    public let stages: [StageProgress]
    /// Per gateway (any with a census or an outcome that counts): its progress in the current stage.
    public var gateways: [String: GatewayProgress] {
        guard plan != nil else { return [:] }
        var gateways: [String: GatewayProgress] = [:]
        for (gateway, census) in censusByGateway {
            gateways[gateway] = GatewayProgress(targeted: census.perStage.count > stage ? census.perStage[stage] : 0, succeeded: 0, failed: 0, inFlight: 0)
        }
        for (gateway, counts) in tally.gateways {
            let failed = counts.failed.reduce(0) { $0 + ($1.key >= retryEpoch ? $1.value : 0) }
            guard counts.succeeded > 0 || counts.inFlight > 0 || failed > 0 else { continue }
            var entry = gateways[gateway] ?? GatewayProgress(targeted: 0, succeeded: 0, failed: 0, inFlight: 0)
            entry.succeeded = counts.succeeded
            entry.failed = failed
            entry.inFlight = counts.inFlight
            gateways[gateway] = entry
        }
        return gateways
    }
    let censusByGateway: [String: Census]
    let tally: OutcomeTally
    /// Devices finished (succeeded, or failed in the current retry epoch) and failed, over all stages.
    public let finished: Int
    public let failed: Int

    public init(state: RolloutState, trust: SiteTrust, cache: inout VerificationCache) {
        self.init(state: state, tally: OutcomeTally(state.outcomes), trust: trust, cache: &cache)
    }

    /// The view of `state` with `tally` standing for its outcomes (`state.outcomes` is not read):
    /// for a replica that keeps the tally up to date as outcomes merge in, so a view costs no
    /// walk over every device. Given `OutcomeTally(state.outcomes)` it is the view above.
    public init(state: RolloutState, tally: OutcomeTally, trust: SiteTrust, cache: inout VerificationCache) {
        id = state.id
        var plan: RolloutPlan?
        var planHash: String?
        var planIssued: Int64 = 0
        var planProblem: String? = "no plan received"
        var controls: [RolloutControl] = []
        var pending: [Pending] = []
        var last: Int64 = 0
        for (sequence, copies) in state.commands.sorted(by: { $0.key < $1.key }) {
            last = max(last, sequence)
            // Copies of one sequence with different bodies: the smallest body hash that verifies.
            for (hash, copy) in copies.sorted(by: { $0.key < $1.key }) {
                switch cache.verify(copy, hash: hash, trust: trust) {
                case .failure(let error):
                    pending.append(
                        Pending(
                            sequence: sequence, kind: copy.kind, bodyHash: hash, problem: error.description,
                            signers: copy.signatures.map(\.keyID).filter { trust.admins[$0] != nil }.uniqueSorted(),
                            stage: copy.signed["payload"]?["stage"]?.integerValue.flatMap { Int(exactly: $0) }))
                    if sequence == 1, plan == nil, let unsigned = try? RolloutPlan(json: copy.signed["payload"] ?? .null), unsigned.id == state.id {
                        planProblem = error.description
                        planHash = planHash ?? hash
                    }
                case .success(let command):
                    if sequence == 1 {
                        guard plan == nil, command.kind == RolloutPlan.commandKind else { continue }
                        do throws(RolloutError) {
                            let parsed = try RolloutPlan(json: command.payload)
                            guard parsed.id == state.id else { throw .invalidPlan(field: "id", reason: "\(parsed.id) under rollout \(state.id)") }
                            plan = parsed
                            planHash = hash
                            planIssued = ISOTime.parse(command.issued) ?? 0
                            planProblem = nil
                        } catch {
                            pending.append(Pending(sequence: sequence, kind: copy.kind, bodyHash: hash, problem: error.description))
                        }
                    } else if let control = try? RolloutControl(command: command), control.rollout == state.id {
                        controls.append(control)
                    } else {
                        pending.append(Pending(sequence: sequence, kind: copy.kind, bodyHash: hash, problem: "not a control of \(state.id)"))
                    }
                }
            }
        }
        // Drop pending entries superseded by a valid copy of the same body.
        pending.removeAll { entry in entry.sequence == 1 ? (plan != nil && planHash == entry.bodyHash) : false }
        self.plan = plan
        self.planHash = planHash
        self.planIssued = planIssued
        self.planProblem = planProblem
        self.controls = controls.sorted { ($0.sequence, $0.kind.safety) < ($1.sequence, $1.kind.safety) }
        self.pending = pending
        lastSequence = last

        let controlEpoch = controls.filter { $0.kind == .resume || $0.kind == .retryFailed }.map(\.sequence).max() ?? 1
        let retryEpoch = controls.filter { $0.kind == .retryFailed }.map(\.sequence).max() ?? 1
        self.controlEpoch = controlEpoch
        self.retryEpoch = retryEpoch
        halt = state.halt.flatMap { $0.epoch >= controlEpoch ? $0 : nil }

        // The stage register, raised by any signed advance.
        var mark = state.stage
        for control in controls where control.kind == .advance {
            guard let plan, let stage = control.stage else { continue }
            let advanced = StageMark(stage: min(stage, plan.stages.count - 1), since: control.issued * 1000, gateway: "admin #\(control.sequence)")
            if mark == nil || mark! < advanced { mark = advanced }
        }
        stage = plan.map { min(mark?.stage ?? 0, $0.stages.count - 1) } ?? 0
        stageSince = mark?.since

        // Progress, from the tally (the outcomes) and the census (the denominators).
        var stages: [StageProgress] = []
        var finished = 0
        var failed = 0
        let failures = tally.failures(since: retryEpoch)
        if let plan {
            stages = plan.stages.enumerated().map { index, percent in
                let slots = 0..<min(max(percent, 0), OutcomeTally.slots)
                return StageProgress(
                    percent: percent, targeted: state.census.values.reduce(0) { $0 + ($1.perStage.count > index ? $1.perStage[index] : 0) },
                    succeeded: tally.succeeded[slots].reduce(0, +), failed: failures[slots].reduce(0, +),
                    inFlight: tally.inFlight[slots].reduce(0, +))
            }
            let succeeded = tally.succeeded.reduce(0, +)
            failed = failures.reduce(0, +)
            finished = succeeded + failed
        }
        self.stages = stages
        censusByGateway = plan == nil ? [:] : state.census
        self.tally = tally
        self.finished = finished
        self.failed = failed

        // A valid abort retires the rollout, also one whose plan was never approved (an approval
        // arriving later must not start it). A completion mark is terminal too.
        completion = plan == nil ? nil : state.completion
        if controls.contains(where: { $0.kind == .abort }) {
            mode = .aborted
        } else if plan == nil {
            mode = .awaitingApproval
        } else if completion != nil {
            mode = .completed
        } else if halt != nil {
            mode = .halted
        } else if let latest = self.controls.last(where: { $0.kind != .advance }), latest.kind == .pause {
            mode = .paused
        } else if let last = stages.last, stage == stages.count - 1, last.inFlight == 0, last.succeeded + last.failed >= last.targeted,
            last.targeted > 0 || last.succeeded > 0
        {
            mode = .completed
        } else {
            mode = .running
        }
    }

    // MARK: Decisions

    /// Why failures have passed the plan's threshold, or nil while they have not.
    public var thresholdCrossed: String? {
        guard let plan, finished >= plan.minFinished, failed > 0 else { return nil }
        if let count = plan.maxFailures, failed > count {
            return "\(failed) device\(failed == 1 ? "" : "s") failed, more than the \(count) allowed"
        }
        if let percent = plan.maxFailurePercent, failed * 100 > percent * finished {
            return "\(failed) of \(finished) finished devices failed, more than \(percent)%"
        }
        return nil
    }

    /// The halt this gateway must set now, if failures passed the threshold and no halt of the
    /// current control epoch is known. Any gateway may halt: it is the safe direction.
    public func haltDue(now: Int64, gateway: String) -> HaltMark? {
        guard plan != nil, completion == nil, mode == .running || mode == .paused || mode == .completed, let reason = thresholdCrossed else { return nil }
        return HaltMark(epoch: controlEpoch, at: now, gateway: gateway, reason: reason)
    }

    /// The moment from which a census counts as evidence for the decision pending now: the end
    /// of the current stage's soak (for its advance) or the last stage's start (for the
    /// completion). A census written earlier may come from the far side of a cut that has heard
    /// nothing from here since — SWIM keeps such a side alive for up to its suspicion timeout —
    /// so only later ones count; every gateway writes its census again once this point passes
    /// (``censusStale(_:now:)``), and a side cut off before it cannot receive those.
    public var evidenceSince: Int64? {
        guard let plan, let since = stageSince, completion == nil else { return nil }
        return stage < plan.stages.count - 1 ? since + plan.soakSeconds * 1000 : since
    }

    /// Whether a gateway whose census is `own` must write it again now (with the same counts) so
    /// that it counts as fresh evidence: a decision is pending and `own` predates its evidence point.
    public func censusStale(_ own: Census?, now: Int64) -> Bool {
        guard mode == .running || mode == .completed, let point = evidenceSince, now >= point else { return false }
        return (own?.at ?? -1) < point
    }

    /// Census writers among `alive` (the gateways this one sees alive, itself included) whose
    /// census is fresh evidence (written at or after ``evidenceSince``): what `stageDue` and
    /// `completionDue` take as `censusGateways`.
    public func freshCensusGateways(alive: Set<String>) -> Int {
        guard let point = evidenceSince else { return 0 }
        return censusByGateway.filter { alive.contains($0.key) && $0.value.at >= point }.count
    }

    /// The stage mark this gateway writes now: stage 0 once the plan is approved; the next stage
    /// once soak time has passed, the success condition holds and the evidence is fresh:
    /// `censusGateways` (``freshCensusGateways(alive:)``: census written after the soak ended by
    /// gateways this one sees alive now) is a majority of both the `members` it sees alive
    /// (itself included) and every gateway that ever wrote a census for this rollout, so a
    /// partitioned minority never advances, however long the cut and however fresh its SWIM view.
    public func stageDue(now: Int64, gateway: String, members: Int, censusGateways: Int) -> StageMark? {
        guard let plan, mode == .running else { return nil }
        guard let since = stageSince else { return StageMark(stage: 0, since: now, gateway: gateway) }
        guard stage < plan.stages.count - 1, now - since >= plan.soakSeconds * 1000 else { return nil }
        // The denominator never shrinks below every gateway that ever wrote a census for this
        // rollout (records outlive SWIM's dead verdict and its reaping), so a long-cut minority,
        // whose alive view is only itself, is still a minority.
        guard censusGateways * 2 > max(members, censusByGateway.count, 1) else { return nil }
        let current = stages[stage]
        guard current.succeeded * 100 >= plan.successPercent * current.targeted else { return nil }
        return StageMark(stage: stage + 1, since: now, gateway: gateway)
    }

    /// The completion mark this gateway writes now: the last stage runs, none of its devices is
    /// in flight, every targeted one finished, and the evidence is fresh (the majority rule of
    /// ``stageDue(now:gateway:members:censusGateways:)``). Once written the rollout is over.
    public func completionDue(now: Int64, gateway: String, members: Int, censusGateways: Int) -> CompletionMark? {
        guard plan != nil, completion == nil, mode == .completed, stageSince != nil else { return nil }
        guard censusGateways * 2 > max(members, censusByGateway.count, 1) else { return nil }
        return CompletionMark(at: now, gateway: gateway, succeeded: finished - failed, failed: failed)
    }

    /// Whether `device` belongs to the device set of the current stage: every device first seen
    /// before the stage began (the set is fixed when each stage starts), or any device when the
    /// plan is dynamic.
    public func inDeviceSet(_ device: DeviceFacts) -> Bool {
        guard let plan, !plan.dynamic, let since = stageSince, let firstSeen = device.firstSeen else { return true }
        return firstSeen <= since
    }

    /// Whether the rollout still takes devices: approved, neither aborted nor completed.
    public var isOpen: Bool { plan != nil && mode != .aborted && mode != .completed }

    /// Whether this rollout covers `device` (open, and its selector matches): of several that
    /// do, the newest approved one governs the device (``RolloutGovernance``).
    public func covers(_ device: DeviceFacts) -> Bool {
        guard isOpen, let plan else { return false }
        return plan.selector.matches(device)
    }

    /// What a gateway does for one of its devices.
    public enum DeviceDecision: Sendable, Equatable {
        /// The rollout does not apply (selector, stage, or no approved plan).
        case notSelected(String)
        /// Start a new attempt: record this outcome, then offer or push the image.
        case start(DeviceOutcome)
        /// The device already runs the target: record this success.
        case alreadyCurrent(DeviceOutcome)
        /// An attempt is in flight: keep offering the image (in-flight attempts finish even
        /// after a halt or pause).
        case inFlight(DeviceOutcome)
        case succeeded
        /// Failed in this retry epoch: not offered again until `retry-failed`.
        case failedBefore(String)
        /// Selected, but no new update may start now (paused, halted, outside the window, or the
        /// gateway's concurrency is used up).
        case wait(String)
    }

    /// `available`: this gateway trusts the target and holds its image; without both no device
    /// starts here (it would only fail for want of the bytes).
    /// `configured`: the device's filesystem holds its current configuration (what counts only
    /// for a ``RolloutPlan/configuration`` plan; true for devices of other plans).
    public func decide(
        _ device: DeviceFacts, version: String?, outcome: DeviceOutcome?, inFlightHere: Int, now: Int64, gateway: String,
        available: Bool = true, configured: Bool = true
    ) -> DeviceDecision {
        guard let plan else { return .notSelected("rollout \(id) is not approved") }
        if let outcome {
            if outcome.phase == .succeeded { return .succeeded }
            if !outcome.phase.isFinished { return .inFlight(outcome) }
            if outcome.epoch >= retryEpoch { return .failedBefore("failed \(plan.target.path): \(outcome.detail)") }
        }
        // Over for good: new devices are released to other rollouts and manual assignments.
        if mode == .aborted { return .notSelected("rollout \(id) was aborted") }
        if mode == .completed { return .notSelected("rollout \(id) completed") }
        guard plan.selector.matches(device) else { return .notSelected("does not match \(plan.selector)") }
        let bucket = StageSelection.bucket(rollout: id, device: device.id)
        guard bucket < plan.bound(ofStage: stage) else {
            let later = StageSelection.firstStage(ofBucket: bucket, stages: plan.stages).map { "stage \($0 + 1)" } ?? "no stage"
            return .notSelected("bucket \(bucket) is in \(later); stage \(stage + 1) of \(plan.stages.count) runs")
        }
        guard inDeviceSet(device) else {
            return .notSelected("first seen after stage \(stage + 1) began: the plan's device set is fixed when each stage starts (not --dynamic)")
        }
        if let version = version ?? device.version, let wanted = plan.target.version, version == wanted, configured || !plan.configuration {
            return .alreadyCurrent(
                DeviceOutcome(
                    epoch: retryEpoch, phase: .succeeded, bucket: bucket, gateway: gateway, started: now, updated: now, detail: "already ran \(version)"))
        }
        switch mode {
        case .running: break
        case .awaitingApproval: return .wait("awaiting approval")
        case .paused: return .wait("rollout paused")
        case .aborted: return .wait("rollout aborted")
        case .completed: return .wait("rollout completed")
        case .halted: return .wait("rollout halted: \(halt?.reason ?? "")")
        }
        guard available else {
            return .wait(
                "\(plan.target.path) is not ready on this gateway (not in its trusted metadata with sha256 \(plan.target.sha256.prefix(16))…, or its image is not cached yet)"
            )
        }
        if let window = plan.window, !window.contains(milliseconds: now) { return .wait("outside the maintenance window \(window) UTC") }
        guard inFlightHere < plan.concurrency else { return .wait("\(inFlightHere) updates in flight on this gateway (concurrency \(plan.concurrency))") }
        return .start(DeviceOutcome(epoch: retryEpoch, phase: .offered, bucket: bucket, gateway: gateway, started: now, updated: now))
    }

    /// What a device's report means for its in-flight attempt: success when it runs the target
    /// version; failure on a reported error, or when it reports another version after the whole
    /// image reached it (it rebooted into the old one). Nil: no change.
    /// A ``RolloutPlan/configuration`` plan also needs the device `configured`: until then a
    /// device on the target's version stays in flight (its configuration is on its way).
    public func confirm(_ outcome: DeviceOutcome, version: String?, error: String?, now: Int64, configured: Bool = true) -> DeviceOutcome? {
        guard let plan, !outcome.phase.isFinished else { return nil }
        var next = outcome
        next.updated = max(now, outcome.updated)
        if let version, let wanted = plan.target.version, version == wanted {
            guard configured || !plan.configuration else {
                let waiting = "runs \(version); its configuration is on its way"
                guard outcome.detail != waiting else { return nil }
                next.detail = waiting
                return next
            }
            next.phase = .succeeded
            next.detail = plan.configuration ? "\(version), configured" : version
            return next
        }
        if let error {
            next.phase = .failed
            next.detail = String(("device reported: " + error).prefix(120))
            return next
        }
        if outcome.phase == .installing, let version {
            next.phase = .failed
            next.detail = "rebooted into \(version), not \(plan.target.version ?? plan.target.path)"
            return next
        }
        return nil
    }

    /// Fails an attempt that found no confirmation within the plan's device timeout.
    public func timedOut(_ outcome: DeviceOutcome, now: Int64) -> DeviceOutcome? {
        guard let plan, !outcome.phase.isFinished, now - outcome.started > plan.deviceTimeoutSeconds * 1000 else { return nil }
        var next = outcome
        next.phase = .failed
        next.updated = now
        next.detail = "no confirmation within \(plan.deviceTimeoutSeconds) s (last: \(outcome.phase))"
        return next
    }

    /// A gateway's census: how many of `devices` match, per stage.
    public static func census(of devices: [DeviceFacts], plan: RolloutPlan) -> [Int] {
        var perStage = [Int](repeating: 0, count: plan.stages.count)
        for device in devices where plan.selector.matches(device) {
            let bucket = StageSelection.bucket(rollout: plan.id, device: device.id)
            for index in perStage.indices where bucket < plan.stages[index] * 100 { perStage[index] += 1 }
        }
        return perStage
    }
}

extension Sequence where Element == String {
    func uniqueSorted() -> [String] { Array(Set(self)).sorted() }
}
