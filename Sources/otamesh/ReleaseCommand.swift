import ArgumentParser
import Foundation
import OTAMeshFirmware
import OTAMeshGateway
import OTAMeshTrust

/// `otamesh release …`: the publisher's side of TUF, in Swift, so an admin needs no Python.
struct ReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release", abstract: "Build and sign a TUF repository of firmware releases.",
        subcommands: [Init.self, Add.self, Remove.self, RefreshTimestamp.self, Publish.self, List.self])

    struct RepoOption: ParsableArguments {
        @Option(help: "Repository directory (default ./otamesh-repo).") var repo = "./otamesh-repo"
    }

    static var now: Int64 { Int64(Date().timeIntervalSince1970) }

    /// Runs a repository operation; failures are one line on stderr and exit 1.
    static func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as TrustError {
            Output.err("otamesh release \(what): \(error)")
            throw ExitCode(1)
        } catch let error as ExitCode {
            throw error
        } catch {
            Output.err("otamesh release \(what): \(error)")
            throw ExitCode(1)
        }
    }

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create keys, root (with thresholds) and empty targets.")
        @OptionGroup var options: RepoOption
        @Option(help: "Type of generated keys: ed25519, ecdsa, rsa.") var keyType = "ed25519"
        @Option(help: "Number of root keys.") var rootKeys = 1
        @Option(help: "Root signature threshold.") var rootThreshold = 1
        @Option(help: "Use an existing PEM private key for a role: ROLE=FILE (repeatable; openssl keys work).") var key: [String] = []
        @Option(help: "Expiry per role: root=365d,targets=90d,snapshot=7d,timestamp=1d.") var expiry: String?

        func run() throws {
            guard let type = KeyFile.KeyType(rawValue: keyType) else { throw ValidationError("--key-type must be ed25519, ecdsa or rsa") }
            var policy = ExpiryPolicy()
            for item in (expiry ?? "").split(separator: ",") {
                let parts = item.split(separator: "=")
                guard parts.count == 2, let seconds = AgentConfiguration.parseDuration(String(parts[1])) else {
                    throw ValidationError("--expiry takes role=duration pairs, e.g. timestamp=1d")
                }
                switch parts[0] {
                case "root": policy.root = Int64(seconds)
                case "targets": policy.targets = Int64(seconds)
                case "snapshot": policy.snapshot = Int64(seconds)
                case "timestamp": policy.timestamp = Int64(seconds)
                default: throw ValidationError("--expiry: unknown role \(parts[0])")
                }
            }
            let repo = options.repo
            let count = rootKeys
            let threshold = rootThreshold
            let keySpecs = key
            try ReleaseCommand.run("init") {
                var supplied: [String: [TUFSigner]] = [:]
                for spec in keySpecs {
                    let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2, ["root", "targets", "snapshot", "timestamp"].contains(parts[0]) else {
                        throw ValidationError("--key takes ROLE=FILE with ROLE root, targets, snapshot or timestamp")
                    }
                    let pem = try String(contentsOfFile: parts[1], encoding: .utf8)
                    supplied[parts[0], default: []].append(try KeyFile.parse(pem: pem, file: parts[1]))
                }
                let repository = try Repository.initialise(
                    at: repo, keyType: type, rootKeyCount: max(count, supplied["root"]?.count ?? 0), rootThreshold: threshold,
                    keys: supplied, policy: policy, now: ReleaseCommand.now)
                Output.out("initialised \(repository.directory): root v1 (threshold \(threshold)), keys in \(repository.directory)/keys")
            }
        }
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a firmware image: inspect it, record length, hashes and format/hardware/version/project, re-sign.")
        @OptionGroup var options: RepoOption
        @Option(help: "Target path, e.g. esp32/projectMM/2.1.0.bin.") var path: String
        @Argument(help: "The image file.") var file: String

        func run() throws {
            let repo = options.repo
            let target = path
            let source = file
            try ReleaseCommand.run("add") {
                guard let data = FileManager.default.contents(atPath: source) else {
                    throw TrustError.fetch(file: source, reason: "cannot read")
                }
                let bytes = [UInt8](data)
                let report = ImageInspector.inspect(bytes)
                guard report.valid else {
                    throw TrustError.invalidImage(file: source, reason: report.problems.joined(separator: "; "))
                }
                var custom = JSONObject()
                custom["format"] = .string(report.format.rawValue)
                if let chip = report.chip { custom["hardware"] = .string(chip) }
                if let version = report.version { custom["version"] = .string(version) }
                if let project = report.project { custom["project"] = .string(project) }
                try Repository(directory: repo).add(bytes: bytes, path: target, custom: .object(custom), now: ReleaseCommand.now)
                Output.out("added \(target): \(report.format.rawValue), \(bytes.count) bytes, sha256 \(report.sha256)")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a target and re-sign.")
        @OptionGroup var options: RepoOption
        @Option(help: "Target path.") var path: String

        func run() throws {
            let repo = options.repo
            let target = path
            try ReleaseCommand.run("remove") { try Repository(directory: repo).remove(path: target, now: ReleaseCommand.now) }
        }
    }

    struct RefreshTimestamp: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "refresh-timestamp",
            abstract: "Renew freshness: new snapshot and timestamp with fresh expiry (timestamp/snapshot keys only).")
        @OptionGroup var options: RepoOption

        func run() throws {
            let repo = options.repo
            try ReleaseCommand.run("refresh-timestamp") { try Repository(directory: repo).refreshTimestamp(now: ReleaseCommand.now) }
        }
    }

    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the repository as clients fetch it: OUTDIR/metadata (versioned) and OUTDIR/targets.")
        @OptionGroup var options: RepoOption
        @Argument(help: "Output directory.") var output: String

        func run() throws {
            let repo = options.repo
            let out = output
            try ReleaseCommand.run("publish") { try Repository(directory: repo).publish(to: out) }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the signed targets.")
        @OptionGroup var options: RepoOption

        func run() throws {
            let repo = options.repo
            let targets = try ReleaseCommand.run("ls") { try Repository(directory: repo).targets() }
            for (path, target) in targets.sorted(by: { $0.key < $1.key }) {
                let custom = target.custom?.objectValue?.members.map { "\($0.key)=\($0.value.stringValue ?? "")" }.joined(separator: " ") ?? ""
                Output.out("\(path)  \(target.length) bytes  \(custom)")
            }
        }
    }
}
