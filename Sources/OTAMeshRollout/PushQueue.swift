/// Which push devices a gateway starts now. Push devices (those that cannot fetch, see
/// DEVICE-PROTOCOLS.md "Upgrade local") do not ask; the gateway drives them through their
/// family's adapter. The queue takes them in bucket order — the order the stages admit them —
/// within the gateway's free concurrency, by the same ``RolloutView/decide`` rules as pull
/// devices, so pause, halt, window and failure memory hold for both alike. Pure.
public enum PushQueue {
    public struct Candidate: Sendable, Equatable {
        public var facts: DeviceFacts
        /// The version the device last reported.
        public var version: String?
        public init(facts: DeviceFacts, version: String?) {
            self.facts = facts
            self.version = version
        }
    }

    public struct Start: Sendable, Equatable {
        public var device: String
        /// The outcome to record before pushing (phase offered, or succeeded when the device
        /// already runs the target).
        public var outcome: DeviceOutcome
        /// False when the device already runs the target: record, do not push.
        public var push: Bool
    }

    public static func next(view: RolloutView, candidates: [Candidate], outcomes: [String: DeviceOutcome], now: Int64, gateway: String) -> [Start] {
        guard let plan = view.plan else { return [] }
        var inFlight = outcomes.values.reduce(0) { $0 + ($1.gateway == gateway && !$1.phase.isFinished ? 1 : 0) }
        let ordered = candidates.map { ($0, StageSelection.bucket(rollout: plan.id, device: $0.facts.id)) }
            .sorted { ($0.1, $0.0.facts.id) < ($1.1, $1.0.facts.id) }
        var starts: [Start] = []
        for (candidate, _) in ordered {
            switch view.decide(candidate.facts, version: candidate.version, outcome: outcomes[candidate.facts.id], inFlightHere: inFlight, now: now, gateway: gateway) {
            case .start(let outcome):
                starts.append(Start(device: candidate.facts.id, outcome: outcome, push: true))
                inFlight += 1
            case .alreadyCurrent(let outcome):
                starts.append(Start(device: candidate.facts.id, outcome: outcome, push: false))
            case .wait, .notSelected, .inFlight, .succeeded, .failedBefore:
                continue
            }
        }
        return starts
    }
}
