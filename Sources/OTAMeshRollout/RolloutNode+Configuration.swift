extension RolloutNode {
    /// A device asks for a new configuration (httpUpdate filesystem mode). The newest open
    /// configuration plan that covers it decides: its firmware first (no configuration before
    /// the device runs the target), then the configuration, stage by stage (a covered device
    /// whose stage has not begun keeps the one it has). `.offer`: serve it; `.hold`: not now;
    /// `.none`: no configuration plan covers the device, the gateway serves its configuration
    /// as usual. A device a completed configuration plan configured stays governed: new
    /// settings reach it with the next configuration plan (staged like a release), not at once.
    mutating func filesystemAnswer(_ request: Request, now: Int64, isReady: (RolloutTarget) -> Bool) -> RolloutAnswer {
        let id = request.facts.id
        let plans = RolloutGovernance.newestFirst(Array(allViews().values)).filter { $0.plan?.configuration == true }
        guard let view = plans.first(where: { $0.covers(request.facts) || (decoded.rollouts[$0.id]?.outcomes[id].map { !$0.phase.isFinished } ?? false) }),
            let plan = view.plan, let state = decoded.rollouts[view.id]
        else { return configuredBefore(request, plans: plans) }
        guard request.admitted else { return .hold("pending admission (devices.admission: known)") }
        let runsTarget = request.version != nil && request.version == plan.target.version
        let firmwareFirst = RolloutAnswer.hold(
            "rollout \(view.id): firmware first — it runs \(request.version ?? "an unknown version"), the rollout installs \(plan.target.version ?? plan.target.path)"
        )
        let inFlight = state.outcomes.values.reduce(0) { $0 + ($1.gateway == gateway && !$1.phase.isFinished ? 1 : 0) }
        switch view.decide(
            request.facts, version: request.version, outcome: state.outcomes[id], inFlightHere: inFlight, now: now, gateway: gateway,
            available: isReady(plan.target), configured: request.configured)
        {
        case .start(let started):
            guard runsTarget else { return firmwareFirst }
            record(started, device: id, rollout: view.id, now: now)
            log(.info, "rollout device started", ["rollout.id": view.id, "device.id": id, "rollout.stage": "\(view.stage + 1)"])
            return .offer(path: plan.target.path, rollout: view.id)
        case .inFlight:
            return runsTarget ? .offer(path: plan.target.path, rollout: view.id) : firmwareFirst
        case .alreadyCurrent, .succeeded:
            return .none
        case .notSelected(let why):
            return .hold("rollout \(view.id): \(why); its configuration comes with its stage")
        case .failedBefore(let why), .wait(let why):
            return .hold("rollout \(view.id): \(why)")
        }
    }

    /// No open plan covers the device: if a completed configuration plan gave it the
    /// configuration it holds and the version it still runs, changed settings wait for the next
    /// configuration plan (so settings changed before that plan starts do not go out unstaged).
    private func configuredBefore(_ request: Request, plans: [RolloutView]) -> RolloutAnswer {
        guard !request.configured, let version = request.version else { return .none }
        for view in plans where view.mode == .completed {
            guard let plan = view.plan, plan.target.version == version,
                decoded.rollouts[view.id]?.outcomes[request.facts.id]?.phase == .succeeded
            else { continue }
            return .hold(
                "settings changed since rollout \(view.id) configured it: the next configuration rollout delivers them "
                    + "(otamesh rollout start --target \(plan.target.path) --configuration)")
        }
        return .none
    }
}
