/// Where the updater downloads from. Implementations MUST stop reading after `maxLength`
/// bytes and throw ``TrustError/tooLarge(file:limit:)`` (endless-data protection), and throw
/// ``TrustError/notFound(file:)`` when the file does not exist.
public protocol RemoteFiles: Sendable {
    func fetch(_ path: String, maxLength: Int64) async throws(TrustError) -> [UInt8]
}

/// Where trusted metadata persists between refreshes (`root.json`, `timestamp.json`, …).
public protocol MetadataPersistence {
    func load(_ name: String) -> [UInt8]?
    func save(_ name: String, _ bytes: [UInt8]) throws(TrustError)
    func remove(_ name: String)
}

/// Limits that bound a refresh (python-tuf ngclient's defaults).
public struct UpdaterLimits: Sendable {
    public var maxRootRotations = 256
    public var maxDelegations = 32
    public var rootMaxLength: Int64 = 512_000
    public var timestampMaxLength: Int64 = 16_384
    public var snapshotMaxLength: Int64 = 2_000_000
    public var targetsMaxLength: Int64 = 5_000_000
    public init() {}
}

/// The TUF client workflow (§5): refresh top-level metadata, find targets through delegations,
/// download and verify target bytes.
public struct Updater {
    public let metadata: any RemoteFiles
    public let targetFiles: any RemoteFiles
    public let persistence: any MetadataPersistence
    /// Where every trusted root version (`N.root.json`) is kept, for serving the chain to peers
    /// and for export; nil: not kept. Never the trusted-metadata directory itself unless the
    /// caller says so: a client's metadata directory holds exactly the trusted role files.
    public let rootHistory: (any MetadataPersistence)?
    public let limits: UpdaterLimits
    public let now: Int64
    public private(set) var trusted: TrustedMetadataSet?

    public init(
        metadata: any RemoteFiles, targets: any RemoteFiles, persistence: any MetadataPersistence,
        rootHistory: (any MetadataPersistence)? = nil, limits: UpdaterLimits = UpdaterLimits(), now: Int64
    ) {
        self.rootHistory = rootHistory
        self.metadata = metadata
        self.targetFiles = targets
        self.persistence = persistence
        self.limits = limits
        self.now = now
    }

    /// §5.2–5.6.1: root rotation, timestamp, snapshot, top-level targets.
    public mutating func refresh() async throws(TrustError) {
        guard let rootBytes = persistence.load("root.json") else { throw .notLoaded(role: Role.root, needs: "a trusted root.json (init)") }
        var set = try TrustedMetadataSet(rootBytes: rootBytes, now: now)
        try await rotateRoot(&set)
        try set.checkRootFresh()
        try await loadTimestamp(&set)
        try await loadSnapshot(&set)
        trusted = set
        try await loadTargets(role: Role.targets, delegator: Role.root)
    }

    private func rotateRoot(_ set: inout TrustedMetadataSet) async throws(TrustError) {
        let original = set.root
        for _ in 0..<limits.maxRootRotations {
            let name = "\(set.root.version + 1).root.json"
            let bytes: [UInt8]
            do { bytes = try await metadata.fetch(name, maxLength: limits.rootMaxLength) } catch {
                if case .notFound = error { break }
                throw error
            }
            guard case .rotated = try set.updateRoot(bytes) else { break }
            try persistence.save("root.json", bytes)
            // Every trusted root version is kept (where the caller says), so a gateway can serve
            // the chain to peers.
            try rootHistory?.save(name, bytes)
        }
        // §5.3.11 fast-forward attack recovery: new timestamp or snapshot keys void the cached files.
        if set.root.version != original.version,
            set.root.roles[Role.timestamp] != original.roles[Role.timestamp]
                || set.root.roles[Role.snapshot] != original.roles[Role.snapshot]
        {
            persistence.remove("timestamp.json")
            persistence.remove("snapshot.json")
        }
    }

    private func loadTimestamp(_ set: inout TrustedMetadataSet) async throws(TrustError) {
        if let local = persistence.load("timestamp.json") {
            // A cached file that no longer verifies is simply not trusted; an expired one still
            // guards against rollback.
            _ = try? set.updateTimestamp(local)
        }
        let bytes = try await metadata.fetch("timestamp.json", maxLength: limits.timestampMaxLength)
        if try set.updateTimestamp(bytes) { try persistence.save("timestamp.json", bytes) }
    }

    private func loadSnapshot(_ set: inout TrustedMetadataSet) async throws(TrustError) {
        if let local = persistence.load("snapshot.json") {
            var trial = set
            if (try? trial.updateSnapshot(local, fromLocalCache: true)) != nil {
                set = trial
                return
            }
            // Keep a cached snapshot that verified but is outdated, for rollback checks.
            _ = try? set.updateSnapshot(local, fromLocalCache: true)
        }
        guard let meta = set.timestamp?.snapshotMeta else { throw .notLoaded(role: Role.snapshot, needs: "timestamp") }
        let name = set.root.consistentSnapshot ? "\(meta.version).snapshot.json" : "snapshot.json"
        let bytes = try await metadata.fetch(name, maxLength: meta.length ?? limits.snapshotMaxLength)
        try set.updateSnapshot(bytes)
        try persistence.save("snapshot.json", bytes)
    }

    /// Loads a targets role (local copy if still current, else downloaded) into the trusted set.
    @discardableResult
    private mutating func loadTargets(role: String, delegator: String) async throws(TrustError) -> TargetsMetadata {
        guard var set = trusted else { throw .notLoaded(role: role, needs: "refresh") }
        if let loaded = set.targets[role] {
            // Reached again, maybe through another delegator: it must verify against this one.
            try set.verifyTrusted(role: role, delegator: delegator)
            return loaded
        }
        let persisted = "\(Self.encode(role)).json"
        if let local = persistence.load(persisted) {
            var trial = set
            if (try? trial.updateDelegatedTargets(local, role: role, delegator: delegator)) != nil {
                trusted = trial
                return trial.targets[role]!
            }
        }
        guard let meta = set.snapshot?.meta["\(role).json"] else { throw .missingMeta(role: Role.snapshot, file: "\(role).json") }
        let name = set.root.consistentSnapshot ? "\(meta.version).\(Self.encode(role)).json" : "\(Self.encode(role)).json"
        let bytes = try await metadata.fetch(name, maxLength: meta.length ?? limits.targetsMaxLength)
        try set.updateDelegatedTargets(bytes, role: role, delegator: delegator)
        try persistence.save(persisted, bytes)
        trusted = set
        return set.targets[role]!
    }

    /// §5.6.7: pre-order depth-first search of the delegation graph for `path`, honouring
    /// terminating delegations and visiting at most `maxDelegations` roles.
    public mutating func targetInfo(_ path: String) async throws(TrustError) -> TargetFile? {
        var toVisit: [(role: String, delegator: String)] = [(Role.targets, Role.root)]
        var visited = Set<String>()
        while let (role, delegator) = toVisit.popLast(), visited.count < limits.maxDelegations {
            if visited.contains(role) { continue }
            let metadata = try await loadTargets(role: role, delegator: delegator)
            if let target = metadata.targets[path] { return target }
            visited.insert(role)
            guard let delegations = metadata.delegations else { continue }
            var children: [(String, String)] = []
            for delegated in delegations.roles where delegated.isDelegated(path) {
                children.append((delegated.name, role))
                if delegated.terminating {
                    toVisit.removeAll()
                    break
                }
            }
            toVisit.append(contentsOf: children.reversed())
        }
        return nil
    }

    /// Where a target lives on the target server: with consistent snapshots
    /// `dir/<hash>.<name>` (the sha256 if listed), else its path.
    public func remotePath(of target: TargetFile) -> String {
        guard trusted?.root.consistentSnapshot == true else { return target.path }
        let hash = target.hashes["sha256"] ?? target.hashes.sorted { $0.key < $1.key }.first!.value
        if let slash = target.path.lastIndex(of: "/") {
            return "\(target.path[...slash])\(hash).\(target.path[target.path.index(after: slash)...])"
        }
        return "\(hash).\(target.path)"
    }

    /// Downloads a target (at most its signed length) and checks length and hashes.
    public func download(_ target: TargetFile) async throws(TrustError) -> [UInt8] {
        let bytes = try await targetFiles.fetch(remotePath(of: target), maxLength: target.length)
        try TrustedMetadataSet.checkBytes(bytes, file: target.path, length: target.length, hashes: target.hashes)
        return bytes
    }

    /// Percent-encodes a role name for use in a file name (python-tuf: `quote(role, "")`).
    public static func encode(_ role: String) -> String {
        PercentEncoding.encode(role)
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters (and any extra allowed ones).
public enum PercentEncoding {
    public static func encode(_ text: some StringProtocol, alsoAllowed: String = "") -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(Unicode.Scalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c) || alsoAllowed.contains(c)) {
                out.append(c)
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}
