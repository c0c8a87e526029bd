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
        public init(stage: StageMark? = nil, halt: HaltMark? = nil, completion: CompletionMark? = nil) {
            self.stage = stage
            self.halt = halt
            self.completion = completion
        }
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

/// Who carries out one gateway's upkeep of one rollout (``RolloutUpkeep/tick(_:rollout:view:census:own:inFlight:now:gateway:completes:)``):
/// the agent's ``RolloutNode`` and the simulator's gateway model. The order of the steps is the
/// tick's; each sink only says how a step lands in its own state.
public protocol RolloutUpkeepSink {
    /// How the sink names a device (the agent: its id; the simulator: an index).
    associatedtype Device
    /// Writes this gateway's census of the rollout (per stage).
    mutating func writeCensus(_ perStage: [Int], rollout: String, now: Int64)
    /// Records the failure of an attempt that found no confirmation in time.
    mutating func timedOut(_ outcome: DeviceOutcome, device: Device, rollout: String, now: Int64)
    /// Between the timeouts and the marks, devices start: pull devices' requests in the
    /// simulator, pushes and devices already on the target on a gateway. Returns the view after.
    mutating func startDevices(rollout: String, view: RolloutView, now: Int64) -> RolloutView
    /// The gateways counted for a majority now, and those seen alive (itself included).
    mutating func members(rollout: String) -> (count: Int, alive: Set<String>)
    /// Writes (and logs) the marks due.
    mutating func writeMarks(_ marks: RolloutUpkeep.Marks, rollout: String, view: RolloutView, now: Int64)
}

extension RolloutUpkeep {
    /// One gateway's upkeep of one rollout, in its fixed order: census, timeouts of its attempts
    /// in flight (`inFlight`, in the order given), device starts, then the stage, halt and
    /// completion marks on the view after the starts (`completes`: the rollout started devices).
    public static func tick<Sink: RolloutUpkeepSink>(
        _ sink: inout Sink, rollout: String, view: RolloutView, census counts: [Int], own: Census?,
        inFlight: [(device: Sink.Device, outcome: DeviceOutcome)], now: Int64, gateway: String, completes: Bool
    ) {
        if let census = census(counts, own: own, view: view, now: now) { sink.writeCensus(census, rollout: rollout, now: now) }
        for (device, outcome) in inFlight {
            if let failed = view.timedOut(outcome, now: now) { sink.timedOut(failed, device: device, rollout: rollout, now: now) }
        }
        let after = sink.startDevices(rollout: rollout, view: view, now: now)
        let (members, alive) = sink.members(rollout: rollout)
        let due = marks(view: after, now: now, gateway: gateway, members: members, alive: alive, completes: completes)
        if due != Marks() { sink.writeMarks(due, rollout: rollout, view: after, now: now) }
    }
}
