import Logging
import NIOConcurrencyHelpers
import OTAMeshCommon
import OTAMeshDevices
import OTAMeshRollout
import OTAMeshTrust

/// Push devices: which to start under the rollout's and the gateway's limits, and each push's run.
extension RolloutEngine {
    // MARK: Push devices

    /// Starts (and, after a restart, resumes) pushes to this gateway's push devices: those whose
    /// family has an adapter. In-flight attempts of this gateway with no push running here are
    /// taken up again, so a restart does not strand them until the device timeout. The
    /// gateway's push limits (``pushLimits``) hold across all rollouts.
    func startPushes(id: String, view: RolloutView, state: RolloutState) {
        guard !adapters.isEmpty, pushes.accepting, let plan = view.plan else { return }
        let devices = registry.all().filter { adapters[$0.family] != nil && !$0.unconfirmable && (admission == .open || $0.admitted) }
        guard !devices.isEmpty else { return }
        let newest = RolloutGovernance.newestFirst(cached.withLockedValue { Array($0.views.values) })
        let candidates = devices.map {
            PushQueue.Candidate(
                facts: facts(DeviceQuery(id: $0.id, family: $0.family, hardware: $0.hardware, version: $0.version)), version: $0.version,
                segment: $0.effectiveSegment)
        }.filter { RolloutGovernance.governing($0.facts, newestFirst: newest) == id }
        let ready = available(plan.target)
        var work: [(DeviceRecord, DeviceOutcome)] = []
        starting.withLock {
            // Fresh outcomes: pull devices may have taken slots since this upkeep began.
            let outcomes = self.state(id)?.0.outcomes ?? state.outcomes
            let running = cached.withLockedValue { cached in
                Dictionary(
                    cached.pushing.filter { !cached.transferred.contains($0.key) }
                        .map { (String($0.key.split(separator: " ", maxSplits: 1).last ?? ""), $0.value) }, uniquingKeysWith: { a, _ in a })
            }
            for start in PushQueue.next(
                view: view, candidates: candidates, outcomes: outcomes, now: now(), gateway: gateway,
                limits: pushLimits, running: running, available: ready)
            {
                record(start.outcome, device: start.device, rollout: id)
                if start.push, let device = devices.first(where: { $0.id == start.device }) { work.append((device, start.outcome)) }
            }
        }
        for device in devices {
            if let outcome = state.outcomes[device.id], outcome.gateway == gateway, !outcome.phase.isFinished { work.append((device, outcome)) }
        }
        for (device, outcome) in work {
            let slot = "\(id) \(device.id)"
            let claimed = cached.withLockedValue { cached in
                guard cached.pushing[slot] == nil else { return false }
                cached.pushing[slot] = device.effectiveSegment
                return true
            }
            guard claimed, let adapter = adapters[device.family] else { continue }
            // The attempt may have finished since this upkeep's snapshot (a push records its
            // outcome before it frees its slot): then there is nothing to resume.
            if self.state(id)?.0.outcomes[device.id]?.phase.isFinished == true {
                cached.withLockedValue { _ = $0.pushing.removeValue(forKey: slot) }
                continue
            }
            guard var image = image(plan.target) else {
                cached.withLockedValue { _ = $0.pushing.removeValue(forKey: slot) }
                continue  // not cached yet: the attempt waits (and times out if it never comes)
            }
            let target: PushTarget
            do { target = try PushTarget(device, secrets: secrets) } catch {
                cached.withLockedValue { _ = $0.pushing.removeValue(forKey: slot) }
                fail(outcome, device: device.id, rollout: id, reason: PushFailure(.refused, error.description).description)
                continue
            }
            // A gateway listening on all interfaces names itself by its address on the device's segment.
            image.url = PushRoute.url(image.url, toward: target.host)
            let started = pushes.submit { [self, image] in
                logger.info("rollout push started", metadata: ["rollout.id": "\(id)", "device.id": "\(device.id)", "device.family": "\(device.family)"])
                defer {
                    cached.withLockedValue {
                        _ = $0.pushing.removeValue(forKey: slot)
                        $0.transferred.remove(slot)
                    }
                    // Its outcome is recorded: a place under the rollout's concurrency is free too.
                    refill(id)
                }
                var current = outcome
                do throws(PushFailure) {
                    let version = try await adapter.push(image, to: target) { phase in
                        let crossed = phase >= .installing && self.cached.withLockedValue { $0.transferred.insert(slot).inserted }
                        self.advance(id: id, device: device.id, to: phase)
                        if crossed { self.refill(id) }
                    }
                    self.registry.confirmed(
                        device.id, version: version, variant: nil, answer: "pushed \(version) (rollout \(id))",
                        at: Double(self.now()) / 1000)
                    current = self.state(id)?.0.outcomes[device.id] ?? current
                    guard let view = self.state(id)?.1 else { return }
                    let confirmed =
                        view.confirm(current, version: version, error: nil, now: self.now())
                        ?? view.confirm(Self.installing(current), version: version, error: nil, now: self.now())
                    if let confirmed { self.record(confirmed, device: device.id, rollout: id) }
                } catch {
                    // Stopped by the agent's shutdown, not by the device: the attempt stays in
                    // flight, and the next start takes it up again.
                    guard !Task.isCancelled else {
                        self.logger.info(
                            "rollout push interrupted by shutdown", metadata: ["rollout.id": "\(id)", "device.id": "\(device.id)"])
                        return
                    }
                    self.fail(self.state(id)?.0.outcomes[device.id] ?? current, device: device.id, rollout: id, reason: error.description)
                }
            }
            if !started { cached.withLockedValue { _ = $0.pushing.removeValue(forKey: slot) } }
        }
    }

    /// Runs this gateway's pushes until the calling task is cancelled; then cancels those still
    /// running and returns once every one has ended (their attempts stay in flight for the next
    /// start). Without it, pushes queue and never run.
    public func runPushes() async {
        await pushes.run { [logger] running in
            guard running > 0 else { return }
            logger.info("stopping rollout pushes", metadata: ["pushes.running": "\(running)"])
        }
    }

    /// A push slot came free (an image crossed, or a push ended): the next devices start now
    /// rather than at the next upkeep, up to a second later.
    func refill(_ id: String) {
        guard let (state, view) = state(id) else { return }
        startPushes(id: id, view: view, state: state)
    }

    /// Records a push's failure, unless its attempt already finished.
    func fail(_ outcome: DeviceOutcome, device: String, rollout: String, reason: String) {
        guard !outcome.phase.isFinished else { return }
        var failed = outcome
        failed.phase = .failed
        failed.updated = max(now(), outcome.updated)
        failed.detail = reason
        record(failed, device: device, rollout: rollout)
    }

    static func installing(_ outcome: DeviceOutcome) -> DeviceOutcome {
        var next = outcome
        next.phase = max(next.phase, .installing)
        return next
    }

    func advance(id: String, device: String, to phase: DeviceOutcome.Phase) {
        guard let outcome = state(id)?.0.outcomes[device], outcome.gateway == gateway, !outcome.phase.isFinished, outcome.phase < phase,
            !phase.isFinished
        else { return }
        var next = outcome
        next.phase = phase
        next.updated = max(now(), outcome.updated)
        record(next, device: device, rollout: id)
    }
}
