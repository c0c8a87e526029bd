import ArgumentParser
import Foundation
import OTAMeshCommon
import OTAMeshTransfer
import OTAMeshTrust

/// The TUF conformance suite's client-under-test protocol (tuf-conformance CLIENT-CLI.md):
///
///     otamesh tuf --metadata-dir DIR init ROOT_FILE
///     otamesh tuf --metadata-dir DIR --metadata-url URL refresh
///     otamesh tuf --metadata-dir DIR --metadata-url URL --target-name PATH [--target-name PATH…]
///                 --target-base-url URL --target-dir DIR download
///
/// Exit 0 on full success, 1 otherwise (with the reason on stderr).
struct TUFCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tuf", abstract: "TUF client: init, refresh, download (the TUF conformance CLI protocol).")

    @Option(help: "Directory of trusted metadata (root.json, timestamp.json, …).") var metadataDir: String
    @Option(help: "Base URL of the repository's metadata.") var metadataUrl: String?
    @Option(help: "Target path to download (repeatable).") var targetName: [String] = []
    @Option(help: "Base URL of the repository's targets.") var targetBaseUrl: String?
    @Option(help: "Directory for verified targets.") var targetDir: String?
    @Argument(help: "init ROOT_FILE | refresh | download") var command: String
    @Argument(help: "The trusted root file (init).") var arguments: [String] = []

    func run() async throws {
        do {
            switch command {
            case "init": try initialise()
            case "refresh": _ = try await refreshed()
            case "download": try await download()
            default: throw ValidationError("unknown command '\(command)' (init, refresh, download)")
            }
        } catch let error as TrustError {
            Output.err("otamesh tuf \(command): \(error)")
            throw ExitCode(1)
        } catch let error as ValidationError {
            Output.err("otamesh tuf: \(error.message)")
            throw ExitCode(1)
        }
    }

    func initialise() throws {
        guard let rootFile = arguments.first else { throw ValidationError("init needs the trusted root file") }
        guard let bytes = FileManager.default.contents(atPath: rootFile) else {
            throw TrustError.fetch(file: rootFile, reason: "cannot read the trusted root")
        }
        _ = try RootMetadata(bytes: [UInt8](bytes), file: rootFile)
        try FileManager.default.createDirectory(atPath: metadataDir, withIntermediateDirectories: true)
        try DirectoryPersistence(directory: metadataDir).save("root.json", [UInt8](bytes))
    }

    func refreshed() async throws -> Updater {
        guard let metadataUrl else { throw ValidationError("refresh needs --metadata-url") }
        // The metadata directory holds exactly the trusted role files (what the conformance suite
        // inspects); every root version goes to METADATA_DIR.roots/ beside it.
        let history = Self.historyDirectory(metadataDir)
        try FileManager.default.createDirectory(atPath: history, withIntermediateDirectories: true)
        var updater = Updater(
            metadata: HTTPFiles(baseURL: metadataUrl), targets: HTTPFiles(baseURL: targetBaseUrl ?? metadataUrl),
            persistence: DirectoryPersistence(directory: metadataDir), rootHistory: DirectoryPersistence(directory: history),
            now: WallClock.system.now().wholeSeconds)
        try await updater.refresh()
        return updater
    }

    /// `DIR.roots`: where the root history of metadata directory `DIR` is kept.
    static func historyDirectory(_ metadataDir: String) -> String {
        (metadataDir.hasSuffix("/") ? String(metadataDir.dropLast()) : metadataDir) + ".roots"
    }

    func download() async throws {
        guard targetBaseUrl != nil, let targetDir else { throw ValidationError("download needs --target-base-url and --target-dir") }
        guard !targetName.isEmpty else { throw ValidationError("download needs --target-name") }
        var updater = try await refreshed()
        try FileManager.default.createDirectory(atPath: targetDir, withIntermediateDirectories: true)
        for path in targetName {
            guard let info = try await updater.targetInfo(path) else { throw TrustError.targetNotFound(path: path) }
            let local = "\(targetDir)/\(Updater.encode(path))"
            if let cached = FileManager.default.contents(atPath: local),
                (try? TrustedMetadataSet.checkBytes([UInt8](cached), file: path, length: info.length, hashes: info.hashes)) != nil
            {
                continue  // already downloaded and still matches the signed hashes
            }
            let bytes = try await updater.download(info)
            try DirectoryPersistence(directory: targetDir).save(Updater.encode(path), bytes)
        }
    }
}
