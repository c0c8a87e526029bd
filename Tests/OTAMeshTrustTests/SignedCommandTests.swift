import Testing
import _CryptoExtras

@testable import OTAMeshTrust

@Suite("signed commands")
struct SignedCommandTests {
    static let now = ISOTime.parse("2026-11-23T00:00:00Z")!

    static func site(_ admins: [TUFSigner], threshold: Int) throws -> SiteTrust {
        try SiteTrust(site: "building-7", threshold: threshold, admins: admins.map(\.publicKey))
    }

    static func command(sequence: Int64 = 5, site: String = "building-7") -> SignedCommand {
        SignedCommand(
            site: site, sequence: sequence, kind: "rollout.pause",
            payload: .object(["rollout": .string("r-42")] as KeyValuePairs<String, JSONValue>), issued: now)
    }

    @Test("m-of-n admins: accepted at the threshold with any key types, refused below it")
    func threshold() throws {
        let admins: [TUFSigner] = [.ed25519(.init()), .ecdsaP256(.init()), try KeyFile.generate(.ed25519)]
        let trust = try Self.site(admins, threshold: 2)
        var command = Self.command()
        try command.sign(with: admins[0])
        #expect(throws: TrustError.unsignedCommand(kind: "rollout.pause", sequence: 5, valid: 1, threshold: 2)) {
            try command.verify(trust: trust, lastSequence: nil)
        }
        try command.sign(with: admins[0])  // the same admin twice still counts once
        #expect(throws: TrustError.self) { try command.verify(trust: trust, lastSequence: nil) }
        try command.sign(with: admins[1])
        try command.verify(trust: trust, lastSequence: nil)
        // Through bytes and back, as it travels.
        let parsed = try SignedCommand(bytes: command.bytes, file: "cmd.json")
        try parsed.verify(trust: trust, lastSequence: 4)
    }

    @Test("replays, other sites, stolen non-admin keys and edited payloads are refused")
    func refusals() throws {
        let admins: [TUFSigner] = [.ed25519(.init()), .ed25519(.init())]
        let trust = try Self.site(admins, threshold: 1)
        var command = Self.command(sequence: 5)
        try command.sign(with: admins[0])
        #expect(throws: TrustError.replayedCommand(kind: "rollout.pause", accepted: 5, offered: 5)) {
            try command.verify(trust: trust, lastSequence: 5)
        }
        var elsewhere = Self.command(site: "building-8")
        try elsewhere.sign(with: admins[0])
        #expect(throws: TrustError.wrongSite(expected: "building-7", found: "building-8")) { try elsewhere.verify(trust: trust, lastSequence: nil) }
        var outsider = Self.command()
        try outsider.sign(with: .ed25519(.init()))
        #expect(throws: TrustError.self) { try outsider.verify(trust: trust, lastSequence: nil) }
        // Edit the payload after signing.
        let text = String(decoding: command.bytes, as: UTF8.self).replacingOccurrences(of: "r-42", with: "r-43")
        let edited = try SignedCommand(bytes: Array(text.utf8), file: "cmd.json")
        #expect(throws: TrustError.unsignedCommand(kind: "rollout.pause", sequence: 5, valid: 0, threshold: 1)) {
            try edited.verify(trust: trust, lastSequence: nil)
        }
    }

    @Test("site trust file round trip; a threshold larger than the admin count is refused")
    func siteTrustFile() throws {
        let admins: [TUFSigner] = [.ed25519(.init()), .ecdsaP256(.init())]
        let trust = try Self.site(admins, threshold: 2)
        #expect(try SiteTrust(bytes: trust.json.prettyBytes, file: "site-trust.json") == trust)
        #expect(throws: TrustError.self) { try Self.site(admins, threshold: 3) }
    }

    @Test("site trust: a key listed twice and a threshold above the distinct keys are refused, written or loaded")
    func siteTrustDuplicates() throws {
        let alice = TUFSigner.ed25519(.init())
        let bob = TUFSigner.ed25519(.init())
        let id = alice.publicKey.computedKeyID
        #expect(throws: TrustError.malformed(file: "site trust", reason: "admin key \(id) is listed twice")) {
            try SiteTrust(site: "s", threshold: 2, admins: [alice.publicKey, alice.publicKey])
        }
        #expect(throws: TrustError.malformed(file: "t.json", reason: "threshold 3 needs 1…2 (the number of distinct admin keys listed)")) {
            try SiteTrust(site: "s", threshold: 3, admins: [alice.publicKey, bob.publicKey], file: "t.json")
        }
        // One key under two ids in a file (as an edited file could list it) counts once.
        let key = String(decoding: alice.publicKey.json.canonicalBytes, as: UTF8.self)
        let file = #"{"site": "s", "threshold": 2, "admins": {"a": \#(key), "b": \#(key)}}"#
        #expect(throws: TrustError.self) { try SiteTrust(bytes: Array(file.utf8), file: "t.json") }
        #expect(throws: TrustError.self) { try SiteTrust(bytes: Array("not json".utf8), file: "t.json") }
    }

    @Test("site trust: admin names travel with the file, old files without names load, names(ofKey:) answers")
    func siteTrustNames() throws {
        let alice = TUFSigner.ed25519(.init())
        let bob = TUFSigner.ecdsaP256(.init())
        let (a, b) = (alice.publicKey.computedKeyID, bob.publicKey.computedKeyID)
        let named = try SiteTrust(site: "s", threshold: 1, admins: [alice.publicKey, bob.publicKey], names: [a: "alice"])
        let loaded = try SiteTrust(bytes: named.json.prettyBytes, file: "t.json")
        #expect(loaded == named && loaded.name(ofKey: a) == "alice" && loaded.name(ofKey: b) == nil)
        // A file from before names: the same admins, no names.
        let old = try SiteTrust(site: "s", threshold: 1, admins: [alice.publicKey, bob.publicKey])
        #expect(old.json["names"] == nil)
        #expect(try SiteTrust(bytes: old.json.prettyBytes, file: "t.json").names.isEmpty)
        #expect(throws: TrustError.self) { try SiteTrust(site: "s", threshold: 1, admins: [alice.publicKey], names: [b: "bob"]) }
    }

    @Test("PEM keys round trip for every type, in openssl's formats")
    func keyFiles() throws {
        for type in KeyFile.KeyType.allCases {
            let key = try KeyFile.generate(type)
            let parsed = try KeyFile.parse(pem: KeyFile.pem(key), file: "k.pem")
            #expect(parsed.publicKey == key.publicKey)
            let message = Array("hello".utf8)
            #expect(key.publicKey.verify(signature: try parsed.sign(message), message: message))
        }
    }
}

extension String {
    func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

@Suite("key schemes")
struct KeySchemeTests {
    @Test("rsa-pkcs1v15-sha256 verifies, and a PSS signature does not pass for it")
    func pkcs1() throws {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let message = Array("signed part".utf8)
        let public1 = TUFKey(keyType: "rsa", scheme: "rsa-pkcs1v15-sha256", publicValue: key.publicKey.pemRepresentation)
        let pkcs1 = Array(try key.signature(for: message, padding: .insecurePKCS1v1_5).rawRepresentation)
        #expect(public1.verify(signature: pkcs1, message: message))
        #expect(!public1.verify(signature: pkcs1, message: Array("other".utf8)))
        let pss = Array(try key.signature(for: message, padding: .PSS).rawRepresentation)
        #expect(!public1.verify(signature: pss, message: message))
        #expect(!TUFKey(keyType: "rsa", scheme: "rsa-unknown", publicValue: key.publicKey.pemRepresentation).verify(signature: pkcs1, message: message))
    }
}
