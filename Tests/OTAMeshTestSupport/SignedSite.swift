import Foundation
import OTAMeshTrust

/// A site whose admins sign: fresh admin keys, the site trust that lists them with its
/// threshold, and keys the trust does not list. Tests in process sign commands with it; tests
/// of real agents write its key files and trust file where the CLI and the agent read them.
///
/// Admins have names, as `otamesh keys generate --name NAME` gives them: the trust names each
/// key (as `otamesh keys site-trust` does with NAME.pub.json), and ``writeKeys(to:)`` writes
/// NAME.pem and NAME.pub.json.
public struct SignedSite: Sendable {
    public let site: String
    /// The admins' names, in the order of ``admins``.
    public let names: [String]
    /// The admins' private keys, in the order of ``names``.
    public let admins: [TUFSigner]
    /// Well-formed keys that the trust does not list, by name (a rogue admin, an outsider).
    public let outsiders: [String: TUFSigner]
    public let trust: SiteTrust

    /// `threshold` of the `admins` must sign; every key is new and of `keyType`, or of the type
    /// `keyTypes` gives for its name.
    public init(
        site: String = "test-site", admins names: [String] = ["admin-a", "admin-b"], threshold: Int = 1,
        keyType: KeyFile.KeyType = .ed25519, keyTypes: [String: KeyFile.KeyType] = [:], outsiders: [String] = []
    ) throws {
        let admins = try names.map { try KeyFile.generate(keyTypes[$0] ?? keyType) }
        self.site = site
        self.names = names
        self.admins = admins
        self.outsiders = Dictionary(uniqueKeysWithValues: try outsiders.map { ($0, try KeyFile.generate(keyType)) })
        trust = try SiteTrust(
            site: site, threshold: threshold, admins: admins.map(\.publicKey),
            names: Dictionary(uniqueKeysWithValues: zip(admins.map(\.publicKey.computedKeyID), names)))
    }

    /// The admin or outsider key called `name`.
    public func key(_ name: String) -> TUFSigner {
        if let index = names.firstIndex(of: name) { return admins[index] }
        guard let outsider = outsiders[name] else { preconditionFailure("no key named \(name) in site \(site)") }
        return outsider
    }

    /// `command` with one more signature from each admin at `indices` (into ``admins``).
    public func signed(_ command: SignedCommand, by indices: [Int]) throws -> SignedCommand {
        try Self.signed(command, with: indices.map { admins[$0] })
    }

    /// `command` with one more signature from each of `signers`, admins or not.
    public static func signed(_ command: SignedCommand, with signers: [TUFSigner]) throws -> SignedCommand {
        var command = command
        for signer in signers { try command.sign(with: signer) }
        return command
    }

    /// Writes the site trust file an agent loads with `--site-trust`.
    public func writeTrustFile(to path: String) throws {
        try Data(trust.json.prettyBytes).write(to: URL(fileURLWithPath: path))
    }

    /// Writes NAME.pem (0600, as the CLI requires of a private key) and NAME.pub.json for every
    /// admin and outsider into `directory`, which it creates.
    public func writeKeys(to directory: String) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, signer) in zip(names, admins) + outsiders.map({ ($0.key, $0.value) }) {
            let pem = "\(directory)/\(name).pem"
            guard FileManager.default.createFile(atPath: pem, contents: Data(KeyFile.pem(signer).utf8), attributes: [.posixPermissions: 0o600]) else {
                throw CocoaError(.fileWriteUnknown)
            }
            try Data(signer.publicKey.json.prettyBytes).write(to: URL(fileURLWithPath: "\(directory)/\(name).pub.json"))
        }
    }
}
