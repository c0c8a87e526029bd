import OTAMeshStore
import OTAMeshTrust

#if canImport(Glibc)
import Glibc
#endif

/// Air-gapped update bundles: a tar holding a published TUF repository (`metadata/`,
/// `targets/`) and `targets.list` (the target paths it carries, one per line; a hint only —
/// every target is found and checked through the signed metadata).
public enum Bundles {
    /// What an import did.
    public struct ImportReport: Codable, Sendable, Equatable {
        public var targets: [String] = []
        public var newBlobs: [String] = []
        public var metadataUpdated = false
    }

    /// Builds a bundle from a published repository directory, verifying it with otamesh's own
    /// client first (trusting the repository's `1.root.json`), so a broken repository is never
    /// exported. With no `paths`, every top-level target is included.
    public static func export(published: String, paths requested: [String], now: Int64) async throws -> [UInt8] {
        let metadataDir = "\(published)/metadata"
        let rootBytes = try DirectoryFiles(root: metadataDir).read("1.root.json", maxLength: 1 << 20)
        let persistence = MemoryPersistence(files: ["root.json": rootBytes])
        var updater = Updater(
            metadata: DirectoryFiles(root: metadataDir), targets: DirectoryFiles(root: "\(published)/targets"),
            persistence: persistence, rootHistory: persistence, now: now)
        try await updater.refresh()
        let paths = requested.isEmpty ? (updater.trusted?.targets[Role.targets]?.targets.keys.sorted() ?? []) : requested
        var entries: [Tar.Entry] = []
        for name in listFiles(metadataDir) {
            entries.append(Tar.Entry(path: "metadata/\(name)", bytes: try DirectoryFiles(root: metadataDir).read(name, maxLength: 64 << 20)))
        }
        for path in paths {
            guard let info = try await updater.targetInfo(path) else { throw TrustError.targetNotFound(path: path) }
            entries.append(Tar.Entry(path: "targets/\(updater.remotePath(of: info))", bytes: try await updater.download(info)))
        }
        entries.append(Tar.Entry(path: "targets.list", bytes: Array((paths.joined(separator: "\n") + "\n").utf8)))
        return try Tar.write(entries)
    }

    /// Imports a bundle into a gateway: everything is verified against the trusted root in
    /// `tufDirectory` before anything is stored; then each target is added to the store with its
    /// signed SHA-256 and length, and the new metadata is saved. Importing twice is a no-op.
    public static func importBundle(_ archive: [UInt8], file: String, tufDirectory: String, store: BlobStore, now: Int64) async throws -> ImportReport {
        let entries = try Tar.read(archive, file: file)
        var metadataFiles: [String: [UInt8]] = [:]
        var targetFiles: [String: [UInt8]] = [:]
        var paths: [String] = []
        for entry in entries {
            if entry.path.hasPrefix("metadata/") {
                metadataFiles[String(entry.path.dropFirst(9))] = entry.bytes
            } else if entry.path.hasPrefix("targets/") {
                targetFiles[String(entry.path.dropFirst(8))] = entry.bytes
            } else if entry.path == "targets.list" {
                paths = String(decoding: entry.bytes, as: UTF8.self).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
            }
        }
        let trusted = DirectoryPersistence(directory: tufDirectory)
        guard let root = trusted.load("root.json") else {
            throw TrustError.notLoaded(role: Role.root, needs: "a trusted root in \(tufDirectory) (otamesh import --root FILE the first time)")
        }
        let staged = MemoryPersistence(files: ["root.json": root])
        for name in ["timestamp.json", "snapshot.json", "targets.json"] { staged.files[name] = trusted.load(name) }
        let before = staged.files
        var updater = Updater(
            metadata: MemoryFiles(files: metadataFiles), targets: MemoryFiles(files: targetFiles),
            persistence: staged, rootHistory: staged, now: now)
        try await updater.refresh()
        var verified: [(TargetFile, [UInt8])] = []
        for path in paths {
            guard let info = try await updater.targetInfo(path) else { throw TrustError.targetNotFound(path: path) }
            verified.append((info, try await updater.download(info)))
        }
        // Everything verified: now store, targets first (through the expected-hash add), metadata last.
        var report = ImportReport()
        for (info, bytes) in verified {
            guard let hex = info.hashes["sha256"] else { throw TrustError.unsupportedHash(file: info.path, algorithms: info.hashes.keys.sorted()) }
            let expected = ExpectedContent(digest: try BlobDigest(hex: hex), size: info.length)
            let existed = try store.blob(expected.digest) != nil
            try store.add(bytes: bytes, expected: expected)
            report.targets.append(info.path)
            if !existed { report.newBlobs.append(hex) }
        }
        for (name, bytes) in staged.files.sorted(by: { $0.key < $1.key }) where before[name] != bytes {
            try trusted.save(name, bytes)
            report.metadataUpdated = true
        }
        return report
    }

    static func listFiles(_ directory: String) -> [String] {
        FileSystem.list(directory, regularFilesOnly: true)
    }
}

/// Files held in memory (an unpacked bundle) as a TUF source.
struct MemoryFiles: RemoteFiles {
    let files: [String: [UInt8]]

    func fetch(_ path: String, maxLength: Int64) async throws(TrustError) -> [UInt8] {
        guard let bytes = files[path] else { throw .notFound(file: path) }
        guard Int64(bytes.count) <= maxLength else { throw .tooLarge(file: path, limit: maxLength) }
        return bytes
    }
}
