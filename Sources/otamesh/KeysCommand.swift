import ArgumentParser
import Foundation
import OTAMeshCommon
import OTAMeshGateway
import OTAMeshTrust

/// `otamesh keys …`: site admin keys, the site trust file and signed commands.
struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys", abstract: "Admin keys, the site trust file, admin-signed commands, the site CA and the gossip keyring.",
        subcommands: [
            Generate.self, SiteTrustFile.self, SignCommand.self, VerifyCommand.self, SiteCACommand.self, SiteKeyringCommand.self, RotateSiteCommand.self,
        ])

    static func run<T>(_ what: String, _ body: () throws -> T) throws -> T {
        try reporting("otamesh keys \(what)", body)
    }

    static func read(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else { throw TrustError.fetch(file: path, reason: "cannot read") }
        return [UInt8](data)
    }

    /// Reads a private key file, refusing one that group or others can read (``PrivateFile``).
    static func readPrivateKey(_ path: String, insecurePermissions: Bool) throws -> TUFSigner {
        try PrivateFile.check(path, allowOpen: insecurePermissions)
        return try KeyFile.parse(pem: String(decoding: try read(path), as: UTF8.self), file: path)
    }

    /// The admin name a public key file carries in its name: `alice.pub.json` → alice.
    static func adminName(ofKeyFile path: String) -> String? {
        var name = Substring(path.split(separator: "/").last ?? "")
        for suffix in [".json", ".pub"] where name.hasSuffix(suffix) { name = name.dropLast(suffix.count) }
        return name.isEmpty || name.utf8.count > 64 ? nil : String(name)
    }

    struct Generate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate a key pair: NAME.pem (private, 0600) and NAME.pub.json (public, for the trust file).")
        @Option(help: "What the key is for (admin).") var role = "admin"
        @Option(help: "Key type: ed25519, ecdsa, rsa.") var type = "ed25519"
        @Option(help: "Base name of the files.") var name: String
        @Option(help: "Directory to write to.") var dir = "."

        func run() throws {
            guard role == "admin" else { throw ValidationError("--role: only admin keys are generated here (release keys: otamesh release init)") }
            guard let keyType = KeyFile.KeyType(rawValue: type) else { throw ValidationError("--type must be ed25519, ecdsa or rsa") }
            let base = "\(dir)/\(name)"
            try KeysCommand.run("generate") {
                guard !FileManager.default.fileExists(atPath: "\(base).pem") else {
                    throw TrustError.malformed(file: "\(base).pem", reason: "exists; refusing to overwrite a private key")
                }
                // A new key directory is made private (0700), as a user would make it for keys.
                if !FileManager.default.fileExists(atPath: dir) {
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                }
                let signer = try KeyFile.generate(keyType)
                try FileSystem.write("\(base).pem", Array(KeyFile.pem(signer).utf8), mode: 0o600)
                try FileSystem.write("\(base).pub.json", signer.publicKey.json.prettyBytes)
                Output.out("\(base).pem (private), \(base).pub.json (public), key id \(signer.publicKey.computedKeyID)")
            }
        }
    }

    struct SiteTrustFile: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "site-trust", abstract: "Write the site trust file: admin public keys and the m-of-n threshold.")
        @Option(help: "Site name.") var site: String
        @Option(help: "Admin signatures required (at most the number of distinct keys).") var threshold: Int
        @Option(name: .shortAndLong, help: "Output file.") var output = "site-trust.json"
        @Argument(help: "Admin public keys (NAME.pub.json; NAME is kept as the admin's name in the file).") var keys: [String]

        func run() throws {
            try KeysCommand.run("site-trust") {
                let admins = try keys.map { try TUFKey(json: try JSONValue.parse(try KeysCommand.read($0)), context: $0) }
                var names: [String: String] = [:]
                for (key, file) in zip(admins, keys) {
                    if let name = KeysCommand.adminName(ofKeyFile: file) { names[key.computedKeyID] = name }
                }
                let trust = try SiteTrust(site: site, threshold: threshold, admins: admins, names: names, file: output)
                try Data(trust.json.prettyBytes).write(to: URL(fileURLWithPath: output))
                let listed = trust.admins.keys.sorted().map { id in "\(trust.name(ofKey: id) ?? "?") \(id.prefix(12))" }
                Output.out("\(output): site \(site), \(threshold) of \(trust.admins.count) admins (\(listed.joined(separator: ", ")))")
            }
        }
    }

    struct SignCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sign-command",
            abstract: "Create or co-sign an admin command envelope.",
            discussion: "With --add-to FILE, adds this admin's signature to an existing envelope (m-of-n).")
        @Option(help: "Admin private key (PEM).") var key: String
        @Option(help: "Existing envelope to co-sign.") var addTo: String?
        @Option(help: "Site name (new envelope).") var site: String?
        @Option(help: "Sequence number (new envelope).") var sequence: Int64?
        @Option(help: "Command kind, e.g. rollout.pause (new envelope).") var kind: String?
        @Option(help: "Payload JSON (new envelope).") var payload = "{}"
        @Option(name: .shortAndLong, help: "Output file (default: the --add-to file).") var output: String?
        @Flag(help: "Accept a key file that group or others can read.") var insecurePermissions = false

        func run() throws {
            try KeysCommand.run("sign-command") {
                let signer = try KeysCommand.readPrivateKey(key, insecurePermissions: insecurePermissions)
                var command: SignedCommand
                if let addTo {
                    command = try SignedCommand(bytes: try KeysCommand.read(addTo), file: addTo)
                } else {
                    guard let site, let sequence, let kind else { throw ValidationError("a new command needs --site, --sequence and --kind") }
                    command = SignedCommand(
                        site: site, sequence: sequence, kind: kind, payload: try JSONValue.parse(Array(payload.utf8)),
                        issued: WallClock.system.now().wholeSeconds)
                }
                try command.sign(with: signer)
                guard let destination = output ?? addTo else { throw ValidationError("--output is required for a new command") }
                try Data(command.bytes).write(to: URL(fileURLWithPath: destination))
                Output.out("\(destination): \(command.kind) #\(command.sequence), \(command.signatures.count) signature(s)")
            }
        }
    }

    struct VerifyCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "verify-command", abstract: "Verify a command envelope against the site trust file.")
        @Option(help: "Site trust file.") var trust = "site-trust.json"
        @Option(help: "Highest sequence already accepted (replays are refused).") var last: Int64?
        @Argument(help: "Command envelope.") var file: String

        func run() throws {
            try KeysCommand.run("verify-command") {
                let site = try SiteTrust(bytes: try KeysCommand.read(trust), file: trust)
                let command = try SignedCommand(bytes: try KeysCommand.read(file), file: file)
                try command.verify(trust: site, lastSequence: last)
                Output.out("\(file): valid \(command.kind) #\(command.sequence) for \(command.site)")
            }
        }
    }
}

/// `otamesh keys site-ca`: the site CA and this gateway's certificate for :8443.
struct SiteCACommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site-ca",
        abstract: "Create the site CA (once) and issue this gateway a certificate for its names and addresses.",
        discussion:
            "Files go to DATA_DIR/keys/ (keys 0600). The agent serves HTTPS on device.tlsListen once they exist, and on admin.listen when that is not loopback (admin.tls). Name every address and name clients reach the gateway at."
    )
    @OptionGroup var options: ConfigOptions
    @Option(help: "DNS name for the gateway certificate (repeatable; default: node name and localhost).") var name: [String] = []
    @Option(help: "IP address for the gateway certificate (repeatable; default 127.0.0.1, ::1 and admin.listen's address when it names one).") var address:
        [String] = []
    @Flag(help: "Print the site CA certificate (PEM) for devices and change nothing.") var exportPem = false

    func run() throws {
        let configuration = try options.load()
        let ca = SiteCA(keysDirectory: "\(configuration.dataDirectory)/keys")
        try reporting("otamesh keys site-ca") {
            if exportPem {
                Output.out(try ca.exportPEM(), terminator: "")
                return
            }
            try FileSystem.makeDirectory(configuration.dataDirectory)
            let names = name.isEmpty ? Array(Set([configuration.nodeName, "localhost"])).sorted() : name
            let addresses = address.isEmpty ? Self.defaultAddresses(configuration) : address
            let report = try ca.ensure(names: names, addresses: addresses)
            if report.createdCA { Output.out("created site CA \(ca.caCertPath)") }
            Output.out(
                "gateway certificate \(ca.gatewayCertPath) for \((names + addresses).joined(separator: ", ")), valid until \(ISO8601DateFormatter().string(from: report.notAfter))"
            )
            Output.out("devices pin: otamesh keys site-ca --export-pem > ca.pem")
        }
    }

    /// Loopback, and the admin API's own address when admin.listen names one (not all
    /// interfaces): the CLI checks that the certificate names the address it connects to.
    static func defaultAddresses(_ configuration: AgentConfiguration) -> [String] {
        var addresses = ["127.0.0.1", "::1"]
        let host = configuration.adminListen.host
        if host != "0.0.0.0", host != "::", SiteCA.isIPAddress(host), !addresses.contains(host) { addresses.append(host) }
        return addresses
    }
}
