import Foundation
import OTAMeshRollout

/// A gateway's `GET /api/v1/rollouts?outcomes=1`, one rollout: the admin API's own status type.
public typealias RolloutSnapshot = RolloutStatus

extension RolloutStatus.Outcome {
    static let order = ["offered", "downloading", "installing", "failed", "succeeded"]
    var rank: Int { Self.order.firstIndex(of: phase) ?? -1 }
    /// The device already ran the target: recorded, but no update was started.
    var isUpdate: Bool { !(phase == "succeeded" && detail.hasPrefix("already ran")) }
}

extension RolloutStatus {
    public typealias Progress = RolloutView.GatewayProgress

    struct List: Decodable {
        var rollouts: [RolloutStatus]
    }

    /// The rollouts of one answer, or nil when it is not the JSON expected.
    public static func decodeList(_ data: Data) -> [RolloutStatus]? {
        try? JSONDecoder().decode(List.self, from: data).rollouts
    }
}

/// What the runner saw of one rollout, gateway by gateway, while the scenario ran: when each
/// gateway first had the approved plan, each stage and the halt, and every device's latest
/// outcome. Times are Unix seconds: when the query that first saw it ended (an upper bound) and
/// when the last query that had not seen it began (a lower bound). Pure: fed by ``observe(_:_:at:roundBegan:)``.
public struct RolloutTrack: Sendable {
    public let name: String
    public let id: String
    public let at: String
    public let target: String
    /// When the first signature was sent, and the last (the plan can run from then on).
    public let firstSent: Double
    public let lastSent: Double
    /// A configuration plan: a device's success includes its configuration.
    public var configuration = false

    public private(set) var planKnown: [String: Double] = [:]
    /// The start of the latest query whose answer did not yet have the approved plan, or the
    /// halt: the gateway learned it after that, so these give lower bounds.
    public private(set) var planUnknown: [String: Double] = [:]
    public private(set) var haltUnknown: [String: Double] = [:]
    /// Per gateway, the first time each stage (0-based index) was seen.
    public private(set) var stageSeen: [String: [Int: Double]] = [:]
    public private(set) var halt: RolloutSnapshot.Halt?
    public private(set) var haltKnown: [String: Double] = [:]
    public private(set) var modes: [String: String] = [:]
    public private(set) var latest: [String: RolloutSnapshot] = [:]
    public private(set) var outcomes: [String: RolloutSnapshot.Outcome] = [:]
    /// From here on a (signed) resume may lift the halt: later starts are allowed.
    public var resumedAt: Double?

    public init(name: String, id: String, at: String, target: String, firstSent: Double, lastSent: Double) {
        self.name = name
        self.id = id
        self.at = at
        self.target = target
        self.firstSent = firstSent
        self.lastSent = lastSent
    }

    /// Something worth narrating that one observation brought.
    public enum Event: Sendable, Equatable {
        case planKnown(gateway: String)
        case stage(Int, gateway: String)
        case halt(RolloutSnapshot.Halt)
        case haltKnown(gateway: String)
    }

    /// A gateway that does not list the rollout at all (in the query that began at `roundBegan`).
    public mutating func observeMissing(_ gateway: String, roundBegan: Double) {
        if planKnown[gateway] == nil { planUnknown[gateway] = roundBegan }
    }

    /// Takes one gateway's view, answered by the query that began at `roundBegan` and ended at
    /// `time` (Unix seconds); returns what is new.
    public mutating func observe(_ gateway: String, _ snapshot: RolloutSnapshot, at time: Double, roundBegan: Double? = nil) -> [Event] {
        var events: [Event] = []
        let began = roundBegan ?? time
        if snapshot.mode == "awaiting approval", planKnown[gateway] == nil { planUnknown[gateway] = began }
        if snapshot.mode != "halted", haltKnown[gateway] == nil { haltUnknown[gateway] = began }
        latest[gateway] = snapshot
        modes[gateway] = snapshot.mode
        if snapshot.mode != "awaiting approval", planKnown[gateway] == nil {
            planKnown[gateway] = time
            events.append(.planKnown(gateway: gateway))
        }
        if snapshot.mode != "awaiting approval", snapshot.stage >= 0, snapshot.stage < 1000, stageSeen[gateway, default: [:]][snapshot.stage] == nil {
            // A stage reached means every stage before it was, too.
            for stage in 0...snapshot.stage where stageSeen[gateway, default: [:]][stage] == nil {
                stageSeen[gateway, default: [:]][stage] = time
            }
            if !stageSeenElsewhere(snapshot.stage, except: gateway) { events.append(.stage(snapshot.stage, gateway: gateway)) }
        }
        if let mark = snapshot.halt {
            if halt == nil || mark.epoch > halt!.epoch || (mark.epoch == halt!.epoch && mark.at < halt!.at) {
                if halt == nil { events.append(.halt(mark)) }
                halt = mark
            }
            if snapshot.mode == "halted", haltKnown[gateway] == nil {
                haltKnown[gateway] = time
                events.append(.haltKnown(gateway: gateway))
            }
        }
        for outcome in snapshot.outcomes ?? [] {
            if let held = outcomes[outcome.device], (held.epoch, held.rank, held.updated) >= (outcome.epoch, outcome.rank, outcome.updated) { continue }
            outcomes[outcome.device] = outcome
        }
        return events
    }

    func stageSeenElsewhere(_ stage: Int, except gateway: String) -> Bool {
        stageSeen.contains { $0.key != gateway && $0.value[stage] != nil }
    }

    /// Seconds from the last signature until the last of `gateways` had the approved plan (nil
    /// while one has not).
    public func planSpread(_ gateways: [String]) -> Double? {
        let times = gateways.map { planKnown[$0] }
        guard !times.isEmpty, times.allSatisfy({ $0 != nil }) else { return nil }
        return max(0, times.compactMap { $0 }.max()! - lastSent)
    }

    /// A lower bound for ``planSpread(_:)``: the last round in which some gateway still lacked it.
    public func planSpreadLowerBound(_ gateways: [String]) -> Double {
        max(0, (gateways.compactMap { planUnknown[$0] }.max() ?? lastSent) - lastSent)
    }

    /// A lower bound for the halt's spread: the last round in which some gateway did not know it.
    public func haltSpreadLowerBound(_ gateways: [String]) -> Double? {
        guard let halt else { return nil }
        let at = Double(halt.at) / 1000
        return max(0, (gateways.filter { $0 != halt.gateway }.compactMap { haltUnknown[$0] }.max() ?? at) - at)
    }

    /// When a gateway knew the halt: the halting gateway at the mark's own time, the others
    /// when first seen halted.
    public func haltKnownTime(_ gateway: String) -> Double? {
        guard let halt else { return nil }
        if halt.gateway == gateway { return Double(halt.at) / 1000 }
        return haltKnown[gateway]
    }

    /// Seconds from the halt mark (the threshold crossing, or the admin's halt) until each of
    /// `gateways` knew it, and the largest (nil while one does not).
    public func haltSpread(_ gateways: [String]) -> (each: [String: Double], last: Double)? {
        guard let halt else { return nil }
        var each: [String: Double] = [:]
        for gateway in gateways {
            guard let known = haltKnownTime(gateway) else { return nil }
            each[gateway] = max(0, known - Double(halt.at) / 1000)
        }
        return (each, each.values.max() ?? 0)
    }

    /// Device updates that started after the gateway starting them knew the halt (and before
    /// any resume): each must be none.
    public var startsAfterHalt: [RolloutSnapshot.Outcome] {
        guard halt != nil else { return [] }
        return outcomes.values.filter { outcome in
            guard outcome.isUpdate, let known = haltKnownTime(outcome.gateway) else { return false }
            let started = Double(outcome.started) / 1000
            return started > known && started < (resumedAt ?? .infinity)
        }.sorted { $0.started < $1.started }
    }

    /// Device updates started in all (outcomes that are not "already ran").
    public var updatesStarted: Int { outcomes.values.filter(\.isUpdate).count }

    /// The rollouts.json entry.
    public func record(gateways: [String]) -> [String: Any] {
        var entry: [String: Any] = [
            "name": name, "id": id, "at": at, "target": target, "firstSignatureSent": firstSent, "lastSignatureSent": lastSent,
            "planKnownAfter": planKnown.mapValues { ($0 - lastSent).rounded3 },
            "stageSeenAfter": stageSeen.mapValues { stages in Dictionary(uniqueKeysWithValues: stages.map { ("\($0.key + 1)", ($0.value - lastSent).rounded3) })
            },
            "modes": modes,
            "updatesStarted": updatesStarted,
            "outcomes": outcomes.values.sorted { $0.started < $1.started }.map {
                ["device": $0.device, "gateway": $0.gateway, "phase": $0.phase, "started": $0.started, "updated": $0.updated, "detail": $0.detail]
                    as [String: Any]
            },
        ]
        if let spread = planSpread(gateways) {
            entry["planEverywhereAfter"] = spread.rounded3
            entry["planEverywhereAfterAtLeast"] = planSpreadLowerBound(gateways).rounded3
        }
        if let halt {
            entry["halt"] = ["epoch": halt.epoch, "at": halt.at, "gateway": halt.gateway, "reason": halt.reason] as [String: Any]
            entry["haltKnownAfter"] = Dictionary(
                uniqueKeysWithValues: gateways.compactMap { gateway in
                    haltKnownTime(gateway).map { (gateway, ($0 - Double(halt.at) / 1000).rounded3) }
                })
            if let spread = haltSpread(gateways) {
                entry["haltEverywhereAfter"] = spread.last.rounded3
                entry["haltEverywhereAfterAtLeast"] = (haltSpreadLowerBound(gateways) ?? 0).rounded3
            }
            entry["startsAfterHalt"] = startsAfterHalt.map { "\($0.device) at \($0.gateway)" }
        }
        if let resumedAt { entry["resumedAt"] = resumedAt }
        return entry
    }
}

extension Double {
    var rounded3: Double { (self * 1000).rounded() / 1000 }
}
