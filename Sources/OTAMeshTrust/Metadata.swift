import Crypto
import OTAMeshCommon

/// Top-level role names.
public enum Role {
    public static let root = "root"
    public static let timestamp = "timestamp"
    public static let snapshot = "snapshot"
    public static let targets = "targets"
}

/// One signature of a metadata envelope.
public struct MetadataSignature: Sendable, Hashable {
    public let keyID: String
    public let signature: [UInt8]

    public init(keyID: String, signature: [UInt8]) {
        self.keyID = keyID
        self.signature = signature
    }
}

/// The keys and threshold a role requires.
public struct RoleKeys: Sendable, Hashable {
    public let keyIDs: [String]
    public let threshold: Int
}

/// Fields every role's `signed` part carries.
public struct CommonFields: Sendable, Hashable {
    public let type: String
    public let specVersion: String
    public let version: Int64
    public let expires: String
    /// `expires` as seconds since the Unix epoch.
    public let expiresAt: Int64
}

/// A file a snapshot or timestamp lists (`meta` entries): version, and optionally length and hashes.
public struct MetaFile: Sendable, Hashable {
    public let version: Int64
    public let length: Int64?
    public let hashes: [String: String]?
}

/// A target a targets role lists.
public struct TargetFile: Sendable, Hashable {
    public let path: String
    public let length: Int64
    public let hashes: [String: String]
    public let custom: JSONValue?

    public init(path: String, length: Int64, hashes: [String: String], custom: JSONValue?) {
        self.path = path
        self.length = length
        self.hashes = hashes
        self.custom = custom
    }
}

/// A delegation from a targets role.
public struct DelegatedRole: Sendable, Hashable {
    public let name: String
    public let keys: RoleKeys
    public let terminating: Bool
    public let paths: [String]?
    public let pathHashPrefixes: [String]?

    /// True when this role is trusted for `target` (spec §5.6.7.2.3: glob paths, where `*` does
    /// not cross `/`; or a prefix of the SHA-256 of the path).
    public func isDelegated(_ target: String) -> Bool {
        if let paths {
            return paths.contains { Glob.matches(pattern: $0, path: target) }
        }
        if let prefixes = pathHashPrefixes {
            let digest = hexString(SHA256.hash(data: Array(target.utf8)))
            return prefixes.contains { digest.hasPrefix($0) }
        }
        return false
    }
}

/// Delegations of a targets role.
public struct Delegations: Sendable, Hashable {
    public let keys: [String: TUFKey]
    public let roles: [DelegatedRole]
}

/// A parsed, not yet verified, metadata file: the `signed` value, its canonical bytes and the signatures.
public struct Envelope: Sendable {
    public let signed: JSONValue
    public let canonicalSigned: [UInt8]
    public let signatures: [MetadataSignature]
    public let common: CommonFields

    /// Parses a metadata file whose `_type` must be `expectedType`.
    public init(bytes: [UInt8], file: String, expectedType: String) throws(TrustError) {
        let json: JSONValue
        do { json = try JSONValue.parse(bytes) } catch { throw .malformed(file: file, reason: error.description) }
        guard let signed = json["signed"], signed.objectValue != nil else { throw .malformed(file: file, reason: "no signed object") }
        guard let signatureList = json["signatures"]?.arrayValue else { throw .malformed(file: file, reason: "no signatures array") }
        var signatures: [MetadataSignature] = []
        for entry in signatureList {
            guard let keyID = entry["keyid"]?.stringValue, let sigHex = entry["sig"]?.stringValue else {
                throw .malformed(file: file, reason: "signature needs keyid and sig")
            }
            guard !signatures.contains(where: { $0.keyID == keyID }) else {
                throw .malformed(file: file, reason: "two signatures by key id \(keyID)")
            }
            // A signature that is not hex can never verify; keep it as empty so it counts as invalid.
            signatures.append(MetadataSignature(keyID: keyID, signature: Hex.decode(sigHex) ?? []))
        }
        guard let type = signed["_type"]?.stringValue else { throw .malformed(file: file, reason: "no _type") }
        guard type == expectedType else { throw .wrongType(file: file, expected: expectedType, found: type) }
        guard let specVersion = signed["spec_version"]?.stringValue else { throw .malformed(file: file, reason: "no spec_version") }
        let specMajor = specVersion.split(separator: ".").first.flatMap { Int($0) }
        guard specMajor == 1 else { throw .malformed(file: file, reason: "unsupported spec_version \(specVersion)") }
        guard let version = signed["version"]?.integerValue, version >= 1 else {
            throw .malformed(file: file, reason: "version must be an integer ≥ 1")
        }
        guard let expires = signed["expires"]?.stringValue, let expiresAt = ISOTime.parse(expires) else {
            throw .malformed(file: file, reason: "expires must be YYYY-MM-DDTHH:MM:SSZ")
        }
        self.signed = signed
        self.canonicalSigned = signed.canonicalBytes
        self.signatures = signatures
        self.common = CommonFields(type: type, specVersion: specVersion, version: version, expires: expires, expiresAt: expiresAt)
    }

    /// Counts signatures over the canonical `signed` bytes by distinct keys of `role` and
    /// throws unless the threshold is met. A key listed under two ids counts once.
    public func verify(role: String, keys: RoleKeys, keyring: [String: TUFKey]) throws(TrustError) {
        var signers = Set<String>()
        for signature in signatures where keys.keyIDs.contains(signature.keyID) {
            guard let key = keyring[signature.keyID], !signers.contains(key.identity) else { continue }
            if key.verify(signature: signature.signature, message: canonicalSigned) { signers.insert(key.identity) }
        }
        guard signers.count >= keys.threshold else { throw .threshold(role: role, valid: signers.count, threshold: keys.threshold) }
    }
}

/// Root metadata.
public struct RootMetadata: Sendable {
    public let envelope: Envelope
    public let consistentSnapshot: Bool
    public let keys: [String: TUFKey]
    public let roles: [String: RoleKeys]
    public var version: Int64 { envelope.common.version }

    public init(bytes: [UInt8], file: String = "root.json") throws(TrustError) {
        envelope = try Envelope(bytes: bytes, file: file, expectedType: Role.root)
        let signed = envelope.signed
        consistentSnapshot = signed["consistent_snapshot"]?.boolValue ?? false
        keys = try Parse.keys(signed["keys"], file: file)
        guard let roleObject = signed["roles"]?.objectValue else { throw .malformed(file: file, reason: "no roles") }
        var roles: [String: RoleKeys] = [:]
        for name in [Role.root, Role.timestamp, Role.snapshot, Role.targets] {
            guard let role = roleObject[name] else { throw .malformed(file: file, reason: "no \(name) role") }
            roles[name] = try Parse.roleKeys(role, file: file, context: name)
        }
        self.roles = roles
    }

    /// Verifies this root (or a successor) is signed by `role` of this root.
    public func verify(_ other: Envelope, role: String) throws(TrustError) {
        guard let roleKeys = roles[role] else { throw .malformed(file: "root.json", reason: "no \(role) role") }
        try other.verify(role: role, keys: roleKeys, keyring: keys)
    }
}

/// Timestamp metadata.
public struct TimestampMetadata: Sendable {
    public let envelope: Envelope
    public let snapshotMeta: MetaFile
    public var version: Int64 { envelope.common.version }

    public init(bytes: [UInt8], file: String = "timestamp.json") throws(TrustError) {
        envelope = try Envelope(bytes: bytes, file: file, expectedType: Role.timestamp)
        guard let meta = envelope.signed["meta"]?.objectValue, let entry = meta["snapshot.json"] else {
            throw .malformed(file: file, reason: "meta must list snapshot.json")
        }
        snapshotMeta = try Parse.metaFile(entry, file: file)
    }
}

/// Snapshot metadata.
public struct SnapshotMetadata: Sendable {
    public let envelope: Envelope
    public let meta: [String: MetaFile]
    public var version: Int64 { envelope.common.version }

    public init(bytes: [UInt8], file: String = "snapshot.json") throws(TrustError) {
        envelope = try Envelope(bytes: bytes, file: file, expectedType: Role.snapshot)
        guard let metaObject = envelope.signed["meta"]?.objectValue else { throw .malformed(file: file, reason: "no meta") }
        var meta: [String: MetaFile] = [:]
        for (name, entry) in metaObject.members { meta[name] = try Parse.metaFile(entry, file: file) }
        self.meta = meta
    }
}

/// Targets metadata (top-level or delegated).
public struct TargetsMetadata: Sendable {
    public let envelope: Envelope
    public let targets: [String: TargetFile]
    public let delegations: Delegations?
    public var version: Int64 { envelope.common.version }

    public init(bytes: [UInt8], file: String) throws(TrustError) {
        envelope = try Envelope(bytes: bytes, file: file, expectedType: Role.targets)
        guard let targetObject = envelope.signed["targets"]?.objectValue else { throw .malformed(file: file, reason: "no targets") }
        var targets: [String: TargetFile] = [:]
        for (path, entry) in targetObject.members {
            guard let length = entry["length"]?.integerValue, length >= 0, let hashes = entry["hashes"]?.objectValue, !hashes.isEmpty
            else { throw .malformed(file: file, reason: "target \(path) needs length and hashes") }
            var hashMap: [String: String] = [:]
            for (algorithm, value) in hashes.members {
                guard let hex = value.stringValue else { throw .malformed(file: file, reason: "target \(path) hash \(algorithm) is not a string") }
                hashMap[algorithm] = hex
            }
            targets[path] = TargetFile(path: path, length: length, hashes: hashMap, custom: entry["custom"])
        }
        self.targets = targets
        if let delegationObject = envelope.signed["delegations"] {
            let keys = try Parse.keys(delegationObject["keys"], file: file)
            guard let roleList = delegationObject["roles"]?.arrayValue else { throw .malformed(file: file, reason: "delegations need roles") }
            var roles: [DelegatedRole] = []
            for role in roleList {
                guard let name = role["name"]?.stringValue else { throw .malformed(file: file, reason: "delegated role without name") }
                guard !roles.contains(where: { $0.name == name }) else { throw .malformed(file: file, reason: "delegated role \(name) listed twice") }
                let roleKeys = try Parse.roleKeys(role, file: file, context: name)
                let paths = role["paths"]?.arrayValue?.compactMap(\.stringValue)
                let prefixes = role["path_hash_prefixes"]?.arrayValue?.compactMap(\.stringValue)
                guard (paths == nil) != (prefixes == nil) else {
                    throw .malformed(file: file, reason: "delegated role \(name) needs exactly one of paths, path_hash_prefixes")
                }
                roles.append(
                    DelegatedRole(
                        name: name, keys: roleKeys, terminating: role["terminating"]?.boolValue ?? false,
                        paths: paths, pathHashPrefixes: prefixes))
            }
            delegations = Delegations(keys: keys, roles: roles)
        } else {
            delegations = nil
        }
    }
}

/// Shared field parsers.
enum Parse {
    static func keys(_ value: JSONValue?, file: String) throws(TrustError) -> [String: TUFKey] {
        guard let object = value?.objectValue else { throw .malformed(file: file, reason: "keys must be an object") }
        var keys: [String: TUFKey] = [:]
        for (id, json) in object.members {
            // Key ids are taken as listed, not recomputed: real repositories carry ids computed
            // under older rules (sigstore's root v11, keyid_hash_algorithms), and the TUF
            // conformance suite expects them to load. One key cannot pose as two: thresholds
            // count distinct key material (`TUFKey.identity`), not ids.
            keys[id] = try TUFKey(json: json, context: file)
        }
        return keys
    }

    static func roleKeys(_ value: JSONValue, file: String, context: String) throws(TrustError) -> RoleKeys {
        guard let ids = value["keyids"]?.arrayValue?.compactMap(\.stringValue), let threshold = value["threshold"]?.integerValue,
            threshold >= 1, threshold <= 1_000
        else { throw .malformed(file: file, reason: "role \(context) needs keyids and a threshold ≥ 1") }
        guard Set(ids).count == ids.count else { throw .malformed(file: file, reason: "role \(context) lists a key id twice") }
        return RoleKeys(keyIDs: ids, threshold: Int(threshold))
    }

    static func metaFile(_ value: JSONValue, file: String) throws(TrustError) -> MetaFile {
        guard let version = value["version"]?.integerValue, version >= 1 else {
            throw .malformed(file: file, reason: "meta entry needs version ≥ 1")
        }
        let length = value["length"]?.integerValue
        if let length, length < 0 { throw .malformed(file: file, reason: "negative length") }
        var hashes: [String: String]?
        if let object = value["hashes"]?.objectValue {
            var map: [String: String] = [:]
            for (algorithm, value) in object.members {
                guard let hex = value.stringValue else { throw .malformed(file: file, reason: "hash \(algorithm) is not a string") }
                map[algorithm] = hex
            }
            hashes = map
        }
        return MetaFile(version: version, length: length, hashes: hashes)
    }
}

/// `fnmatch`-style matching for delegation paths: `*` matches any run of characters except `/`,
/// `?` one such character; everything else literally.
public enum Glob {
    public static func matches(pattern: String, path: String) -> Bool {
        let p = Array(pattern.unicodeScalars)
        let s = Array(path.unicodeScalars)
        // Segment count must agree: "*" never crosses "/".
        guard p.filter({ $0 == "/" }).count == s.filter({ $0 == "/" }).count else { return false }
        return match(p[...], s[...])
    }

    private static func match(_ p: ArraySlice<Unicode.Scalar>, _ s: ArraySlice<Unicode.Scalar>) -> Bool {
        guard let first = p.first else { return s.isEmpty }
        switch first {
        case "*":
            var rest = s
            while true {
                if match(p.dropFirst(), rest) { return true }
                guard let c = rest.first, c != "/" else { return false }
                rest = rest.dropFirst()
            }
        case "?":
            guard let c = s.first, c != "/" else { return false }
            return match(p.dropFirst(), s.dropFirst())
        default:
            guard s.first == first else { return false }
            return match(p.dropFirst(), s.dropFirst())
        }
    }
}

/// ISO 8601 UTC timestamps as TUF writes them (`2030-01-01T00:00:00Z`).
public enum ISOTime {
    /// Seconds since the Unix epoch, or nil when the text is not `YYYY-MM-DDTHH:MM:SSZ`.
    public static func parse(_ text: String) -> Int64? {
        let c = Array(text.utf8)
        guard c.count == 20, c[4] == 45, c[7] == 45, c[10] == 84, c[13] == 58, c[16] == 58, c[19] == 90 else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            guard c[range].allSatisfy({ (48...57).contains($0) }) else { return nil }
            return Int64(String(decoding: c[range], as: UTF8.self))
        }
        guard let y = number(0..<4), let m = number(5..<7), let d = number(8..<10), let hh = number(11..<13),
            let mm = number(14..<16), let ss = number(17..<19), (1...12).contains(m), (1...31).contains(d),
            hh < 24, mm < 60, ss < 61
        else { return nil }
        return daysFromCivil(y, m, d) * 86_400 + hh * 3_600 + mm * 60 + ss
    }

    /// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
    public static func format(_ seconds: Int64) -> String {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let rest = seconds - days * 86_400
        let (y, m, d) = civilFromDays(days)
        func pad(_ v: Int64, _ w: Int) -> String { let t = String(v); return String(repeating: "0", count: max(0, w - t.count)) + t }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(rest / 3600, 2)):\(pad(rest % 3600 / 60, 2)):\(pad(rest % 60, 2))Z"
    }

    // Howard Hinnant's civil calendar algorithms.
    static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// (year, month, day) of a day number counted from 1970-01-01.
    public static func civilFromDays(_ days: Int64) -> (Int64, Int64, Int64) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (m <= 2 ? yoe + era * 400 + 1 : yoe + era * 400, m, d)
    }
}
