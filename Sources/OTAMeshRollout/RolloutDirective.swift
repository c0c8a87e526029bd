/// One record a gateway writes about one rollout (its `ro/` records, ``RolloutRecords``).
public enum RolloutRecord: Sendable, Equatable {
    case command(CommandCopy)
    case outcome(device: String, DeviceOutcome)
    /// This gateway's census (per stage), taken at `at`.
    case census([Int], at: Int64)
    case halt(HaltMark)
    case stage(StageMark)
    case completion(CompletionMark)

    /// The key–value records it is stored and gossiped as.
    public func encoded(rollout: String) -> [(key: String, value: [UInt8])] {
        switch self {
        case .command(let copy): RolloutRecords.command(copy, rollout: rollout)
        case let .outcome(device, outcome): [RolloutRecords.outcome(outcome, device: device, rollout: rollout)]
        case let .census(perStage, at): [RolloutRecords.census(perStage, at: at, rollout: rollout)]
        case .halt(let mark): [RolloutRecords.halt(mark, rollout: rollout)]
        case .stage(let mark): [RolloutRecords.stage(mark, rollout: rollout)]
        case .completion(let mark): [RolloutRecords.completion(mark, rollout: rollout)]
        }
    }
}

/// A line for the gateway's log (structured: `subject.attribute` keys, docs/operations.md).
public struct RolloutLog: Sendable, Equatable {
    public enum Level: Sendable, Equatable { case info, notice, warning }
    public var level: Level
    public var message: String
    public var metadata: [String: String]

    public init(_ level: Level, _ message: String, _ metadata: [String: String]) {
        self.level = level
        self.message = message
        self.metadata = metadata
    }
}

/// What ``RolloutNode`` asks its shell to do. The node has already taken its own writes into its
/// state; the shell makes them durable and visible to the mesh, and does the rest in order.
public enum RolloutDirective: Sendable, Equatable {
    /// Store and gossip this record of `rollout`.
    case write(rollout: String, RolloutRecord)
    /// Push the image of `rollout` to `device` (a new attempt, or one in flight to take up again);
    /// the shell reports back with ``RolloutNode/pushEnded(rollout:device:_:now:)``.
    case push(rollout: String, device: String, DeviceOutcome)
    /// Note on the device's registry entry what the rollout last did with it.
    case note(device: String, answer: String)
    case log(RolloutLog)
    /// Milestones an admin hears about without polling (the webhook notifier).
    case announce([RolloutEvent])
}

/// What the rollouts say about one device on one request.
public enum RolloutAnswer: Sendable, Equatable {
    /// Offer this target path (a new or an in-flight attempt).
    case offer(path: String, rollout: String)
    /// A rollout covers the device but nothing is offered now, and why.
    case hold(String)
    /// The device is selected and the image ready, but the rollout's maintenance window is
    /// closed: no attempt starts. A device that can download ahead (hawkBit DDI's
    /// `update: skip`) may fetch `path` now and install once the window opens; for any other
    /// device this is a ``hold(_:)`` for `why`.
    case prefetch(path: String, rollout: String, why: String)
    /// An attempt started but not yet transferring, in a halted or aborted rollout: a device
    /// that can be told to stop (hawkBit DDI's `cancelAction`) is; for any other device this is
    /// an ``offer(path:rollout:)`` (in-flight attempts finish).
    case cancel(path: String, rollout: String, why: String)
    /// No rollout covers the device: manual assignments apply.
    case none
}
