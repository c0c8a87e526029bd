/// The counts a ``RolloutView`` needs from a rollout's device outcomes, kept up to date one
/// outcome at a time, so a replica holding many outcomes need not walk them all for every view.
///
/// Counts are kept per percent slot (`bucket / 100`): stage bounds are whole percentages
/// (`bucket < stages[k] × 100` iff `bucket / 100 < stages[k]`), so the slots give every stage's
/// cumulative counts whatever the plan. Failures are kept per retry epoch, because which of them
/// count depends on the latest `retry-failed`.
public struct OutcomeTally: Sendable, Hashable {
    public static let slots = StageSelection.buckets / 100

    /// One gateway's outcomes: succeeded, in flight, and failed per epoch.
    public struct GatewayCounts: Sendable, Hashable {
        public var succeeded = 0
        public var inFlight = 0
        public var failed: [Int64: Int] = [:]
    }

    public private(set) var succeeded = [Int](repeating: 0, count: slots)
    public private(set) var inFlight = [Int](repeating: 0, count: slots)
    /// Epoch → failures per slot.
    public private(set) var failed: [Int64: [Int]] = [:]
    public private(set) var gateways: [String: GatewayCounts] = [:]

    public init() {}

    /// The tally of a whole set of outcomes (what ``RolloutState/outcomes`` holds).
    public init(_ outcomes: [String: DeviceOutcome]) {
        for outcome in outcomes.values { apply(outcome, 1) }
    }

    /// A device's outcome changed from `old` (nil: none yet) to `new` (nil: forgotten).
    public mutating func replace(_ old: DeviceOutcome?, with new: DeviceOutcome?) {
        if let old { apply(old, -1) }
        if let new { apply(new, 1) }
    }

    mutating func apply(_ outcome: DeviceOutcome, _ sign: Int) {
        let slot = min(max(outcome.bucket / 100, 0), Self.slots - 1)
        var entry = gateways[outcome.gateway] ?? GatewayCounts()
        switch outcome.phase {
        case .succeeded:
            succeeded[slot] += sign
            entry.succeeded += sign
        case .failed:
            failed[outcome.epoch, default: [Int](repeating: 0, count: Self.slots)][slot] += sign
            entry.failed[outcome.epoch, default: 0] += sign
            if entry.failed[outcome.epoch] == 0 { entry.failed[outcome.epoch] = nil }
            if failed[outcome.epoch]?.allSatisfy({ $0 == 0 }) == true { failed[outcome.epoch] = nil }
        case .offered, .downloading, .installing:
            inFlight[slot] += sign
            entry.inFlight += sign
        }
        gateways[outcome.gateway] = entry.succeeded == 0 && entry.inFlight == 0 && entry.failed.isEmpty ? nil : entry
    }

    /// Failures of epochs `retryEpoch` and later, per slot (those the thresholds count).
    func failures(since retryEpoch: Int64) -> [Int] {
        var total = [Int](repeating: 0, count: Self.slots)
        for (epoch, counts) in failed where epoch >= retryEpoch {
            for slot in total.indices { total[slot] += counts[slot] }
        }
        return total
    }
}
