extension RolloutNode {
    /// What a device reported about its attempt itself (hawkBit DDI feedback), rather than
    /// what the gateway saw of it.
    public enum DeviceReport: Sendable, Equatable {
        /// It works on it (`proceeding`): downloading or installing.
        case progress(DeviceOutcome.Phase)
        /// It runs the target (`closed`/`success`, after its reboot).
        case succeeded
        /// It gave up (`closed`/`failure`), with its own words.
        case failed(String)
        /// It stopped an attempt it had not started transferring, as the gateway asked
        /// (``RolloutAnswer/cancel(path:rollout:why:)``).
        case canceled
    }

    /// Applies a device's report to its in-flight attempt under `rollout` on this gateway.
    public mutating func reported(device: String, rollout: String, _ report: DeviceReport, now: Int64) -> [RolloutDirective] {
        guard let view = view(rollout), let plan = view.plan, let outcome = decoded.rollouts[rollout]?.outcomes[device], outcome.gateway == gateway,
            !outcome.phase.isFinished
        else { return take() }
        switch report {
        case .progress(let phase):
            advance(rollout: rollout, device: device, to: min(phase, .installing), now: now)
        case .succeeded:
            if let next = view.confirm(outcome, version: plan.target.version ?? plan.target.path, error: nil, now: now) {
                record(next, device: device, rollout: rollout, now: now)
            } else {
                // A target without a version: the device's word is the confirmation.
                var done = outcome
                done.phase = .succeeded
                done.updated = max(now, outcome.updated)
                done.detail = "runs \(plan.target.path)"
                record(done, device: device, rollout: rollout, now: now)
            }
        case .failed(let detail):
            if let next = view.confirm(outcome, version: nil, error: detail.isEmpty ? "failure" : detail, now: now) {
                record(next, device: device, rollout: rollout, now: now)
            }
        case .canceled:
            // Halted: the attempt stays open, offered again (as a new action) on resume. Aborted:
            // it ends here, as what it is — it never started.
            guard view.mode == .aborted, outcome.phase == .offered else { break }
            var ended = outcome
            ended.phase = .failed
            ended.updated = max(now, outcome.updated)
            ended.detail = "canceled before it started: rollout aborted"
            record(ended, device: device, rollout: rollout, now: now)
        }
        return take()
    }
}
