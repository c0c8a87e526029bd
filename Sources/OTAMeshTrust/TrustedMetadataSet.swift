import Crypto
import OTAMeshCommon

/// The metadata a client trusts, and the only way to add to it (TUF 1.0 §5.3–5.6).
///
/// Pure: bytes and the current time in, typed errors out. Every update verifies signatures
/// against the already-trusted delegator, version monotonicity (rollback), the version the
/// parent role lists (mix-and-match), lengths and hashes where listed (endless data is bounded
/// by the caller's size limits) and expiry.
public struct TrustedMetadataSet: Sendable {
    public private(set) var root: RootMetadata
    public private(set) var timestamp: TimestampMetadata?
    public private(set) var snapshot: SnapshotMetadata?
    /// Top-level (`targets`) and delegated targets roles, by name.
    public private(set) var targets: [String: TargetsMetadata] = [:]
    /// Seconds since the Unix epoch used for every expiry check.
    public let now: Int64

    /// Starts from a trusted root, which must be signed by a threshold of its own root keys.
    /// Its expiry is checked only after any rotation (§5.3.10).
    public init(rootBytes: [UInt8], now: Int64) throws(TrustError) {
        let root = try RootMetadata(bytes: rootBytes)
        try root.verify(root.envelope, role: Role.root)
        self.root = root
        self.now = now
    }

    /// What a root update did.
    public enum RootUpdate: Sendable, Equatable {
        case rotated(to: Int64)
        /// The file served has the trusted version: nothing newer, stop looking (§5.3.5).
        case sameVersion
    }

    /// Applies root version N+1 (§5.3.4–5.3.8): signed by a threshold of the trusted root's root
    /// keys and of its own, version exactly N+1.
    public mutating func updateRoot(_ bytes: [UInt8]) throws(TrustError) -> RootUpdate {
        guard timestamp == nil else { throw .notLoaded(role: Role.root, needs: "timestamp (root cannot change after timestamp)") }
        let new = try RootMetadata(bytes: bytes, file: "\(root.version + 1).root.json")
        try root.verify(new.envelope, role: Role.root)
        try new.verify(new.envelope, role: Role.root)
        if new.version == root.version { return .sameVersion }
        guard new.version > root.version else { throw .rollback(role: Role.root, trusted: root.version, offered: new.version) }
        guard new.version == root.version + 1 else {
            throw .versionMismatch(role: Role.root, expected: root.version + 1, found: new.version)
        }
        root = new
        return .rotated(to: new.version)
    }

    /// §5.3.10: the final root must not be expired.
    public func checkRootFresh() throws(TrustError) {
        try checkExpiry(root.envelope.common, role: Role.root)
    }

    /// Applies a timestamp (§5.4). Returns false when it has the trusted version (kept as is).
    /// An expired timestamp is stored (for rollback protection) and then reported.
    @discardableResult
    public mutating func updateTimestamp(_ bytes: [UInt8]) throws(TrustError) -> Bool {
        guard snapshot == nil else { throw .notLoaded(role: Role.timestamp, needs: "nothing (snapshot already loaded)") }
        try checkRootFresh()
        let new = try TimestampMetadata(bytes: bytes)
        try root.verify(new.envelope, role: Role.timestamp)
        if let trusted = timestamp {
            guard new.version >= trusted.version else {
                throw .rollback(role: Role.timestamp, trusted: trusted.version, offered: new.version)
            }
            if new.version == trusted.version { return false }
            guard new.snapshotMeta.version >= trusted.snapshotMeta.version else {
                throw .metaRollback(
                    role: Role.timestamp, file: "snapshot.json", trusted: trusted.snapshotMeta.version,
                    offered: new.snapshotMeta.version)
            }
        }
        timestamp = new
        try checkExpiry(new.envelope.common, role: Role.timestamp)
        return true
    }

    /// Applies a snapshot (§5.5). `fromLocalCache` skips the length/hash check against the
    /// timestamp (a cached snapshot may be older than the new timestamp lists).
    public mutating func updateSnapshot(_ bytes: [UInt8], fromLocalCache: Bool = false) throws(TrustError) {
        guard let timestamp else { throw .notLoaded(role: Role.snapshot, needs: "timestamp") }
        guard targets.isEmpty else { throw .notLoaded(role: Role.snapshot, needs: "nothing (targets already loaded)") }
        try checkExpiry(timestamp.envelope.common, role: Role.timestamp)
        if !fromLocalCache {
            try Self.checkBytes(bytes, file: "snapshot.json", length: timestamp.snapshotMeta.length, hashes: timestamp.snapshotMeta.hashes)
        }
        let new = try SnapshotMetadata(bytes: bytes)
        try root.verify(new.envelope, role: Role.snapshot)
        if let trusted = snapshot {
            for (file, old) in trusted.meta {
                guard let offered = new.meta[file] else {
                    throw .metaRollback(role: Role.snapshot, file: file, trusted: old.version, offered: nil)
                }
                guard offered.version >= old.version else {
                    throw .metaRollback(role: Role.snapshot, file: file, trusted: old.version, offered: offered.version)
                }
            }
        }
        snapshot = new
        try checkFinalSnapshot()
    }

    /// Snapshot must be unexpired and the version the timestamp lists (§5.5.4, §5.5.6).
    func checkFinalSnapshot() throws(TrustError) {
        guard let snapshot, let timestamp else { throw .notLoaded(role: Role.snapshot, needs: "timestamp") }
        try checkExpiry(snapshot.envelope.common, role: Role.snapshot)
        guard snapshot.version == timestamp.snapshotMeta.version else {
            throw .versionMismatch(role: Role.snapshot, expected: timestamp.snapshotMeta.version, found: snapshot.version)
        }
    }

    /// Applies the top-level targets metadata (§5.6).
    public mutating func updateTargets(_ bytes: [UInt8]) throws(TrustError) {
        try updateDelegatedTargets(bytes, role: Role.targets, delegator: Role.root)
    }

    /// Applies a delegated targets role, verified with the keys its delegator lists (§5.6.7).
    public mutating func updateDelegatedTargets(_ bytes: [UInt8], role: String, delegator: String) throws(TrustError) {
        guard let snapshot else { throw .notLoaded(role: role, needs: "snapshot") }
        try checkFinalSnapshot()
        let (keys, keyring) = try delegationKeys(role: role, delegator: delegator)
        guard let meta = snapshot.meta["\(role).json"] else { throw .missingMeta(role: Role.snapshot, file: "\(role).json") }
        try Self.checkBytes(bytes, file: "\(role).json", length: meta.length, hashes: meta.hashes)
        let new = try TargetsMetadata(bytes: bytes, file: "\(role).json")
        try new.envelope.verify(role: role, keys: keys, keyring: keyring)
        guard new.version == meta.version else { throw .versionMismatch(role: role, expected: meta.version, found: new.version) }
        try checkExpiry(new.envelope.common, role: role)
        targets[role] = new
    }

    /// The keys and threshold `delegator` gives `role` (the root's for top-level targets).
    func delegationKeys(role: String, delegator: String) throws(TrustError) -> (RoleKeys, [String: TUFKey]) {
        if delegator == Role.root {
            guard let keys = root.roles[Role.targets] else { throw .notLoaded(role: role, needs: "targets keys in root") }
            return (keys, root.keys)
        }
        guard let parent = targets[delegator], let delegations = parent.delegations,
            let delegated = delegations.roles.first(where: { $0.name == role })
        else { throw .notLoaded(role: role, needs: "its delegator \(delegator)") }
        return (delegated.keys, delegations.keys)
    }

    /// Checks a role already trusted through one delegator against another that reaches it too
    /// (a diamond: `parent-a` and `parent-b` both delegate `release`, each with its own keys).
    /// Trust in a role is trust through the path that leads to it: metadata verified with the keys
    /// `parent-a` delegated must not answer for `parent-b`'s paths unless `parent-b`'s keys and
    /// threshold verify it as well.
    public func verifyTrusted(role: String, delegator: String) throws(TrustError) {
        guard let loaded = targets[role] else { throw .notLoaded(role: role, needs: "its metadata") }
        let (keys, keyring) = try delegationKeys(role: role, delegator: delegator)
        try loaded.envelope.verify(role: role, keys: keys, keyring: keyring)
    }

    func checkExpiry(_ common: CommonFields, role: String) throws(TrustError) {
        guard common.expiresAt > now else { throw .expired(role: role, expires: common.expires, now: ISOTime.format(now)) }
    }

    /// Checks a file against a signed length and hashes (each listed algorithm we support must
    /// match; at least one must be supported).
    public static func checkBytes(_ bytes: [UInt8], file: String, length: Int64?, hashes: [String: String]?) throws(TrustError) {
        if let length, Int64(bytes.count) != length {
            throw .lengthMismatch(file: file, expected: length, found: Int64(bytes.count))
        }
        guard let hashes, !hashes.isEmpty else { return }
        var checked = 0
        for (algorithm, expected) in hashes.sorted(by: { $0.key < $1.key }) {
            let actual: String
            switch algorithm {
            case "sha256": actual = hexString(SHA256.hash(data: bytes))
            case "sha512": actual = hexString(SHA512.hash(data: bytes))
            case "sha384": actual = hexString(SHA384.hash(data: bytes))
            default: continue
            }
            checked += 1
            guard actual == expected.lowercased() else { throw .hashMismatch(file: file, algorithm: algorithm, expected: expected, found: actual) }
        }
        guard checked > 0 else { throw .unsupportedHash(file: file, algorithms: hashes.keys.sorted()) }
    }
}
