import ArgumentParser
import Foundation
import OTAMeshGateway
import OTAMeshGossip
import OTAMeshTransfer

/// `otamesh keys site-keyring`: create a site's gossip keyring, or show one.
struct SiteKeyringCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "site-keyring",
        abstract: "Create the site keyring every gateway of a site shares (gossip encryption), or show its key fingerprints.",
        discussion: "Copy the file (mode 0600) to each gateway and point site.keyring (--site-keyring) at it.")
    @Option(help: "Keyring file to create.") var out: String?
    @Option(help: "Site id (default: a random one).") var site: String?
    @Option(help: "Show the site and key fingerprints of this keyring file; change nothing.") var show: String?

    func run() throws {
        try reporting("otamesh keys site-keyring") {
            if let show {
                let file = try SiteKeyringFile.load(show)
                Output.out("site \(file.site)")
                for (index, key) in file.keyring.keys.enumerated() {
                    Output.out("  key \(SiteKeyring.fingerprint(key))\(index == 0 ? "  (primary)" : "")")
                }
                return
            }
            guard let out else { throw ValidationError("give --out FILE to create a keyring, or --show FILE") }
            guard !FileManager.default.fileExists(atPath: out) else {
                throw KeyringFileError.unreadable(file: out, reason: "exists; refusing to overwrite a site keyring")
            }
            let file = SiteKeyringFile.generate(site: site ?? "site-\(UInt32.random(in: .min ... .max))")
            try file.save(out)
            Output.out("\(out): site \(file.site), key \(SiteKeyring.fingerprint(file.keyring.primary)) (0600; copy to every gateway)")
        }
    }
}

/// `otamesh members`: the mesh as the local gateway sees it.
struct MembersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "members", abstract: "List the gateways of the mesh: state, addresses and the images each holds.",
        discussion: "Needs the gateway's admin or read-only token (--token-file, OTAMESH_TOKEN, or DATA/keys/admin.token), or a site admin key (--key FILE).")
    @OptionGroup var api: AdminOptions
    @OptionGroup var adminKey: AdminKeyOption
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let asJSON = json
        try await reporting("otamesh members") {
            let bytes = try await api.client(key: adminKey.key).get("members")
            if asJSON {
                Output.out(String(decoding: bytes, as: UTF8.self))
                return
            }
            let view = try JSONDecoder().decode(MeshView.self, from: Data(bytes))
            Output.out("\(view.node) (this gateway)  \(view.address)  site \(view.site)  \(view.images.count) images  keys \(view.keys.joined(separator: ","))")
            let rows =
                [["NAME", "STATE", "GOSSIP", "HTTP", "VERSION", "IMAGES"]]
                + view.members.map { member in
                    [
                        member.name, member.status, member.address, member.http ?? "-", member.version ?? "-",
                        member.images.isEmpty ? "0" : "\(member.images.count) (\(member.images.map { String($0.prefix(12)) }.joined(separator: " ")))",
                    ]
                }
            let widths = (0..<6).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                Output.out(
                    row.enumerated().map { $0.offset == 5 ? $0.element : $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                        .joined(separator: "  "))
            }
        }
    }
}

/// `otamesh keys rotate-site`: a new site key on every running gateway, no restart, no partition.
struct RotateSiteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-site",
        abstract: "Rotate the site gossip key on the running mesh: install everywhere, then use, then retire the old key.",
        discussion: """
            Asks the local gateway to start the rotation and follows it until every live gateway holds only the new key. \
            Gateways that are down meanwhile keep the old key and cannot rejoin: copy the new keyring file to them.
            Needs the gateway's admin token (--token-file, OTAMESH_TOKEN, or DATA/keys/admin.token), or a site admin key (--key FILE).
            """)
    @OptionGroup var api: AdminOptions
    @OptionGroup var adminKey: AdminKeyOption
    @Option(help: "Give up following after this long (the rotation itself goes on), e.g. 2m.") var timeout = "2m"

    func run() async throws {
        guard let limit = AgentConfiguration.parseDuration(timeout) else { throw ValidationError("--timeout: expected a duration like 90s or 2m") }
        try await reporting("otamesh keys rotate-site") {
            let client = try api.client(key: adminKey.key)
            let started = try JSONDecoder().decode([String: String].self, from: Data(try await client.post("site/rotate")))
            guard let key = started["key"] else { throw RotationError(message: "the gateway did not say which key it made") }
            Output.out("rotation to key \(key) started")
            let deadline = Date().addingTimeInterval(limit)
            var last = ""
            while Date() < deadline {
                let view = try JSONDecoder().decode(MeshView.self, from: Data(try await client.get("members")))
                let everyone = [view.keys] + view.members.filter { $0.status == "alive" }.map { $0.keys ?? [] }
                let holding = everyone.filter { $0.contains(key) }.count
                let using = everyone.filter { $0.first == key }.count
                let only = everyone.filter { $0 == [key] }.count
                let line = "\(view.rotation ?? "?"): \(holding)/\(everyone.count) hold it, \(using) seal with it, \(only) hold only it"
                if line != last { Output.out("  \(line)") }
                last = line
                if only == everyone.count {
                    Output.out("done: every live gateway uses only key \(key)")
                    return
                }
                try await Task.sleep(for: .milliseconds(500))
            }
            throw RotationError(message: "not finished after \(timeout) (it goes on; check otamesh members --json)")
        }
    }

    struct RotationError: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }
}
