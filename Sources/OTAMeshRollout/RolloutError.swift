/// Why a rollout plan, control or record was refused. Each case says what and why, e.g.
/// `rollout plan: stages must rise: 10 after 50`.
public enum RolloutError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A plan field is missing or out of range.
    case invalidPlan(field: String, reason: String)
    /// A device selector like `hardware=esp32,tag=floor2` does not parse.
    case invalidSelector(String, reason: String)
    /// A control command is malformed (unknown kind, missing rollout id, bad stage).
    case invalidControl(kind: String, reason: String)
    /// A gossip record under `ro/` does not decode.
    case invalidRecord(key: String, reason: String)
    /// No such rollout is known.
    case unknownRollout(String)

    public var description: String {
        switch self {
        case let .invalidPlan(field, reason): "rollout plan: \(field): \(reason)"
        case let .invalidSelector(text, reason): "device selector '\(text)': \(reason)"
        case let .invalidControl(kind, reason): "rollout control \(kind): \(reason)"
        case let .invalidRecord(key, reason): "rollout record \(key): \(reason)"
        case let .unknownRollout(id): "rollout \(id): not known on this gateway"
        }
    }
}
