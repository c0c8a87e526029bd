import Foundation
import OTAMeshGossip
import OTAMeshTrust

/// The site keyring on disk: `{"site": "ID", "keys": ["<base64 of 32 bytes>", …]}`, primary
/// key first, mode 0600. Every gateway of a site holds the same file; `otamesh keys
/// site-keyring` creates and exports it, `otamesh keys rotate-site` changes it on every running
/// gateway at once.
public struct SiteKeyringFile: Sendable, Equatable {
    public var site: String
    public var keyring: SiteKeyring

    public init(site: String, keyring: SiteKeyring) {
        self.site = site
        self.keyring = keyring
    }

    /// A new site with one fresh random key.
    public static func generate(site: String) -> SiteKeyringFile {
        SiteKeyringFile(site: site, keyring: try! SiteKeyring(primary: SiteKeyring.generateKey()))
    }

    struct Stored: Codable {
        var site: String
        var keys: [String]
    }

    public func encoded() -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let stored = Stored(site: site, keys: keyring.keys.map { Data($0).base64EncodedString() })
        return Array((try? encoder.encode(stored)) ?? Data()) + [0x0A]
    }

    public static func decode(_ bytes: [UInt8], file: String) throws(KeyringFileError) -> SiteKeyringFile {
        guard let stored = try? JSONDecoder().decode(Stored.self, from: Data(bytes)) else {
            throw .invalid(file: file, reason: "expected JSON {\"site\": \"ID\", \"keys\": [\"BASE64\", …]}")
        }
        guard !stored.site.isEmpty, stored.site.utf8.count <= 64 else {
            throw .invalid(file: file, reason: "site id must be 1 to 64 bytes")
        }
        var keys: [[UInt8]] = []
        for (index, text) in stored.keys.enumerated() {
            guard let data = Data(base64Encoded: text) else { throw .invalid(file: file, reason: "key \(index + 1) is not base64") }
            keys.append(Array(data))
        }
        guard let primary = keys.first else { throw .invalid(file: file, reason: "no keys") }
        do {
            return SiteKeyringFile(site: stored.site, keyring: try SiteKeyring(primary: primary, others: Array(keys.dropFirst())))
        } catch {
            throw .invalid(file: file, reason: "\(error)")
        }
    }

    /// Reads the keyring at `path`.
    public static func load(_ path: String) throws(KeyringFileError) -> SiteKeyringFile {
        let bytes: [UInt8]
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        do { bytes = try DirectoryFiles(root: directory).read(name, maxLength: 64 << 10) } catch {
            throw .unreadable(file: path, reason: "\(error)")
        }
        return try decode(bytes, file: path)
    }

    /// Reads the keyring at `path`, creating a new site there first if there is none.
    public static func loadOrCreate(_ path: String, site: String) throws(KeyringFileError) -> (file: SiteKeyringFile, created: Bool) {
        if access(path, F_OK) == 0 { return (try load(path), false) }
        let fresh = generate(site: site)
        try fresh.save(path)
        return (fresh, true)
    }

    /// Writes atomically, mode 0600 (creating the directory when needed).
    public func save(_ path: String) throws(KeyringFileError) {
        do {
            if let slash = path.lastIndex(of: "/"), slash != path.startIndex { try FileSystem.makeDirectory(String(path[..<slash]), mode: 0o700) }
            try FileSystem.write(path, encoded(), mode: 0o600)
        } catch {
            throw .unreadable(file: path, reason: "cannot write: \(error)")
        }
    }
}

public enum KeyringFileError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(file: String, reason: String)
    case invalid(file: String, reason: String)

    public var description: String {
        switch self {
        case let .unreadable(file, reason): "site keyring \(file): \(reason)"
        case let .invalid(file, reason): "site keyring \(file): \(reason)"
        }
    }
}
