import OTAMeshCommon

/// Which admin keys a site trusts to sign operations (rollout plans and controls), and how
/// many must agree: `{"site": "…", "threshold": m, "admins": {keyid: key}, "names": {keyid: name}}`.
///
/// `names` is optional (files from before it load unchanged) and sits beside `admins` rather
/// than inside each key object: a key's id is the hash of its JSON, so a name inside it would
/// give the key another id on gateways that do not know about names.
public struct SiteTrust: Sendable, Equatable {
    public let site: String
    public let threshold: Int
    public let admins: [String: TUFKey]
    /// Admin names by key id (the NAME of `otamesh keys generate --name NAME`); may be empty.
    public let names: [String: String]

    /// Refuses a key listed twice (by id or by key material) and a threshold outside 1…n
    /// distinct keys: a file that says "2 of 2" must need two different admins.
    public init(site: String, threshold: Int, admins: [TUFKey], names: [String: String] = [:], file: String = "site trust") throws(TrustError) {
        var byID: [String: TUFKey] = [:]
        var identities: [String: String] = [:]
        for key in admins {
            let id = key.computedKeyID
            if byID[id] != nil { throw .malformed(file: file, reason: "admin key \(id) is listed twice") }
            if let other = identities[key.identity] {
                throw .malformed(file: file, reason: "admin key \(id) is the same key as \(other), listed twice")
            }
            byID[id] = key
            identities[key.identity] = id
        }
        guard !byID.isEmpty else { throw .malformed(file: file, reason: "lists no admin keys") }
        guard threshold >= 1, threshold <= byID.count else {
            throw .malformed(file: file, reason: "threshold \(threshold) needs 1…\(byID.count) (the number of distinct admin keys listed)")
        }
        for (id, name) in names {
            guard byID[id] != nil else { throw .malformed(file: file, reason: "names key \(id), which is not an admin key") }
            guard !name.isEmpty, name.utf8.count <= 64 else { throw .malformed(file: file, reason: "the name of admin key \(id) must be 1 to 64 bytes") }
        }
        self.site = site
        self.threshold = threshold
        self.admins = byID
        self.names = names
    }

    public init(bytes: [UInt8], file: String) throws(TrustError) {
        let json: JSONValue
        do { json = try JSONValue.parse(bytes) } catch { throw .malformed(file: file, reason: error.description) }
        guard let site = json["site"]?.stringValue, let threshold = json["threshold"]?.integerValue else {
            throw .malformed(file: file, reason: "needs site and threshold")
        }
        let keys = try Parse.keys(json["admins"], file: file)
        var names: [String: String] = [:]
        if let listed = json["names"] {
            guard let object = listed.objectValue else { throw .malformed(file: file, reason: "names must be an object of key id → name") }
            for id in object.keys {
                guard let name = object[id]?.stringValue else { throw .malformed(file: file, reason: "the name of admin key \(id) must be a string") }
                names[id] = name
            }
        }
        // Listed ids are recomputed from the keys (as always); names follow the recomputed id.
        var renamed: [String: String] = [:]
        for (listedID, key) in keys { if let name = names[listedID] { renamed[key.computedKeyID] = name } }
        for (id, _) in names where keys[id] == nil {
            throw .malformed(file: file, reason: "names key \(id), which is not an admin key")
        }
        try self.init(site: site, threshold: Int(clamping: threshold), admins: keys.keys.sorted().compactMap { keys[$0] }, names: renamed, file: file)
    }

    /// The name the site trust file gives the admin key `keyID`, if any.
    public func name(ofKey keyID: String) -> String? { names[keyID] }

    public var json: JSONValue {
        var admins = JSONObject()
        for (id, key) in self.admins { admins[id] = key.json }
        guard !names.isEmpty else {
            return .object(["site": .string(site), "threshold": .integer(Int64(threshold)), "admins": .object(admins)] as KeyValuePairs<String, JSONValue>)
        }
        var named = JSONObject()
        for (id, name) in names { named[id] = .string(name) }
        return .object(
            [
                "site": .string(site), "threshold": .integer(Int64(threshold)), "admins": .object(admins), "names": .object(named),
            ] as KeyValuePairs<String, JSONValue>)
    }
}

/// An admin-signed operation: `{"signed": {"_type": "otamesh-command", "site", "sequence",
/// "kind", "issued", "payload"}, "signatures": [{"keyid", "sig"}]}`. Signatures cover the
/// canonical JSON of `signed`; m-of-n admins may sign the same envelope.
public struct SignedCommand: Sendable {
    public static let type = "otamesh-command"

    public let site: String
    /// Orders commands of one stream (e.g. one rollout's controls): highest wins, lower or
    /// equal to what was already accepted is a replay.
    public let sequence: Int64
    /// What to do, e.g. `rollout.plan`, `rollout.pause`.
    public let kind: String
    public let issued: String
    public let payload: JSONValue
    public let signed: JSONValue
    public private(set) var signatures: [MetadataSignature]

    /// A new, unsigned command.
    public init(site: String, sequence: Int64, kind: String, payload: JSONValue, issued: Int64) {
        self.site = site
        self.sequence = sequence
        self.kind = kind
        self.issued = ISOTime.format(issued)
        self.payload = payload
        self.signed = .object(
            [
                "_type": .string(Self.type), "site": .string(site), "sequence": .integer(sequence), "kind": .string(kind),
                "issued": .string(self.issued), "payload": payload,
            ] as KeyValuePairs<String, JSONValue>)
        self.signatures = []
    }

    /// Parses an envelope (any number of signatures; verification is separate).
    public init(bytes: [UInt8], file: String) throws(TrustError) {
        let json: JSONValue
        do { json = try JSONValue.parse(bytes) } catch { throw .malformed(file: file, reason: error.description) }
        guard let signed = json["signed"], signed["_type"]?.stringValue == Self.type else {
            throw .wrongType(file: file, expected: Self.type, found: json["signed"]?["_type"]?.stringValue ?? "none")
        }
        guard let site = signed["site"]?.stringValue, let sequence = signed["sequence"]?.integerValue, sequence >= 1,
            let kind = signed["kind"]?.stringValue, let issued = signed["issued"]?.stringValue, ISOTime.parse(issued) != nil,
            let payload = signed["payload"]
        else { throw .malformed(file: file, reason: "command needs site, sequence ≥ 1, kind, issued and payload") }
        var signatures: [MetadataSignature] = []
        for entry in json["signatures"]?.arrayValue ?? [] {
            guard let id = entry["keyid"]?.stringValue, let sig = entry["sig"]?.stringValue else {
                throw .malformed(file: file, reason: "signature needs keyid and sig")
            }
            signatures.append(MetadataSignature(keyID: id, signature: Hex.decode(sig) ?? []))
        }
        self.site = site
        self.sequence = sequence
        self.kind = kind
        self.issued = issued
        self.payload = payload
        self.signed = signed
        self.signatures = signatures
    }

    /// An envelope from its parts (as replicated by gossip); same checks as ``init(bytes:file:)``.
    public init(signed: JSONValue, signatures: [MetadataSignature]) throws(TrustError) {
        let envelope = JSONValue.object(["signed": signed, "signatures": .array([])] as KeyValuePairs<String, JSONValue>)
        try self.init(bytes: envelope.compactBytes, file: "command")
        self.signatures = signatures
    }

    /// The envelope as compact JSON (what gossip carries): the canonical form, control characters
    /// escaped so it parses back (signatures are over the canonical form of `signed`, not these bytes).
    public var compactBytes: [UInt8] { envelope.compactBytes }

    /// Adds one admin's signature (replacing an earlier one by the same key).
    public mutating func sign(with signer: TUFSigner) throws {
        let id = signer.publicKey.computedKeyID
        signatures.removeAll { $0.keyID == id }
        signatures.append(MetadataSignature(keyID: id, signature: try signer.sign(signed.canonicalBytes)))
    }

    /// The envelope as JSON text.
    public var bytes: [UInt8] { envelope.prettyBytes }

    var envelope: JSONValue {
        JSONValue.object(
            [
                "signed": signed,
                "signatures": .array(
                    signatures.map {
                        .object(["keyid": .string($0.keyID), "sig": .string(hexString($0.signature))] as KeyValuePairs<String, JSONValue>)
                    }),
            ] as KeyValuePairs<String, JSONValue>)
    }

    /// Accepts the command only if it is for this site, signed by at least `threshold` distinct
    /// trusted admin keys, and newer than `lastSequence` (the highest already accepted).
    public func verify(trust: SiteTrust, lastSequence: Int64?) throws(TrustError) {
        guard site == trust.site else { throw .wrongSite(expected: trust.site, found: site) }
        let envelope = try Envelope(unchecked: signed, signatures: signatures)
        do {
            try envelope.verify(role: kind, keys: RoleKeys(keyIDs: Array(trust.admins.keys), threshold: trust.threshold), keyring: trust.admins)
        } catch {
            if case let .threshold(_, valid, threshold) = error {
                throw .unsignedCommand(kind: kind, sequence: sequence, valid: valid, threshold: threshold)
            }
            throw error
        }
        if let lastSequence, sequence <= lastSequence {
            throw .replayedCommand(kind: kind, accepted: lastSequence, offered: sequence)
        }
    }
}

extension Envelope {
    /// An envelope around any signed JSON (not TUF metadata), for threshold verification.
    init(unchecked signed: JSONValue, signatures: [MetadataSignature]) throws(TrustError) {
        self.signed = signed
        self.canonicalSigned = signed.canonicalBytes
        self.signatures = signatures
        self.common = CommonFields(type: signed["_type"]?.stringValue ?? "", specVersion: "", version: 1, expires: "", expiresAt: .max)
    }
}
