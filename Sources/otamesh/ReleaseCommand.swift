import ArgumentParser
import Foundation
import OTAMeshCommon
import OTAMeshFirmware
import OTAMeshGateway
import OTAMeshTrust

/// `otamesh release …`: the publisher's side of TUF, in Swift, so an admin needs no Python.
struct ReleaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "release", abstract: "Build and sign a TUF repository of firmware releases.",
        subcommands: [Init.self, Add.self, AddApp.self, Remove.self, Sign.self, RotateRoot.self, RefreshTimestamp.self, Publish.self, List.self])

    /// Says which roles still need signatures from keys kept outside the repository.
    static func reportUnsigned(_ repository: Repository) throws {
        for (role, valid, threshold) in try repository.unsignedRoles() {
            Output.out("note: \(role) has \(valid) of \(threshold) signatures; add the rest with: otamesh release sign --role \(role) --key FILE")
        }
    }

    struct Sign: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a signature from a key kept outside the repository (offline or another admin's) to a role.")
        @OptionGroup var options: RepoOption
        @Option(help: "Role: root, targets, snapshot, timestamp.") var role: String
        @Option(help: "Private key (PEM).") var key: String

        func run() throws {
            let repo = options.repo
            let roleName = role
            let keyFile = key
            let insecure = options.insecurePermissions
            try ReleaseCommand.run("sign") {
                let signer = try KeysCommand.readPrivateKey(keyFile, insecurePermissions: insecure)
                let repository = try Repository(directory: repo)
                try repository.sign(role: roleName, with: signer, now: ReleaseCommand.now)
                try ReleaseCommand.reportUnsigned(repository)
            }
        }
    }

    struct RotateRoot: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-root",
            abstract: "Sign root version N+1 with changed keys or thresholds (by the old and the new root keys).")
        @OptionGroup var options: RepoOption
        @Option(help: "Generate a new key for a role: ROLE or ROLE=TYPE (repeatable).") var generate: [String] = []
        @Option(help: "Add a key kept outside the repository to a role: ROLE=FILE (signs this rotation; not copied).") var addKey: [String] = []
        @Option(help: "Remove a key from a role: ROLE=KEYID (repeatable).") var removeKey: [String] = []
        @Option(help: "Set a role's threshold: ROLE=N (repeatable).") var threshold: [String] = []

        func run() throws {
            let repo = options.repo
            let insecurePermissions = options.insecurePermissions
            let (generateSpecs, addSpecs, removeSpecs, thresholdSpecs) = (generate, addKey, removeKey, threshold)
            try ReleaseCommand.run("rotate-root") {
                func pair(_ spec: String) throws -> (String, String?) {
                    let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
                    guard let role = parts.first, ["root", "targets", "snapshot", "timestamp"].contains(role) else {
                        throw ValidationError("\(spec): role must be root, targets, snapshot or timestamp")
                    }
                    return (role, parts.count > 1 ? parts[1] : nil)
                }
                var add: [(role: String, signer: TUFSigner, persist: Bool)] = []
                for spec in generateSpecs {
                    let (role, type) = try pair(spec)
                    guard let keyType = KeyFile.KeyType(rawValue: type ?? "ed25519") else { throw ValidationError("\(spec): unknown key type") }
                    add.append((role, try KeyFile.generate(keyType), true))
                }
                for spec in addSpecs {
                    let (role, file) = try pair(spec)
                    guard let file else { throw ValidationError("--add-key takes ROLE=FILE") }
                    add.append((role, try KeysCommand.readPrivateKey(file, insecurePermissions: insecurePermissions), false))
                }
                let remove = try removeSpecs.map { spec -> (role: String, keyID: String) in
                    let (role, id) = try pair(spec)
                    guard let id else { throw ValidationError("--remove-key takes ROLE=KEYID") }
                    return (role, id)
                }
                var thresholds: [String: Int] = [:]
                for spec in thresholdSpecs {
                    let (role, value) = try pair(spec)
                    guard let value, let number = Int(value) else { throw ValidationError("--threshold takes ROLE=N") }
                    thresholds[role] = number
                }
                let repository = try Repository(directory: repo)
                let version = try repository.rotateRoot(add: add, remove: remove, thresholds: thresholds, now: ReleaseCommand.now)
                Output.out("root v\(version) signed")
                try ReleaseCommand.reportUnsigned(repository)
            }
        }
    }

    struct RepoOption: ParsableArguments {
        @Option(help: "Repository directory (default ./otamesh-repo).") var repo = "./otamesh-repo"
        @Flag(help: "Accept private key files (--key, --add-key) that group or others can read.") var insecurePermissions = false
    }

    static var now: Int64 { WallClock.system.now().wholeSeconds }

    /// Runs a repository operation; failures are one line on stderr and exit 1.
    static func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        try reporting("otamesh release \(what)", body)
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
            let insecure = options.insecurePermissions
            try ReleaseCommand.run("init") {
                var supplied: [String: [TUFSigner]] = [:]
                for spec in keySpecs {
                    let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2, ["root", "targets", "snapshot", "timestamp"].contains(parts[0]) else {
                        throw ValidationError("--key takes ROLE=FILE with ROLE root, targets, snapshot or timestamp")
                    }
                    supplied[parts[0], default: []].append(try KeysCommand.readPrivateKey(parts[1], insecurePermissions: insecure))
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
        @Option(help: "Version to record when the image carries none (ESP8266 FOTA user1/user2, raw); must match the image's own otherwise.")
        var version: String?
        @Option(help: "Hardware/variant key to record (default: the chip the image names), e.g. esp32-eth01.")
        var hardware: String?
        @Argument(help: "The image file.") var file: String

        func run() throws {
            let repo = options.repo
            let target = path
            let source = file
            let givenVersion = version
            let givenHardware = hardware
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
                if let chip = givenHardware ?? report.chip { custom["hardware"] = .string(chip) }
                if let inImage = report.version, let givenVersion, givenVersion != inImage {
                    throw TrustError.invalidImage(file: source, reason: "--version \(givenVersion) differs from the version the image carries (\(inImage))")
                }
                if let version = report.version ?? givenVersion { custom["version"] = .string(version) }
                if let project = report.project { custom["project"] = .string(project) }
                // Gateways fetch it as verified pieces from several peers at once (protocol.md).
                let layout = try PieceLayout.choose(length: Int64(bytes.count))
                custom["pieces"] = TargetPieces(layout: layout, root: try PieceManifest(bytes: bytes, layout: layout).root).json
                let repository = try Repository(directory: repo)
                let replaced = try repository.targets()[target]
                if let recorded = report.version ?? givenVersion, let named = ReleaseCommand.versionMismatch(path: target, version: recorded) {
                    Output.err("warning: \(target) names version \(named), but the image is version \(recorded); devices and admins read the path")
                }
                try repository.add(bytes: bytes, path: target, custom: .object(custom), now: ReleaseCommand.now)
                if let replaced {
                    let was = replaced.custom?["version"]?.stringValue.map { "version \($0), " } ?? ""
                    Output.out(
                        "replaced \(target) (was \(was)\(replaced.length) bytes, sha256 \(replaced.hashes["sha256"] ?? "?")): "
                            + "\(report.format.rawValue), \(bytes.count) bytes, sha256 \(report.sha256)")
                } else {
                    Output.out("added \(target): \(report.format.rawValue), \(bytes.count) bytes, sha256 \(report.sha256)")
                }
                try ReleaseCommand.reportUnsigned(repository)
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
                let pieces = (try? TargetPieces.from(custom: target.custom, length: target.length)) ?? nil
                let custom =
                    target.custom?.objectValue?.members.map { field in
                        if field.key == "pieces", let layout = pieces?.layout { return "pieces=\(layout.count)×\(layout.pieceSize)" }
                        return "\(field.key)=\(field.value.stringValue ?? field.value["name"]?.stringValue ?? "…")"
                    }
                    .joined(separator: " ") ?? ""
                Output.out("\(path)  \(target.length) bytes  \(custom)")
            }
        }
    }

    /// The version a target path names (`esp32/app/2.0.0.bin`, `fw/v2.1/app.bin`) when the image's
    /// own `version` is not it; nil when the path names none or the image's version starts with one
    /// it names (2.0.0 for 2.0.0-rc1, v-prefixes ignored).
    static func versionMismatch(path: String, version: String) -> String? {
        let own = version.hasPrefix("v") || version.hasPrefix("V") ? String(version.dropFirst()) : version
        var named: [String] = []
        for component in path.split(separator: "/") {
            var text = Substring(component)
            var current = ""
            var dots = 0
            func flush() {
                while current.hasSuffix(".") { current.removeLast(); dots -= 1 }
                if dots >= 1 { named.append(current) }
                current = ""
                dots = 0
            }
            while let character = text.first {
                text = text.dropFirst()
                if character.isASCII && character.isNumber {
                    current.append(character)
                } else if character == ".", !current.isEmpty, !current.hasSuffix(".") {
                    current.append(character)
                    dots += 1
                } else {
                    flush()
                }
            }
            flush()
        }
        guard !named.isEmpty, !named.contains(where: { own.hasPrefix($0) }) else { return nil }
        return named.first
    }
}
