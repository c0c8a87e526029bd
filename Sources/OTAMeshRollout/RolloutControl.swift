import OTAMeshTrust

/// An admin control of a running rollout, signed like the plan and ordered by sequence number
/// (the plan is 1; each control is higher). Highest wins: Serf's Lamport ordering, authenticated.
public struct RolloutControl: Sendable, Hashable {
    public enum Kind: String, Sendable, CaseIterable {
        case pause, resume, abort, advance
        case retryFailed = "retry-failed"

        public var commandKind: String { "rollout.\(rawValue)" }

        public init?(commandKind: String) {
            guard commandKind.hasPrefix("rollout.") else { return nil }
            self.init(rawValue: String(commandKind.dropFirst("rollout.".count)))
        }

        /// At one sequence number the safer control wins: abort over pause over the rest.
        var safety: Int {
            switch self {
            case .abort: 2
            case .pause: 1
            case .resume, .advance, .retryFailed: 0
            }
        }
    }

    public var rollout: String
    public var sequence: Int64
    public var kind: Kind
    /// For `advance`: the stage index to advance to.
    public var stage: Int?
    /// Seconds (Unix) the admin issued it.
    public var issued: Int64

    public init(rollout: String, sequence: Int64, kind: Kind, stage: Int? = nil, issued: Int64) {
        self.rollout = rollout
        self.sequence = sequence
        self.kind = kind
        self.stage = stage
        self.issued = issued
    }

    /// Reads a control from a verified command.
    public init(command: SignedCommand) throws(RolloutError) {
        guard let kind = Kind(commandKind: command.kind) else {
            throw .invalidControl(kind: command.kind, reason: "unknown (known: \(Kind.allCases.map(\.commandKind).joined(separator: ", ")))")
        }
        guard command.sequence >= 2 else { throw .invalidControl(kind: command.kind, reason: "sequence 1 belongs to the plan") }
        guard let rollout = command.payload["rollout"]?.stringValue else { throw .invalidControl(kind: command.kind, reason: "payload needs rollout") }
        var stage: Int?
        if kind == .advance {
            guard let value = command.payload["stage"]?.integerValue, let index = Int(exactly: value), index >= 0 else {
                throw .invalidControl(kind: command.kind, reason: "advance needs a stage index ≥ 0")
            }
            stage = index
        }
        self.init(rollout: rollout, sequence: command.sequence, kind: kind, stage: stage, issued: ISOTime.parse(command.issued) ?? 0)
    }

    /// A new unsigned command for this control.
    public func command(site: String) -> SignedCommand {
        var payload = JSONObject()
        payload["rollout"] = .string(rollout)
        if let stage { payload["stage"] = .integer(Int64(stage)) }
        return SignedCommand(site: site, sequence: sequence, kind: kind.commandKind, payload: .object(payload), issued: issued)
    }
}

extension RolloutPlan {
    /// A new unsigned plan command (sequence 1).
    public func command(site: String, issued: Int64) -> SignedCommand {
        SignedCommand(site: site, sequence: 1, kind: Self.commandKind, payload: json, issued: issued)
    }
}
