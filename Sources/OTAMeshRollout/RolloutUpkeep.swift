/// What one gateway decides for one rollout at its upkeep tick, written once for the agent's
/// `RolloutEngine` and the simulator (which folds the tick's device requests in between the
/// two steps): first whether to write its census, then which marks are due. Pure; the caller
/// writes the records and logs.
public enum RolloutUpkeep {
    /// The census to write now (per stage), or nil: the counts changed, or the one written
    /// predates the pending decision's evidence point (``RolloutView/censusStale(_:now:)``).
    public static func census(_ counts: [Int], own: Census?, view: RolloutView, now: Int64) -> [Int]? {
        own?.perStage != counts || view.censusStale(own, now: now) ? counts : nil
    }

    /// The marks due at this tick.
    public struct Marks: Sendable, Equatable {
        public var stage: StageMark?
        public var halt: HaltMark?
        public var completion: CompletionMark?
    }

    /// The marks this gateway writes now, on `view`: a stage advance when its soak passed and
    /// fresh census from a majority backs it, a halt when failures passed the threshold, the
    /// completion when everything finished (`completes`: the rollout started devices). `alive`
    /// are the gateways this one sees alive (itself included); `members` how many it counts.
    public static func marks(view: RolloutView, now: Int64, gateway: String, members: Int, alive: Set<String>, completes: Bool) -> Marks {
        // Census written after the pending decision's evidence point by gateways seen alive now
        // (a side cut off before that point holds only older census from the other); stageDue
        // also takes the majority over every census writer, since SWIM forgets the other side of
        // a long cut. This tick's own census rewrite counts from the next tick.
        let fresh = view.freshCensusGateways(alive: alive)
        return Marks(
            stage: view.stageDue(now: now, gateway: gateway, members: members, censusGateways: fresh),
            halt: view.haltDue(now: now, gateway: gateway),
            completion: completes ? view.completionDue(now: now, gateway: gateway, members: members, censusGateways: fresh) : nil)
    }
}
