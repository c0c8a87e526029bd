/// Why metadata or a target was refused. Each case names the role or file, what was expected
/// and what was found, e.g. `snapshot.json: rollback: trusted version 7, offered 5`.
public enum TrustError: Error, Sendable, Equatable, CustomStringConvertible {
    case malformed(file: String, reason: String)
    case wrongType(file: String, expected: String, found: String)
    case expired(role: String, expires: String, now: String)
    case rollback(role: String, trusted: Int64, offered: Int64)
    /// A snapshot lists an older version of a file than the trusted snapshot did, or drops it.
    case metaRollback(role: String, file: String, trusted: Int64, offered: Int64?)
    /// Mix-and-match: the version served is not the one the parent role lists.
    case versionMismatch(role: String, expected: Int64, found: Int64)
    case threshold(role: String, valid: Int, threshold: Int)
    case lengthMismatch(file: String, expected: Int64, found: Int64)
    case tooLarge(file: String, limit: Int64)
    case hashMismatch(file: String, algorithm: String, expected: String, found: String)
    case missingMeta(role: String, file: String)
    case notLoaded(role: String, needs: String)
    case rootRotationLimit(limit: Int)
    case unsupportedHash(file: String, algorithms: [String])
    case fetch(file: String, reason: String)
    /// The remote has no such file.
    case notFound(file: String)
    case targetNotFound(path: String)
    /// A signed command with fewer valid admin signatures than the site requires.
    case unsignedCommand(kind: String, sequence: Int64, valid: Int, threshold: Int)
    /// A command no newer than one already accepted.
    case replayedCommand(kind: String, accepted: Int64, offered: Int64)
    /// A command for another site.
    case wrongSite(expected: String, found: String)
    /// A file offered as a release is not a valid firmware image.
    case invalidImage(file: String, reason: String)

    public var description: String {
        switch self {
        case let .malformed(file, reason): "\(file): malformed metadata: \(reason)"
        case let .wrongType(file, expected, found): "\(file): expected _type \(expected), found \(found)"
        case let .expired(role, expires, now): "\(role).json: expired at \(expires) (now \(now))"
        case let .rollback(role, trusted, offered): "\(role).json: rollback: trusted version \(trusted), offered \(offered)"
        case let .metaRollback(role, file, trusted, offered):
            offered.map { "\(role).json: rollback of \(file): trusted version \(trusted), offered \($0)" }
                ?? "\(role).json: drops \(file) (trusted version \(trusted))"
        case let .versionMismatch(role, expected, found): "\(role).json: version \(found) served, \(expected) expected by its parent role"
        case let .threshold(role, valid, threshold): "\(role).json: \(valid) valid signature(s) from distinct trusted keys, \(threshold) required"
        case let .lengthMismatch(file, expected, found): "\(file): length \(found), signed length \(expected)"
        case let .tooLarge(file, limit): "\(file): larger than the \(limit)-byte limit"
        case let .hashMismatch(file, algorithm, expected, found): "\(file): \(algorithm) \(found), signed \(expected)"
        case let .missingMeta(role, file): "\(role).json: does not list \(file)"
        case let .notLoaded(role, needs): "\(role).json: cannot be loaded before \(needs)"
        case let .rootRotationLimit(limit): "root.json: more than \(limit) root rotations in one refresh"
        case let .unsupportedHash(file, algorithms): "\(file): no supported hash among \(algorithms.joined(separator: ", "))"
        case let .fetch(file, reason): "\(file): download failed: \(reason)"
        case let .notFound(file): "\(file): not found on the remote"
        case let .targetNotFound(path): "\(path): no trusted targets metadata lists this target"
        case let .invalidImage(file, reason): "\(file): not a valid image: \(reason)"
        case let .unsignedCommand(kind, sequence, valid, threshold):
            "command \(kind) #\(sequence): \(valid) valid signature(s) from distinct site admin keys, \(threshold) required"
        case let .replayedCommand(kind, accepted, offered): "command \(kind) #\(offered): replayed (sequence \(accepted) already accepted)"
        case let .wrongSite(expected, found): "command for site \(found), this gateway belongs to \(expected)"
        }
    }
}
