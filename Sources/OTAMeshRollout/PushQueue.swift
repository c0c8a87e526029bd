/// Which push devices a gateway starts now. Push devices (those that cannot fetch, see
/// DEVICE-PROTOCOLS.md "Upgrade local") do not ask; the gateway drives them through their
/// family's adapter. The queue takes them in bucket order — the order the stages admit them —
/// within the gateway's free concurrency, by the same ``RolloutView/decide`` rules as pull
/// devices, so pause, halt, window and failure memory hold for both alike. Pure.
///
/// On top of the rollout's own concurrency, ``Limits`` cap the pushes this gateway transfers at
/// once (all rollouts together) and per network segment; the segments take turns — the one with
/// the fewest pushes in flight goes first — so one large segment does not starve the others. The
/// limits guard the segments' bandwidth, so a push whose image has crossed (`installing`: the
/// device reboots, the gateway only waits for its version) leaves its slot to the next device;
/// the rollout's `concurrency` still counts it until its outcome.
public enum PushQueue {
    public struct Candidate: Sendable, Equatable {
        public var facts: DeviceFacts
        /// The version the device last reported.
        public var version: String?
        /// The network segment the device is in (`10.77.3.0/24`, or an admin-given name).
        public var segment: String
        /// The device takes a pushed configuration image (ArduinoOTA's filesystem command), so
        /// configuration plans push to it: firmware first, then its configuration.
        public var configurable: Bool
        /// Its filesystem holds its current configuration, as far as the gateway knows.
        public var configured: Bool
        public init(facts: DeviceFacts, version: String?, segment: String = "", configurable: Bool = false, configured: Bool = false) {
            self.facts = facts
            self.version = version
            self.segment = segment
            self.configurable = configurable
            self.configured = configured
        }
    }

    /// Simultaneous pushes: per gateway (all rollouts together) and per segment.
    public struct Limits: Sendable, Equatable {
        public var maxConcurrent: Int
        public var maxPerSegment: Int
        public init(maxConcurrent: Int, maxPerSegment: Int) {
            self.maxConcurrent = maxConcurrent
            self.maxPerSegment = maxPerSegment
        }
        public static let unlimited = Limits(maxConcurrent: .max, maxPerSegment: .max)
    }

    public struct Start: Sendable, Equatable {
        public var device: String
        /// The outcome to record before pushing (phase offered, or succeeded when the device
        /// already runs the target).
        public var outcome: DeviceOutcome
        /// False when the device already runs the target: record, do not push.
        public var push: Bool
    }

    /// Why a push device failed in a configuration plan it cannot take part in.
    public static let cannotConfigure =
        "its family takes no configuration image (httpUpdate and ArduinoOTA devices do): leave it out of configuration rollouts"

    /// The devices to start now. `running` names the pushes transferring on this gateway (any
    /// rollout; device id → segment); candidates with an outcome of this gateway still before
    /// `installing` count as transferring too.
    public static func next(
        view: RolloutView, candidates: [Candidate], outcomes: [String: DeviceOutcome], now: Int64, gateway: String,
        limits: Limits = .unlimited, running: [String: String] = [:], available: Bool = true
    ) -> [Start] {
        // A configuration plan pushes only to devices that take a pushed filesystem (the others
        // have no way to receive one); such a device counts as current only when configured too.
        guard let plan = view.plan else { return [] }
        let all = candidates
        let candidates = plan.configuration ? candidates.filter(\.configurable) : candidates
        func decide(_ candidate: Candidate, inFlight: Int) -> RolloutView.DeviceDecision {
            view.decide(
                candidate.facts, version: candidate.version, outcome: outcomes[candidate.facts.id], inFlightHere: inFlight, now: now, gateway: gateway,
                available: available, configured: !plan.configuration || candidate.configured)
        }
        var inFlight = outcomes.values.reduce(0) { $0 + ($1.gateway == gateway && !$1.phase.isFinished ? 1 : 0) }
        var busy = running
        for candidate in candidates {
            if let outcome = outcomes[candidate.facts.id], outcome.gateway == gateway, outcome.phase < .installing {
                busy[candidate.facts.id] = candidate.segment
            }
        }
        var total = busy.count
        var perSegment: [String: Int] = [:]
        for segment in busy.values { perSegment[segment, default: 0] += 1 }
        let ordered = candidates.map { ($0, StageSelection.bucket(rollout: plan.id, device: $0.facts.id)) }
            .sorted { ($0.1, $0.0.facts.id) < ($1.1, $1.0.facts.id) }
        var queues: [String: ArraySlice<Candidate>] = [:]
        for (candidate, _) in ordered { queues[candidate.segment, default: []].append(candidate) }
        var starts: [Start] = []
        // Turns: each segment with room starts at most one device per pass, the least busy first.
        var progressed = true
        while progressed, total < limits.maxConcurrent {
            progressed = false
            let turn = queues.keys.filter { !(queues[$0]?.isEmpty ?? true) }
                .sorted { (perSegment[$0, default: 0], $0) < (perSegment[$1, default: 0], $1) }
            for segment in turn where total < limits.maxConcurrent && perSegment[segment, default: 0] < limits.maxPerSegment {
                while let candidate = queues[segment]?.popFirst() {
                    let decision = decide(candidate, inFlight: inFlight)
                    if case .start(let outcome) = decision {
                        starts.append(Start(device: candidate.facts.id, outcome: outcome, push: true))
                        inFlight += 1
                        total += 1
                        perSegment[segment, default: 0] += 1
                        progressed = true
                        break
                    }
                    if case .alreadyCurrent(let outcome) = decision {
                        starts.append(Start(device: candidate.facts.id, outcome: outcome, push: false))
                    }
                }
            }
        }
        // Devices that cannot take a configuration image fail when their stage reaches them (a
        // visible reason, counted by the threshold), instead of staying targeted for ever.
        if plan.configuration {
            for candidate in all where !candidate.configurable {
                guard case .start(var outcome) = decide(candidate, inFlight: 0) else { continue }
                outcome.phase = .failed
                outcome.detail = Self.cannotConfigure
                starts.append(Start(device: candidate.facts.id, outcome: outcome, push: false))
            }
        }
        // Devices left in the queues that already run the target are recorded now; they need no slot.
        for segment in queues.keys.sorted() {
            for candidate in queues[segment] ?? [] {
                let decision = decide(candidate, inFlight: inFlight)
                if case .alreadyCurrent(let outcome) = decision { starts.append(Start(device: candidate.facts.id, outcome: outcome, push: false)) }
            }
        }
        return starts
    }
}
