/// The soak's invariants, how often each was checked and what broke them; and the pure
/// judgements behind two of them (a minority's stages, an agent's memory). The runner feeds it.
public struct SoakLedger: Sendable {
    public enum Invariant: String, CaseIterable, Sendable {
        case haltRespected = "no device update starts after its gateway knows the halt"
        case minorityStill = "a cut-off minority never advances a stage"
        case membershipAgrees = "after the last heal every gateway sees every other alive"
        case rolloutsAgree = "after the last heal every gateway's rollout state agrees"
        case storeVerifies = "after every SIGKILL the store verifies"
        case nothingLost = "after every SIGKILL nothing committed is lost"
        case noCrash = "no gateway exits unless killed or stopped"
        case rssFlat = "agent RSS stays flat (no leak)"
        case fdsBounded = "agent file descriptors stay bounded"
    }

    public private(set) var checks: [Invariant: Int] = [:]
    public private(set) var violations: [Invariant: [String]] = [:]

    public init() {}

    public mutating func check(_ invariant: Invariant, _ holds: Bool, _ detail: @autoclosure () -> String) {
        checks[invariant, default: 0] += 1
        if !holds { violations[invariant, default: []].append(detail()) }
    }

    public var passed: Bool { violations.values.allSatisfy(\.isEmpty) }

    /// The summary table (Markdown), one row per invariant, then the first violations.
    public func table() -> [String] {
        var lines = ["| invariant | checks | violations |", "|---|---:|---:|"]
        for invariant in Invariant.allCases {
            lines.append("| \(invariant.rawValue) | \(checks[invariant] ?? 0) | \(violations[invariant]?.count ?? 0) |")
        }
        for invariant in Invariant.allCases {
            for detail in (violations[invariant] ?? []).prefix(5) { lines.append("- \(invariant.rawValue): \(detail)") }
        }
        return lines
    }

    /// The stage a minority may show per rollout while cut off: the highest any gateway had when
    /// the cut began (what was decided may still arrive), or one more when that stage's soak had
    /// ended (`dueAt`, Unix seconds) by the time the cut was complete — a majority's census
    /// written after the soak may then have reached the minority before the cut, and its advance
    /// rests on the same evidence as the majority's. A minority cut off before the soak ended
    /// never advances (the rule the hour soak found broken, then fixed).
    public static func minorityLimit(highest: [String: Int], dueAt: [String: Double], cutComplete: Double) -> [String: Int] {
        highest.reduce(into: [:]) { limit, entry in
            limit[entry.key] = entry.value + (dueAt[entry.key].map { $0 <= cutComplete } == true ? 1 : 0)
        }
    }

    /// The rollouts whose stage a minority gateway shows past its limit (``minorityLimit(highest:dueAt:cutComplete:)``).
    public static func minorityAdvanced(atPartition: [String: Int], now: [String: Int]) -> [String] {
        now.compactMap { rollout, stage in stage > (atPartition[rollout] ?? -1) ? rollout : nil }.sorted()
    }

    /// One agent process's memory and descriptors over its life: `(seconds, RSS KiB, fds)`.
    public struct Samples: Sendable {
        public var points: [(at: Double, rssKiB: Int, fds: Int)] = []
        public init() {}
    }

    /// A leak shows as RSS still rising once the agent has warmed up: the median of the last
    /// fifth of the samples against the median of the fifth after warm-up (the first third of
    /// its life). Within max(16 MiB, 25 %) is flat. Nil when the process lived too short to
    /// judge (fewer than 10 samples).
    public static func rssGrowth(_ samples: Samples) -> (fromKiB: Int, toKiB: Int, flat: Bool)? {
        let points = samples.points
        guard points.count >= 10 else { return nil }
        let warm = points.count / 3
        let fifth = max(1, points.count / 5)
        func median(_ slice: ArraySlice<(at: Double, rssKiB: Int, fds: Int)>) -> Int {
            let sorted = slice.map(\.rssKiB).sorted()
            return sorted[sorted.count / 2]
        }
        let early = median(points[warm..<min(points.count, warm + fifth)])
        let late = median(points[(points.count - fifth)...])
        return (early, late, late - early <= max(16 * 1024, early / 4))
    }

    /// Descriptors bounded: never above `limit`, and the last sample within 64 of the first
    /// after warm-up.
    public static func fdsBounded(_ samples: Samples, limit: Int) -> (max: Int, flat: Bool)? {
        guard samples.points.count >= 10 else { return nil }
        let highest = samples.points.map(\.fds).max() ?? 0
        let warm = samples.points[samples.points.count / 3].fds
        let last = samples.points.last!.fds
        return (highest, highest <= limit && last - warm <= 64)
    }
}
