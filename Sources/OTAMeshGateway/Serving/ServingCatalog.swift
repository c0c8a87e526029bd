import OTAMeshStore
import OTAMeshTrust

/// A verified target as the device server offers it.
public struct ServedTarget: Sendable, Equatable {
    public let path: String
    public let sha256: String
    public let size: Int64
    /// From the signed target's `custom`: `version`, `hardware` (chip/variant), `format`.
    public let version: String?
    public let hardware: String?
    public let format: String?

    public init(path: String, sha256: String, size: Int64, version: String? = nil, hardware: String? = nil, format: String? = nil) {
        self.path = path
        self.sha256 = sha256
        self.size = size
        self.version = version
        self.hardware = hardware
        self.format = format
    }

    /// The file name (last path segment).
    public var fileName: String { String(path.split(separator: "/").last ?? Substring(path)) }
}

/// What the device server may serve: committed blobs and the verified targets that name them.
/// An immutable value; the agent swaps in a new one when the store or the trusted metadata
/// changes.
public struct ServingCatalog: Sendable {
    public var blobs: [String: ServedBlob] = [:]
    public var targets: [String: ServedTarget] = [:]
    /// The trusted TUF metadata files (served to peers by ``TUFMirror``).
    public var metadata: [String: [UInt8]] = [:]

    public init(blobs: [ServedBlob] = [], targets: [ServedTarget] = []) {
        for blob in blobs { self.blobs[blob.sha256] = blob }
        for target in targets { self.targets[target.path] = target }
    }

    /// The blob behind a target, only when the store holds it.
    public func blob(forTarget path: String) -> (ServedTarget, ServedBlob)? {
        guard let target = targets[path], let blob = blobs[target.sha256], blob.size == target.size else { return nil }
        return (target, blob)
    }

    /// Loads the catalog from a store and the trusted targets metadata in `tufDirectory`.
    public static func load(store: BlobStore, tufDirectory: String) throws -> ServingCatalog {
        let blobs = try store.list().map { ServedBlob(sha256: $0.sha256, size: $0.size, addedAt: $0.addedAt) }
        var targets: [ServedTarget] = []
        for (file, _) in try ReleaseCatalog.trustedTargets(tufDirectory: tufDirectory, store: store) {
            guard let sha256 = file.hashes["sha256"] else { continue }
            let custom = file.custom?.objectValue
            targets.append(
                ServedTarget(
                    path: file.path, sha256: sha256.lowercased(), size: file.length,
                    version: custom?["version"]?.stringValue, hardware: custom?["hardware"]?.stringValue,
                    format: custom?["format"]?.stringValue))
        }
        var catalog = ServingCatalog(blobs: blobs, targets: targets)
        for name in FileSystem.list(tufDirectory, regularFilesOnly: true) where name.hasSuffix(".json") {
            catalog.metadata[name] = try? DirectoryFiles(root: tufDirectory).read(name, maxLength: 16 << 20)
        }
        return catalog
    }
}
