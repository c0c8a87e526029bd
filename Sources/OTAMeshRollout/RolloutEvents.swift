/// What an admin wants to hear about without polling: a rollout approved, halted, completed or
/// aborted. Pure: a gateway compares each rollout's milestones between two upkeeps.
public struct RolloutEvent: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case approved, halted, completed, aborted
    }

    /// Same for every gateway that reports the same milestone, so a receiver can drop repeats.
    public var id: String
    public var kind: Kind
    public var rollout: String
    public var target: String?
    /// The gateway that noticed it, and when (milliseconds since the Unix epoch).
    public var gateway: String
    public var at: Int64
    /// Why it halted, or the counts of a completion.
    public var detail: String

    public init(kind: Kind, rollout: String, target: String?, gateway: String, at: Int64, detail: String, milestone: String) {
        id = "\(rollout)/\(kind.rawValue)/\(milestone)"
        self.kind = kind
        self.rollout = rollout
        self.target = target
        self.gateway = gateway
        self.at = at
        self.detail = detail
    }

    /// The milestones of one rollout that events are made of.
    public struct Milestones: Sendable, Equatable {
        public var approved: Bool
        /// The epoch of the halt in force, if any.
        public var haltEpoch: Int64?
        public var completed: Bool
        public var aborted: Bool

        public init(_ view: RolloutView) {
            approved = view.plan != nil
            haltEpoch = view.halt?.epoch
            completed = view.completion != nil
            aborted = view.mode == .aborted
        }
    }

    /// The events between `before` (nil: a rollout first seen now, whose milestones so far are
    /// reported too) and `view`.
    public static func changes(from before: Milestones?, to view: RolloutView, gateway: String, now: Int64) -> [RolloutEvent] {
        let after = Milestones(view)
        let target = view.plan?.target.path
        var events: [RolloutEvent] = []
        if after.approved, before?.approved != true {
            events.append(
                RolloutEvent(
                    kind: .approved, rollout: view.id, target: target, gateway: gateway, at: now,
                    detail: "plan approved\(view.plan.map { " for \($0.selector)" } ?? "")", milestone: "1"))
        }
        if let epoch = after.haltEpoch, before?.haltEpoch != epoch, let halt = view.halt {
            events.append(RolloutEvent(kind: .halted, rollout: view.id, target: target, gateway: gateway, at: now, detail: halt.reason, milestone: "\(epoch)"))
        }
        if after.completed, before?.completed != true, let completion = view.completion {
            events.append(
                RolloutEvent(
                    kind: .completed, rollout: view.id, target: target, gateway: gateway, at: now,
                    detail: "\(completion.succeeded) succeeded, \(completion.failed) failed", milestone: "1"))
        }
        if after.aborted, before?.aborted != true {
            events.append(
                RolloutEvent(kind: .aborted, rollout: view.id, target: target, gateway: gateway, at: now, detail: "aborted by signed command", milestone: "1"))
        }
        return events
    }
}
