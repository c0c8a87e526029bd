import ArgumentParser
import Foundation
import OTAMeshCommon
import OTAMeshGateway
import OTAMeshStore
import OTAMeshTrust

/// `otamesh export`: write an air-gapped bundle (metadata + targets) from a published repository.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export", abstract: "Write an update bundle (TUF metadata + targets) for an offline site.")

    @Option(help: "Published repository directory (otamesh release publish OUTDIR).") var published: String
    @Option(help: "Target path to include (repeatable; default: every top-level target).") var target: [String] = []
    @Argument(help: "Bundle file to write (.tar).") var output: String

    func run() async throws {
        try await reporting("otamesh export") {
            let bytes = try await Bundles.export(published: published, paths: target, now: WallClock.system.now().wholeSeconds)
            try Data(bytes).write(to: URL(fileURLWithPath: output))
            Output.out("wrote \(output) (\(bytes.count) bytes)")
        }
    }
}

/// `otamesh import`: verify a bundle against the gateway's trusted root, then store it — through
/// the running agent's admin API when one holds the data directory (or `--admin URL` is given),
/// else directly into the data directory.
struct ImportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import an update bundle: verify everything against the trusted root, then store targets and metadata.",
        discussion: """
            The first import needs --root: the site's root.json, provisioned out of band. While an agent runs on the data directory \
            (or with --admin URL), the bundle goes to it through its admin API (POST /api/v1/bundles; its admin token or a site admin \
            key: --key FILE), and it serves the images at once.
            """)

    @OptionGroup var api: AdminOptions
    @OptionGroup var adminKey: AdminKeyOption
    @Option(help: "Trusted root.json to install when the gateway has none yet.") var root: String?
    @Argument(help: "Bundle file (.tar).") var bundle: String

    func run() async throws {
        let configuration = try api.config.load()
        try await reporting("otamesh import \(bundle)") {
            guard let archive = FileManager.default.contents(atPath: bundle) else { throw TrustError.fetch(file: bundle, reason: "cannot read") }
            let rootBytes = try root.map { path in
                guard let bytes = FileManager.default.contents(atPath: path) else { throw TrustError.fetch(file: path, reason: "cannot read") }
                _ = try RootMetadata(bytes: [UInt8](bytes), file: path)
                return [UInt8](bytes)
            }
            if api.admin == nil {
                do {
                    let store = try BlobStore(
                        configuration: StoreConfiguration(
                            directory: configuration.dataDirectory, quotaBytes: configuration.cacheQuotaBytes, partialMaxAge: configuration.partialMaxAge))
                    try await importDirectly([UInt8](archive), rootBytes: rootBytes, store: store)
                    return
                } catch StoreError.locked {
                    // An agent runs on this data directory: go through it.
                }
            }
            try await importThroughAgent([UInt8](archive), rootBytes: rootBytes)
        }
    }

    func importDirectly(_ archive: [UInt8], rootBytes: [UInt8]?, store: BlobStore) async throws {
        let tuf = "\(store.configuration.directory)/tuf"
        try FileManager.default.createDirectory(atPath: tuf, withIntermediateDirectories: true)
        if let rootBytes, !FileManager.default.fileExists(atPath: "\(tuf)/root.json") {
            try DirectoryPersistence(directory: tuf).save("root.json", rootBytes)
        }
        let report = try await Bundles.importBundle(archive, file: bundle, tufDirectory: tuf, store: store, now: WallClock.system.now().wholeSeconds)
        Self.print(report, via: nil)
    }

    func importThroughAgent(_ archive: [UInt8], rootBytes: [UInt8]?) async throws {
        let client = try api.client(key: adminKey.key)
        var installedRoot = false
        if let rootBytes {
            let answer = try await client.post("trust-root", body: rootBytes)
            installedRoot = (try? client.decode([String: String].self, answer, what: "POST /api/v1/trust-root"))?["root"] == "installed"
        }
        let answer = try await client.post("bundles", body: archive, contentType: "application/x-tar", timeout: 600)
        Self.print(try client.decode(Bundles.ImportReport.self, answer, what: "POST /api/v1/bundles"), via: client.base)
        if installedRoot {
            // The agent decided at start that it had no root: rollouts and peer sync wait for a restart.
            Output.out(
                "the agent trusted no root until now: restart it (e.g. systemctl restart otamesh) so that it takes part in rollouts and syncs from its peers")
        }
    }

    static func print(_ report: Bundles.ImportReport, via agent: String?) {
        Output.out(
            "imported \(report.targets.count) targets (\(report.newBlobs.count) new)\(report.metadataUpdated ? ", metadata updated" : "")"
                + (agent.map { " through the running agent at \($0)" } ?? ""))
    }
}

/// `otamesh images`: the verified targets this gateway knows.
struct ImagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "images", abstract: "List verified targets with version, hardware, format and whether they are cached.")

    @OptionGroup var options: ConfigOptions
    @Flag(help: "One JSON object per image, one per line.") var json = false

    struct Line: Encodable {
        let path: String
        let length: Int64
        let sha256: String?
        let format: String?
        let hardware: String?
        let version: String?
        let project: String?
        let cached: Bool
    }

    func run() throws {
        let store = try CacheCommand.open(options, mode: .readOnly, command: "otamesh images")
        let images = try reporting("otamesh images") {
            try ReleaseCatalog.trustedTargets(tufDirectory: "\(store.configuration.directory)/tuf", store: store)
        }
        for (target, cached) in images {
            let custom = target.custom
            let line = Line(
                path: target.path, length: target.length, sha256: target.hashes["sha256"],
                format: custom?["format"]?.stringValue, hardware: custom?["hardware"]?.stringValue,
                version: custom?["version"]?.stringValue, project: custom?["project"]?.stringValue, cached: cached)
            if json {
                Output.out(Output.jsonLine(line))
            } else {
                Output.out(
                    "\(line.path)  \(line.version ?? "-")  \(line.hardware ?? "-")  \(line.format ?? "-")  \(line.length) bytes  \(cached ? "cached" : "not cached")"
                )
            }
        }
    }
}
