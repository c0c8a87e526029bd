import OTAMeshCommon

/// The upkeep tick (once a second) and this gateway's pushes.
extension RolloutNode {
    /// What the gateway knows at an upkeep tick.
    public struct Tick: Sendable {
        public var now: Int64
        /// This gateway's devices that rollouts may update (admitted), hardware inferred.
        public var devices: [DeviceFacts]
        /// Those of them it pushes to (a family with a push adapter, confirmable).
        public var pushDevices: [PushQueue.Candidate]
        /// The gateways it sees alive, itself included.
        public var alive: Set<String>
        /// False once the gateway stops: no push starts.
        public var acceptingPushes: Bool

        public init(now: Int64, devices: [DeviceFacts], pushDevices: [PushQueue.Candidate] = [], alive: Set<String>, acceptingPushes: Bool = true) {
            self.now = now
            self.devices = devices
            self.pushDevices = pushDevices
            self.alive = alive
            self.acceptingPushes = acceptingPushes
        }
    }

    /// Writes census, timeouts, devices already on the target, push starts, stage advances,
    /// halts and completions; re-publishes command unions that add signatures nobody else has
    /// published; announces what changed since the last tick. The shell loads the records first.
    public mutating func upkeep(_ tick: Tick, isReady: (RolloutTarget) -> Bool) -> [RolloutDirective] {
        let views = allViews()
        pushDevices = tick.pushDevices
        devices = tick.devices
        acceptingPushes = tick.acceptingPushes
        ready = Set(views.values.compactMap { $0.plan?.target }.filter(isReady))
        alive = tick.alive
        let newest = RolloutGovernance.newestFirst(Array(views.values))
        let governing = Dictionary(tick.devices.map { ($0.id, RolloutGovernance.governing($0, newestFirst: newest)) }, uniquingKeysWith: { a, _ in a })
        for id in decoded.rollouts.keys.sorted() {
            guard let view = view(id), let state = decoded.rollouts[id] else { continue }
            republishCommands(id: id, state: state)
            guard let plan = view.plan else { continue }
            // The rollout's devices here: those it governs that belong to its (fixed) device set,
            // and any it already started, whatever has happened since.
            let counted = tick.devices.filter { device in
                (governing[device.id] == id && view.inDeviceSet(device)) || state.outcomes[device.id]?.gateway == gateway
            }
            current = counted.filter { state.outcomes[$0.id] == nil && governing[$0.id] == id }
            let inFlight = state.outcomes.filter { $0.value.gateway == gateway }.sorted { $0.key < $1.key }.map { (device: $0.key, outcome: $0.value) }
            RolloutUpkeep.tick(
                &self, rollout: id, view: view, census: RolloutView.census(of: counted, plan: plan), own: state.census[gateway],
                inFlight: inFlight, now: tick.now, gateway: gateway, completes: !state.outcomes.isEmpty)
            if let halt = self.view(id)?.halt, haltsSeen[id] != halt {
                haltsSeen[id] = halt
                log(
                    .warning, "rollout halt known",
                    ["rollout.id": id, "rollout.halt.by": halt.gateway, "rollout.halt.at": "\(halt.at)", "rollout.reason": halt.reason])
            }
        }
        announce(now: tick.now)
        return take()
    }

    /// Announces what changed since the last upkeep (nothing on the first: that is the baseline).
    mutating func announce(now: Int64) {
        let views = allViews()
        defer { milestones = views.mapValues(RolloutEvent.Milestones.init) }
        guard let before = milestones else { return }
        let found = views.keys.sorted().flatMap { id in RolloutEvent.changes(from: before[id], to: views[id]!, gateway: gateway, now: now) }
        guard !found.isEmpty else { return }
        for event in found {
            log(.notice, "rollout event", ["rollout.id": event.rollout, "rollout.event": event.kind.rawValue, "rollout.detail": event.detail])
        }
        directives.append(.announce(found))
    }

    mutating func republishCommands(id: String, state: RolloutState) {
        let byOwner = decoded.copiesByOwner[id] ?? [:]
        for (sequence, copies) in state.commands.sorted(by: { $0.key < $1.key }) {
            for (hash, union) in copies.sorted(by: { $0.key < $1.key }) {
                let published = byOwner.values.contains { $0[sequence].map { $0.bodyHash == hash && $0.signatures == union.signatures } ?? false }
                let mine = byOwner[gateway]?[sequence]
                // Publish when no one has published the union yet, and this gateway's own copy
                // (if any) is of this body: one copy per (gateway, sequence) in the records.
                guard !published, mine == nil || mine!.bodyHash == hash else { continue }
                write(.command(union), rollout: id)
            }
        }
    }

    // MARK: Pushes

    /// A push's image crossed or moved on (`phase` below an end): the outcome follows, and a
    /// crossed image frees its slot under the push limits.
    public mutating func pushProgress(rollout: String, device: String, phase: DeviceOutcome.Phase, now: Int64) -> [RolloutDirective] {
        let slot = "\(rollout) \(device)"
        let crossed = phase >= .installing && pushing[slot] != nil && transferred.insert(slot).inserted
        advance(rollout: rollout, device: device, to: phase, now: now)
        if crossed { startPushes(rollout, now: now) }
        return take()
    }

    /// How a push the node asked for ended.
    public enum PushEnd: Sendable, Equatable {
        /// The device runs `version` (its adapter confirmed it after the reboot).
        case confirmed(version: String)
        case failed(String)
        /// The gateway stopped it (shutdown): the attempt stays in flight for the next start.
        case interrupted
        /// The shell could not start it now (the image is not cached yet, or pushes stopped):
        /// the attempt waits, and times out if it never can.
        case notStarted
    }

    public mutating func pushEnded(rollout: String, device: String, _ end: PushEnd, now: Int64) -> [RolloutDirective] {
        let slot = "\(rollout) \(device)"
        pushing[slot] = nil
        transferred.remove(slot)
        switch end {
        case .confirmed(let version):
            if let current = decoded.rollouts[rollout]?.outcomes[device], let view = view(rollout),
                let confirmed = view.confirm(current, version: version, error: nil, now: now)
                    ?? view.confirm(Self.installing(current), version: version, error: nil, now: now)
            {
                record(confirmed, device: device, rollout: rollout, now: now)
            }
        case .failed(let reason):
            if let current = decoded.rollouts[rollout]?.outcomes[device], current.gateway == gateway, !current.phase.isFinished {
                var failed = current
                failed.phase = .failed
                failed.updated = max(now, current.updated)
                failed.detail = reason
                record(failed, device: device, rollout: rollout, now: now)
            }
        case .interrupted:
            log(.info, "rollout push interrupted by shutdown", ["rollout.id": rollout, "device.id": device])
        case .notStarted:
            break
        }
        // Its outcome is recorded: a place under the rollout's concurrency is free too.
        if end != .interrupted, end != .notStarted { startPushes(rollout, now: now) }
        return take()
    }

    static func installing(_ outcome: DeviceOutcome) -> DeviceOutcome {
        var next = outcome
        next.phase = max(next.phase, .installing)
        return next
    }

    /// Starts (and, after a restart, resumes) pushes of `id` to this gateway's push devices, in
    /// the order and within the limits of ``PushQueue``. In-flight attempts of this gateway with
    /// no push running are taken up again, so a restart does not strand them until the device
    /// timeout. The push limits hold across all rollouts.
    mutating func startPushes(_ id: String, now: Int64) {
        guard acceptingPushes, !pushDevices.isEmpty, let view = view(id), let plan = view.plan, let state = decoded.rollouts[id] else { return }
        let newest = RolloutGovernance.newestFirst(Array(allViews().values))
        let candidates = pushDevices.filter { RolloutGovernance.governing($0.facts, newestFirst: newest) == id }
        let running = Dictionary(
            pushing.filter { !transferred.contains($0.key) }.map { (String($0.key.split(separator: " ", maxSplits: 1).last ?? ""), $0.value) },
            uniquingKeysWith: { a, _ in a })
        var work: [(device: String, outcome: DeviceOutcome)] = []
        for start in PushQueue.next(
            view: view, candidates: candidates, outcomes: state.outcomes, now: now, gateway: gateway, limits: pushLimits, running: running,
            available: ready.contains(plan.target))
        {
            record(start.outcome, device: start.device, rollout: id, now: now)
            if start.push { work.append((start.device, start.outcome)) }
        }
        for device in pushDevices {
            if let outcome = state.outcomes[device.facts.id], outcome.gateway == gateway, !outcome.phase.isFinished {
                work.append((device.facts.id, outcome))
            }
        }
        let segments = Dictionary(pushDevices.map { ($0.facts.id, $0.segment) }, uniquingKeysWith: { a, _ in a })
        for (device, outcome) in work {
            let slot = "\(id) \(device)"
            // Running already, or finished since (a push records its outcome before its slot frees).
            guard pushing[slot] == nil, decoded.rollouts[id]?.outcomes[device]?.phase.isFinished != true else { continue }
            pushing[slot] = segments[device] ?? ""
            directives.append(.push(rollout: id, device: device, outcome))
        }
    }
}

extension RolloutNode: RolloutUpkeepSink {
    public typealias Device = String

    public mutating func writeCensus(_ perStage: [Int], rollout: String, now: Int64) {
        write(.census(perStage, at: now), rollout: rollout)
    }

    public mutating func timedOut(_ outcome: DeviceOutcome, device: String, rollout: String, now: Int64) {
        record(outcome, device: device, rollout: rollout, now: now)
    }

    /// Devices that already run the target count as succeeded from their last report; then pushes.
    public mutating func startDevices(rollout: String, view: RolloutView, now: Int64) -> RolloutView {
        for device in current {
            // A configuration plan needs the device's own report of its configuration (a request).
            let configured = !(view.plan?.configuration ?? false)
            if case .alreadyCurrent(let done) = view.decide(
                device, version: device.version, outcome: nil, inFlightHere: 0, now: now, gateway: gateway, configured: configured)
            {
                record(done, device: device.id, rollout: rollout, now: now)
            }
        }
        startPushes(rollout, now: now)
        return self.view(rollout) ?? view
    }

    public mutating func members(rollout: String) -> (count: Int, alive: Set<String>) { (alive.count, alive) }

    public mutating func writeMarks(_ marks: RolloutUpkeep.Marks, rollout: String, view: RolloutView, now: Int64) {
        if let mark = marks.stage, let plan = view.plan {
            write(.stage(mark), rollout: rollout)
            log(
                .notice, "rollout stage",
                ["rollout.id": rollout, "rollout.stage": "\(mark.stage + 1)/\(plan.stages.count)", "rollout.percent": "\(plan.stages[mark.stage])"])
        }
        if let mark = marks.halt {
            write(.halt(mark), rollout: rollout)
            log(.warning, "rollout halted: failure threshold crossed", ["rollout.id": rollout, "rollout.reason": mark.reason])
        }
        if let mark = marks.completion {
            write(.completion(mark), rollout: rollout)
            log(.notice, "rollout completed", ["rollout.id": rollout, "rollout.succeeded": "\(mark.succeeded)", "rollout.failed": "\(mark.failed)"])
        }
    }
}
