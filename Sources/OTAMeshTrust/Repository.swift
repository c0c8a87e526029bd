import Crypto
import OTAMeshCommon

#if canImport(Glibc)
import Glibc
#endif

/// How long each role's metadata stays valid after signing, in seconds.
public struct ExpiryPolicy: Sendable, Equatable {
    public var root: Int64 = 365 * 86_400
    public var targets: Int64 = 90 * 86_400
    public var snapshot: Int64 = 7 * 86_400
    public var timestamp: Int64 = 86_400

    public init() {}

    func seconds(for role: String) -> Int64 {
        switch role {
        case Role.root: root
        case Role.snapshot: snapshot
        case Role.timestamp: timestamp
        default: targets
        }
    }

    var json: JSONValue {
        .object(
            [
                "root": .integer(root), "targets": .integer(targets), "snapshot": .integer(snapshot), "timestamp": .integer(timestamp),
            ] as KeyValuePairs<String, JSONValue>)
    }

    init(json: JSONValue?) {
        if let value = json?["root"]?.integerValue { root = value }
        if let value = json?["targets"]?.integerValue { targets = value }
        if let value = json?["snapshot"]?.integerValue { snapshot = value }
        if let value = json?["timestamp"]?.integerValue { timestamp = value }
    }
}

/// A TUF repository an admin keeps on an offline machine (`otamesh release …`):
///
///     keys/<role>-<n>.pem     private keys (0600), PEM as openssl writes them
///     policy.json             expiry per role
///     metadata/               current signed metadata: N.root.json for every root, root.json,
///                             targets.json, snapshot.json, timestamp.json
///     targets/<path>          the target files
///
/// Every change re-signs the roles it affects (targets → snapshot → timestamp) with new versions.
/// `publish` writes what a client fetches: versioned metadata and `<sha256>.<name>` targets.
public struct Repository {
    public let directory: String
    public let policy: ExpiryPolicy
    public let specVersion = "1.0.31"

    var metadataDir: String { "\(directory)/metadata" }
    var keysDir: String { "\(directory)/keys" }
    var targetsDir: String { "\(directory)/targets" }

    /// Creates a repository with root v1 and empty targets. `keys` supplies existing signers per
    /// role (e.g. openssl-made); missing roles get new keys of `keyType`.
    public static func initialise(
        at directory: String, keyType: KeyFile.KeyType = .ed25519, rootKeyCount: Int = 1, rootThreshold: Int = 1,
        keys supplied: [String: [TUFSigner]] = [:], policy: ExpiryPolicy = ExpiryPolicy(), now: Int64
    ) throws -> Repository {
        guard !FileSystem.exists("\(directory)/metadata/root.json") else {
            throw TrustError.malformed(file: directory, reason: "already holds a repository (metadata/root.json exists)")
        }
        guard rootThreshold >= 1, rootThreshold <= max(rootKeyCount, supplied[Role.root]?.count ?? 0) else {
            throw TrustError.malformed(file: "root.json", reason: "root threshold \(rootThreshold) needs at least as many root keys")
        }
        for sub in ["", "/keys", "/metadata", "/targets"] { try FileSystem.makeDirectory(directory + sub, mode: sub == "/keys" ? 0o700 : 0o755) }
        let repository = Repository(directory: directory, policy: policy)
        try FileSystem.write("\(directory)/policy.json", policy.json.prettyBytes)
        var roleKeys: [String: [TUFSigner]] = [:]
        for role in [Role.root, Role.targets, Role.snapshot, Role.timestamp] {
            var signers = supplied[role] ?? []
            let wanted = role == Role.root ? rootKeyCount : 1
            while signers.count < wanted { signers.append(try KeyFile.generate(keyType)) }
            roleKeys[role] = signers
            for (index, signer) in signers.enumerated() {
                try FileSystem.write("\(directory)/keys/\(role)-\(index + 1).pem", Array(KeyFile.pem(signer).utf8), mode: 0o600)
            }
        }
        var keys = JSONObject()
        var roles = JSONObject()
        for (role, signers) in roleKeys {
            for signer in signers { keys[signer.publicKey.computedKeyID] = signer.publicKey.json }
            roles[role] = .object(
                [
                    "keyids": .array(signers.map { .string($0.publicKey.computedKeyID) }),
                    "threshold": .integer(Int64(role == Role.root ? rootThreshold : 1)),
                ] as KeyValuePairs<String, JSONValue>)
        }
        var root = repository.common(Role.root, version: 1, now: now)
        root["consistent_snapshot"] = .bool(true)
        root["keys"] = .object(keys)
        root["roles"] = .object(roles)
        let rootFile = try Self.envelope(.object(root), signers: roleKeys[Role.root]!)
        try FileSystem.write("\(directory)/metadata/1.root.json", rootFile)
        try FileSystem.write("\(directory)/metadata/root.json", rootFile)
        var targets = repository.common(Role.targets, version: 1, now: now)
        targets["targets"] = .object(JSONObject())
        try repository.store(Role.targets, signed: .object(targets))
        try repository.resignSnapshotAndTimestamp(now: now)
        return repository
    }

    /// Opens an existing repository.
    public init(directory: String) throws(TrustError) {
        guard FileSystem.exists("\(directory)/metadata/root.json") else {
            throw .malformed(file: directory, reason: "no repository here (run otamesh release init)")
        }
        let policyBytes = try? DirectoryFiles(root: directory).read("policy.json", maxLength: 1 << 20)
        self.init(directory: directory, policy: ExpiryPolicy(json: policyBytes.flatMap { try? JSONValue.parse($0) }))
    }

    init(directory: String, policy: ExpiryPolicy) {
        self.directory = directory
        self.policy = policy
    }

    // MARK: Changes

    /// Adds (or replaces) a target: records its length, SHA-256 and SHA-512 and custom fields, keeps a
    /// copy, and re-signs targets, snapshot and timestamp.
    public func add(bytes: [UInt8], path: String, custom: JSONValue?, now: Int64) throws {
        try Self.checkTargetPath(path)
        var entry = JSONObject()
        entry["length"] = .integer(Int64(bytes.count))
        entry["hashes"] = .object(
            [
                "sha256": .string(hexString(SHA256.hash(data: bytes))), "sha512": .string(hexString(SHA512.hash(data: bytes))),
            ] as KeyValuePairs<String, JSONValue>)
        if let custom { entry["custom"] = custom }
        let destination = "\(targetsDir)/\(path)"
        try FileSystem.makeDirectories(for: destination)
        try FileSystem.write(destination, bytes)
        var signed = try current(Role.targets)
        var targets = signed["targets"]?.objectValue ?? JSONObject()
        targets[path] = .object(entry)
        try bump(&signed, role: Role.targets, now: now)
        signed = signed.setting("targets", .object(targets))
        try store(Role.targets, signed: signed)
        try resignSnapshotAndTimestamp(now: now)
    }

    /// Sets (or, with nil, removes) one custom field of a target already listed, keeping its
    /// bytes, length and hashes, and re-signs targets, snapshot and timestamp.
    public func setCustom(path: String, key: String, value: JSONValue?, now: Int64) throws {
        var signed = try current(Role.targets)
        var targets = signed["targets"]?.objectValue ?? JSONObject()
        guard var entry = targets[path]?.objectValue else { throw TrustError.targetNotFound(path: path) }
        var custom = entry["custom"]?.objectValue ?? JSONObject()
        custom[key] = value
        entry["custom"] = .object(custom)
        targets[path] = .object(entry)
        try bump(&signed, role: Role.targets, now: now)
        signed = signed.setting("targets", .object(targets))
        try store(Role.targets, signed: signed)
        try resignSnapshotAndTimestamp(now: now)
    }

    /// Removes a target and re-signs.
    public func remove(path: String, now: Int64) throws {
        var signed = try current(Role.targets)
        var targets = signed["targets"]?.objectValue ?? JSONObject()
        guard targets[path] != nil else { throw TrustError.targetNotFound(path: path) }
        targets[path] = nil
        try bump(&signed, role: Role.targets, now: now)
        signed = signed.setting("targets", .object(targets))
        try store(Role.targets, signed: signed)
        try resignSnapshotAndTimestamp(now: now)
        unlink("\(targetsDir)/\(path)")
    }

    /// Renews freshness: new snapshot and timestamp versions with fresh expiry, signed by the keys
    /// the site holds itself (no root or targets key needed).
    public func refreshTimestamp(now: Int64) throws {
        try resignSnapshotAndTimestamp(now: now)
    }

    /// The targets listed now.
    public func targets() throws -> [String: TargetFile] {
        let bytes = try DirectoryFiles(root: metadataDir).read("targets.json", maxLength: 64 << 20)
        return try TargetsMetadata(bytes: bytes, file: "targets.json").targets
    }

    /// Writes what clients fetch: `metadata/` (every `N.root.json`, `timestamp.json`,
    /// `N.snapshot.json`, `N.targets.json`) and `targets/` (`dir/<sha256>.<name>`).
    public func publish(to output: String) throws {
        if let (role, valid, threshold) = try unsignedRoles().first {
            throw TrustError.threshold(role: role, valid: valid, threshold: threshold)
        }
        try FileSystem.makeDirectory(output)
        try FileSystem.makeDirectory("\(output)/metadata")
        try FileSystem.makeDirectory("\(output)/targets")
        let source = DirectoryFiles(root: metadataDir)
        for name in FileSystem.list(metadataDir) where name.hasSuffix(".root.json") {
            try FileSystem.write("\(output)/metadata/\(name)", try source.read(name, maxLength: 64 << 20))
        }
        for role in [Role.targets, Role.snapshot] {
            let bytes = try source.read("\(role).json", maxLength: 64 << 20)
            let version = try Envelope(bytes: bytes, file: "\(role).json", expectedType: role).common.version
            try FileSystem.write("\(output)/metadata/\(version).\(role).json", bytes)
        }
        try FileSystem.write("\(output)/metadata/timestamp.json", try source.read("timestamp.json", maxLength: 1 << 20))
        for (path, target) in try targets() {
            let bytes = try DirectoryFiles(root: targetsDir).read(path, maxLength: target.length)
            guard let hash = target.hashes["sha256"] else { continue }
            let slash = path.lastIndex(of: "/")
            let published = slash.map { "\(path[...$0])\(hash).\(path[path.index(after: $0)...])" } ?? "\(hash).\(path)"
            let destination = "\(output)/targets/\(published)"
            try FileSystem.makeDirectories(for: destination)
            try FileSystem.write(destination, bytes)
        }
    }

    // MARK: Internals

    func common(_ role: String, version: Int64, now: Int64) -> JSONObject {
        var signed = JSONObject()
        signed["_type"] = .string(role)
        signed["spec_version"] = .string(specVersion)
        signed["version"] = .integer(version)
        signed["expires"] = .string(ISOTime.format(now + policy.seconds(for: role)))
        return signed
    }

    func current(_ role: String) throws -> JSONValue {
        let bytes = try DirectoryFiles(root: metadataDir).read("\(role).json", maxLength: 64 << 20)
        guard let signed = try JSONValue.parse(bytes)["signed"] else { throw TrustError.malformed(file: "\(role).json", reason: "no signed") }
        return signed
    }

    func bump(_ signed: inout JSONValue, role: String, now: Int64) throws {
        let version = (signed["version"]?.integerValue ?? 0) + 1
        signed = signed.setting("version", .integer(version)).setting("expires", .string(ISOTime.format(now + policy.seconds(for: role))))
    }

    func resignSnapshotAndTimestamp(now: Int64) throws {
        let targetsBytes = try DirectoryFiles(root: metadataDir).read("targets.json", maxLength: 64 << 20)
        let targetsVersion = try Envelope(bytes: targetsBytes, file: "targets.json", expectedType: Role.targets).common.version
        let snapshotVersion = ((try? current(Role.snapshot))?["version"]?.integerValue ?? 0) + 1
        var snapshot = common(Role.snapshot, version: snapshotVersion, now: now)
        snapshot["meta"] = .object(["targets.json": Self.metaEntry(version: targetsVersion, bytes: targetsBytes)] as KeyValuePairs<String, JSONValue>)
        let snapshotBytes = try store(Role.snapshot, signed: .object(snapshot))
        try resignTimestamp(snapshotBytes: snapshotBytes, snapshotVersion: snapshotVersion, now: now)
    }

    func resignTimestamp(snapshotBytes: [UInt8], snapshotVersion: Int64, now: Int64) throws {
        let timestampVersion = ((try? current(Role.timestamp))?["version"]?.integerValue ?? 0) + 1
        var timestamp = common(Role.timestamp, version: timestampVersion, now: now)
        timestamp["meta"] = .object(["snapshot.json": Self.metaEntry(version: snapshotVersion, bytes: snapshotBytes)] as KeyValuePairs<String, JSONValue>)
        try store(Role.timestamp, signed: .object(timestamp))
    }

    static func metaEntry(version: Int64, bytes: [UInt8]) -> JSONValue {
        .object(
            [
                "version": .integer(version), "length": .integer(Int64(bytes.count)),
                "hashes": .object(["sha256": .string(hexString(SHA256.hash(data: bytes)))] as KeyValuePairs<String, JSONValue>),
            ] as KeyValuePairs<String, JSONValue>)
    }

    /// Signs `signed` with every key of `role` found in keys/ and writes metadata/<role>.json.
    /// A role whose threshold needs keys kept offline is written below its threshold; add the
    /// missing signatures with ``sign(role:with:now:)`` — ``publish(to:)`` refuses until then.
    @discardableResult
    func store(_ role: String, signed: JSONValue) throws -> [UInt8] {
        let root = try RootMetadata(bytes: DirectoryFiles(root: metadataDir).read("root.json", maxLength: 64 << 20))
        guard let ids = root.roles[role]?.keyIDs else { throw TrustError.malformed(file: "root.json", reason: "no \(role) role") }
        let signers = try loadSigners().filter { ids.contains($0.publicKey.computedKeyID) }
        let bytes = try Self.envelope(signed, signers: signers)
        try FileSystem.write("\(metadataDir)/\(role).json", bytes)
        return bytes
    }

    /// Roles whose current metadata lacks signatures, with how many valid ones each has.
    public func unsignedRoles() throws -> [(role: String, valid: Int, threshold: Int)] {
        let source = DirectoryFiles(root: metadataDir)
        let root = try RootMetadata(bytes: source.read("root.json", maxLength: 64 << 20))
        var missing: [(String, Int, Int)] = []
        var checks: [(String, RootMetadata)] = [Role.root, Role.targets, Role.snapshot, Role.timestamp].map { ($0, root) }
        if root.version > 1 {
            // The previous root's keys must also vouch for this one (the client's N→N+1 step).
            checks.insert((Role.root, try RootMetadata(bytes: source.read("\(root.version - 1).root.json", maxLength: 64 << 20))), at: 0)
        }
        for (role, verifier) in checks {
            let bytes = try source.read("\(role).json", maxLength: 64 << 20)
            let envelope = try Envelope(bytes: bytes, file: "\(role).json", expectedType: role)
            do { try verifier.verify(envelope, role: role) } catch {
                if case let .threshold(_, valid, threshold) = error { missing.append((role, valid, threshold)) } else { throw error }
            }
        }
        return missing
    }

    /// Adds a signature by `signer` (a key kept outside keys/, e.g. offline) to a role's current
    /// metadata; targets and snapshot changes cascade to snapshot and timestamp.
    public func sign(role: String, with signer: TUFSigner, now: Int64) throws {
        let source = DirectoryFiles(root: metadataDir)
        let root = try RootMetadata(bytes: source.read("root.json", maxLength: 64 << 20))
        let id = signer.publicKey.computedKeyID
        var allowed = Set(root.roles[role]?.keyIDs ?? [])
        if role == Role.root, root.version > 1 {
            allowed.formUnion(try RootMetadata(bytes: source.read("\(root.version - 1).root.json", maxLength: 64 << 20)).roles[Role.root]?.keyIDs ?? [])
        }
        guard allowed.contains(id) else {
            throw TrustError.malformed(file: "\(role).json", reason: "key \(id) is not a \(role) key in root.json")
        }
        let bytes = try source.read("\(role).json", maxLength: 64 << 20)
        let envelope = try Envelope(bytes: bytes, file: "\(role).json", expectedType: role)
        var signatures = envelope.signatures.filter { $0.keyID != id }
        signatures.append(MetadataSignature(keyID: id, signature: try signer.sign(envelope.canonicalSigned)))
        let signed = try Self.envelope(envelope.signed, signatures: signatures)
        try FileSystem.write("\(metadataDir)/\(role).json", signed)
        if role == Role.root { try FileSystem.write("\(metadataDir)/\(envelope.common.version).root.json", signed) }
        if role == Role.targets { try resignSnapshotAndTimestamp(now: now) }
        if role == Role.snapshot { try resignTimestamp(snapshotBytes: signed, snapshotVersion: envelope.common.version, now: now) }
    }

    /// Root version N+1 with changed keys or thresholds, signed by the old root's keys and the
    /// new root's keys (both thresholds must be met by keys in keys/ — add offline signatures with
    /// ``sign(role:with:now:)`` before publishing otherwise). Other roles are re-signed.
    @discardableResult
    /// `add` entries with `persist` false (keys the admin keeps elsewhere) sign this rotation
    /// from memory and are not written to keys/.
    public func rotateRoot(
        add: [(role: String, signer: TUFSigner, persist: Bool)], remove: [(role: String, keyID: String)],
        thresholds: [String: Int], now: Int64
    ) throws -> Int64 {
        let source = DirectoryFiles(root: metadataDir)
        let old = try RootMetadata(bytes: source.read("root.json", maxLength: 64 << 20))
        var keys = old.envelope.signed["keys"]?.objectValue ?? JSONObject()
        var roles: [String: RoleKeys] = old.roles
        var existing = FileSystem.list(keysDir).count
        for (role, signer, persist) in add {
            guard let current = roles[role] else { throw TrustError.malformed(file: "root.json", reason: "no role \(role)") }
            let id = signer.publicKey.computedKeyID
            keys[id] = signer.publicKey.json
            if !current.keyIDs.contains(id) { roles[role] = RoleKeys(keyIDs: current.keyIDs + [id], threshold: current.threshold) }
            guard persist else { continue }
            existing += 1
            try FileSystem.write("\(keysDir)/\(role)-\(existing).pem", Array(KeyFile.pem(signer).utf8), mode: 0o600)
        }
        for (role, id) in remove {
            guard let current = roles[role], current.keyIDs.contains(id) else {
                throw TrustError.malformed(file: "root.json", reason: "\(role) has no key \(id)")
            }
            roles[role] = RoleKeys(keyIDs: current.keyIDs.filter { $0 != id }, threshold: current.threshold)
        }
        for (role, threshold) in thresholds {
            guard let current = roles[role] else { throw TrustError.malformed(file: "root.json", reason: "no role \(role)") }
            roles[role] = RoleKeys(keyIDs: current.keyIDs, threshold: threshold)
        }
        var roleObject = JSONObject()
        for (role, value) in roles {
            guard value.threshold >= 1, value.threshold <= value.keyIDs.count else {
                throw TrustError.malformed(file: "root.json", reason: "\(role) threshold \(value.threshold) with \(value.keyIDs.count) keys")
            }
            roleObject[role] = .object(
                ["keyids": .array(value.keyIDs.map { .string($0) }), "threshold": .integer(Int64(value.threshold))]
                    as KeyValuePairs<String, JSONValue>)
        }
        let used = Set(roles.values.flatMap(\.keyIDs))
        for id in keys.keys where !used.contains(id) { keys[id] = nil }
        let version = old.version + 1
        var signed = old.envelope.signed.setting("version", .integer(version))
            .setting("expires", .string(ISOTime.format(now + policy.root)))
        signed = signed.setting("keys", .object(keys)).setting("roles", .object(roleObject))
        let rootSigners = Set(old.roles[Role.root]!.keyIDs + roles[Role.root]!.keyIDs)
        var signers = try loadSigners()
        for (_, signer, persist) in add where !persist { signers.append(signer) }
        var seen = Set<String>()
        signers = signers.filter { rootSigners.contains($0.publicKey.computedKeyID) && seen.insert($0.publicKey.computedKeyID).inserted }
        let bytes = try Self.envelope(signed, signers: signers)
        try FileSystem.write("\(metadataDir)/\(version).root.json", bytes)
        try FileSystem.write("\(metadataDir)/root.json", bytes)
        var targets = try current(Role.targets)
        try bump(&targets, role: Role.targets, now: now)
        try store(Role.targets, signed: targets)
        try resignSnapshotAndTimestamp(now: now)
        return version
    }

    func loadSigners() throws -> [TUFSigner] {
        try FileSystem.list(keysDir).filter { $0.hasSuffix(".pem") }.map { name in
            let bytes = try DirectoryFiles(root: keysDir).read(name, maxLength: 1 << 20)
            return try KeyFile.parse(pem: String(decoding: bytes, as: UTF8.self), file: "keys/\(name)")
        }
    }

    /// `{"signatures": [...], "signed": …}` as pretty JSON.
    public static func envelope(_ signed: JSONValue, signers: [TUFSigner]) throws -> [UInt8] {
        let message = signed.canonicalBytes
        var signatures: [MetadataSignature] = []
        for signer in signers {
            signatures.append(MetadataSignature(keyID: signer.publicKey.computedKeyID, signature: try signer.sign(message)))
        }
        return envelope(signed, signatures: signatures)
    }

    static func envelope(_ signed: JSONValue, signatures: [MetadataSignature]) -> [UInt8] {
        let list: [JSONValue] = signatures.map {
            .object(["keyid": .string($0.keyID), "sig": .string(hexString($0.signature))] as KeyValuePairs<String, JSONValue>)
        }
        return JSONValue.object(["signatures": .array(list), "signed": signed] as KeyValuePairs<String, JSONValue>).prettyBytes
    }

    static func checkTargetPath(_ path: String) throws(TrustError) {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.isEmpty, !path.hasPrefix("/"), !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw .malformed(file: path, reason: "target paths are relative, without empty, . or .. segments")
        }
    }
}

extension JSONValue {
    /// A copy of this object with one member set.
    func setting(_ key: String, _ value: JSONValue) -> JSONValue {
        guard var object = objectValue else { return self }
        object[key] = value
        return .object(object)
    }
}

/// Small file helpers for the repository and bundles (atomic writes via DirectoryPersistence).
public enum FileSystem {
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws(TrustError) {
        if mkdir(path, mode) != 0 && errno != EEXIST {
            throw .fetch(file: path, reason: "cannot create directory: \(String(cString: strerror(errno)))")
        }
    }

    /// Creates every missing parent directory of `file`.
    static func makeDirectories(for file: String) throws(TrustError) {
        var index = file.startIndex
        while let slash = file[file.index(after: index)...].firstIndex(of: "/") {
            try makeDirectory(String(file[..<slash]))
            index = slash
        }
    }

    /// Writes a file atomically, created with `mode` (0600 for private keys).
    public static func write(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws(TrustError) {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        try DirectoryPersistence(directory: dir).save(name, bytes, mode: mode)
    }

    /// Names in a directory, sorted (optionally regular files only); empty when it cannot be read.
    public static func list(_ path: String, regularFilesOnly: Bool = false) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            guard name != "." && name != "..", !regularFilesOnly || entry.pointee.d_type == DT_REG else { continue }
            names.append(name)
        }
        return names.sorted()
    }
}
