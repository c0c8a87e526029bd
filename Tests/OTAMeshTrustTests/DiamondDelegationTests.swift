import Crypto
import OTAMeshCommon
import Testing

@testable import OTAMeshTrust

/// Diamond delegations (tuf-conformance's attack): top-level targets delegates `parent-a` for
/// `team-a/*` and `parent-b` for `team-b/*`; both delegate a role named `release`, each with its
/// own key. `release.json` verified through `parent-a` must not answer for `team-b/*` unless
/// `parent-b`'s keys and threshold verify it too.
@Suite("diamond delegations")
struct DiamondDelegationTests {
    struct Remote: RemoteFiles {
        let files: [String: [UInt8]]
        func fetch(_ path: String, maxLength: Int64) async throws(TrustError) -> [UInt8] {
            guard let bytes = files[path] else { throw .notFound(file: path) }
            return bytes
        }
    }

    static let expires = JSONValue.string("2099-01-01T00:00:00Z")
    static let now = ISOTime.parse("2026-12-01T00:00:00Z")!

    static func object(_ pairs: KeyValuePairs<String, JSONValue>) -> JSONValue { .object(pairs) }
    static func ids(_ signers: [TUFSigner]) -> JSONValue { .array(signers.map { .string($0.publicKey.computedKeyID) }) }
    static func keys(_ signers: [TUFSigner]) -> JSONValue {
        var keys = JSONObject()
        for signer in signers { keys[signer.publicKey.computedKeyID] = signer.publicKey.json }
        return .object(keys)
    }
    static func role(_ name: String, _ signers: [TUFSigner], paths: [String]) -> JSONValue {
        object([
            "name": .string(name), "keyids": ids(signers), "threshold": .integer(1), "terminating": .bool(false),
            "paths": .array(paths.map { .string($0) }),
        ])
    }
    static func targets(_ files: [String: [UInt8]], delegating: [(String, [TUFSigner], [String])] = []) -> JSONValue {
        var listed = JSONObject()
        for (path, bytes) in files {
            listed[path] = object(["length": .integer(Int64(bytes.count)), "hashes": object(["sha256": .string(hexString(SHA256.hash(data: bytes)))])])
        }
        var signed = JSONObject()
        signed["_type"] = .string("targets")
        signed["spec_version"] = .string("1.0.31")
        signed["version"] = .integer(1)
        signed["expires"] = expires
        signed["targets"] = .object(listed)
        if !delegating.isEmpty {
            signed["delegations"] = object(["keys": keys(delegating.flatMap(\.1)), "roles": .array(delegating.map { role($0.0, $0.1, paths: $0.2) })])
        }
        return .object(signed)
    }

    /// A repository whose `release.json` is signed by `releaseSigners`; parent-a delegates
    /// `release` to key RA, parent-b to key RB.
    static func repository(releaseSigners: (TUFSigner, TUFSigner) -> [TUFSigner]) throws -> (server: Remote, root: [UInt8]) {
        let root = try KeyFile.generate(.ed25519), timestamp = try KeyFile.generate(.ed25519), snapshot = try KeyFile.generate(.ed25519)
        let top = try KeyFile.generate(.ed25519), a = try KeyFile.generate(.ed25519), b = try KeyFile.generate(.ed25519)
        let ra = try KeyFile.generate(.ed25519), rb = try KeyFile.generate(.ed25519)
        func roleKeys(_ signer: TUFSigner) -> JSONValue { object(["keyids": ids([signer]), "threshold": .integer(1)]) }
        let rootSigned = object([
            "_type": .string("root"), "spec_version": .string("1.0.31"), "version": .integer(1), "expires": expires,
            "consistent_snapshot": .bool(false), "keys": keys([root, timestamp, snapshot, top]),
            "roles": object([
                "root": roleKeys(root), "timestamp": roleKeys(timestamp), "snapshot": roleKeys(snapshot),
                "targets": roleKeys(top),
            ]),
        ])
        let meta = object([
            "targets.json": object(["version": .integer(1)]), "parent-a.json": object(["version": .integer(1)]),
            "parent-b.json": object(["version": .integer(1)]), "release.json": object(["version": .integer(1)]),
        ])
        let snapshotSigned = object(["_type": .string("snapshot"), "spec_version": .string("1.0.31"), "version": .integer(1), "expires": expires, "meta": meta])
        let timestampSigned = object([
            "_type": .string("timestamp"), "spec_version": .string("1.0.31"), "version": .integer(1), "expires": expires,
            "meta": object(["snapshot.json": object(["version": .integer(1)])]),
        ])
        let files: [String: [UInt8]] = [
            "1.root.json": try Repository.envelope(rootSigned, signers: [root]),
            "timestamp.json": try Repository.envelope(timestampSigned, signers: [timestamp]),
            "snapshot.json": try Repository.envelope(snapshotSigned, signers: [snapshot]),
            "targets.json": try Repository.envelope(
                targets([:], delegating: [("parent-a", [a], ["team-a/*"]), ("parent-b", [b], ["team-b/*"])]), signers: [top]),
            "parent-a.json": try Repository.envelope(targets([:], delegating: [("release", [ra], ["team-a/*"])]), signers: [a]),
            "parent-b.json": try Repository.envelope(targets([:], delegating: [("release", [rb], ["team-b/*"])]), signers: [b]),
            "release.json": try Repository.envelope(
                targets(["team-a/app.bin": Array("a".utf8), "team-b/app.bin": Array("b".utf8)]),
                signers: releaseSigners(ra, rb)),
        ]
        return (Remote(files: files), files["1.root.json"]!)
    }

    static func updater(_ server: Remote, root: [UInt8]) -> Updater {
        Updater(metadata: server, targets: server, persistence: MemoryPersistence(files: ["root.json": root]), now: now)
    }

    @Test("release.json signed only by parent-a's delegated key is refused for team-b/*, also after a team-a/* lookup in the same process")
    func attackRefused() async throws {
        let (server, root) = try Self.repository { ra, _ in [ra] }
        var updater = Self.updater(server, root: root)
        try await updater.refresh()
        #expect(try await updater.targetInfo("team-a/app.bin") != nil, "the legitimate path still works")
        await #expect(throws: TrustError.threshold(role: "release", valid: 0, threshold: 1)) {
            _ = try await updater.targetInfo("team-b/app.bin")
        }
        // The same lookup on its own (no cached release) is refused the same way.
        var fresh = Self.updater(server, root: root)
        try await fresh.refresh()
        await #expect(throws: TrustError.threshold(role: "release", valid: 0, threshold: 1)) {
            _ = try await fresh.targetInfo("team-b/app.bin")
        }
    }

    @Test("a diamond whose release.json both delegated keys sign resolves through either parent")
    func bothSigned() async throws {
        let (server, root) = try Self.repository { ra, rb in [ra, rb] }
        var updater = Self.updater(server, root: root)
        try await updater.refresh()
        #expect(try await updater.targetInfo("team-a/app.bin") != nil)
        #expect(try await updater.targetInfo("team-b/app.bin") != nil)
    }
}
