import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `otamesh agent` started with each thing that can be wrong: it must end by itself, soon, with
/// exit status 1 or 2 (never a signal, never a hang) and say the reason in one line.
@Suite("agent start-up failures", .serialized)
struct StartupFailureTests {
    /// What a failed start left: how it ended and what it printed.
    struct Ended {
        let exitedNormally: Bool
        let status: Int32
        let stderr: String
        let stdout: String

        /// The `otamesh agent: …` line, when the start ended the way a user expects.
        var reason: String? {
            guard exitedNormally, status == 1 || status == 2, !stderr.contains("Fatal error") else { return nil }
            return stderr.split(separator: "\n").last { $0.hasPrefix("otamesh agent: ") }.map(String.init)
        }
    }

    /// Runs an agent that should not start (gossip on, no mDNS), with a 30 s deadline.
    static func start(data: String, _ extra: [String], gossip: Bool = true) throws -> Ended {
        func has(_ flag: String) -> Bool { extra.contains(flag) }
        var arguments = ["agent", "--data-dir", data, "--discovery", "off", "--device-discovery", "off"]
        if !has("--admin-listen") { arguments += ["--admin-listen", "127.0.0.1:0"] }
        if !has("--device-listen") { arguments += ["--device-listen", "127.0.0.1:0"] }
        if !has("--device-tls-listen") { arguments += ["--device-tls-listen", "off"] }
        if !has("--gossip-listen") { arguments += ["--gossip-listen", gossip ? "127.0.0.1:0" : "off"] }
        let child = try Child(Binaries.otamesh, arguments + extra)
        let status = child.wait(timeout: 30)
        return Ended(
            exitedNormally: status != -1 && child.process.terminationReason == .exit, status: status,
            stderr: child.stderr.text, stdout: child.stdout.text)
    }

    /// An admin key's public JSON, made by `otamesh keys generate`.
    static func adminKey(_ dir: TemporaryDirectory, _ name: String) throws -> String {
        let (status, _, err) = try run(["keys", "generate", "--name", name, "--dir", dir.path])
        #expect(status == 0, "\(err)")
        return try String(contentsOfFile: dir.file("\(name).pub.json"), encoding: .utf8)
    }

    @Test("a site trust file that is not JSON, or asks for more signatures than it lists keys: the reason, exit 1, every time (5 runs each)")
    func badSiteTrust() throws {
        let dir = try TemporaryDirectory()
        let notJSON = dir.file("not-json.json")
        try "not json".write(toFile: notJSON, atomically: true, encoding: .utf8)
        let key = try Self.adminKey(dir, "alice")
        let overThreshold = dir.file("threshold.json")
        try #"{"site": "s", "threshold": 2, "admins": {"k": \#(key)}}"#.write(toFile: overThreshold, atomically: true, encoding: .utf8)
        for (file, reason) in [(notJSON, "\(notJSON): "), (overThreshold, "threshold 2 needs 1…1")] {
            for run in 1...5 {
                let ended = try Self.start(data: dir.file("d"), ["--site-trust", file])
                let line = try #require(ended.reason, "run \(run): \(ended)")
                #expect(line.contains(reason), "run \(run): \(line)")
            }
        }
    }

    @Test("a bad keyring, trust root, data directory, site CA certificate or config: the reason, exit 1 or 2")
    func badFiles() throws {
        let dir = try TemporaryDirectory()
        // Site keyring: not a keyring.
        let keyring = dir.file("site.keyring")
        try "{\"site\": \"x\"}".write(toFile: keyring, atomically: true, encoding: .utf8)
        chmod(keyring, 0o600)
        var ended = try Self.start(data: dir.file("d1"), ["--site-keyring", keyring])
        #expect(ended.reason?.contains("site keyring \(keyring): expected JSON") == true, "\(ended)")

        // Trust root: not JSON.
        let root = dir.file("root.json")
        try "not json".write(toFile: root, atomically: true, encoding: .utf8)
        ended = try Self.start(data: dir.file("d2"), ["--trust-root", root])
        #expect(ended.reason?.contains(root) == true, "\(ended)")

        // Data directory: a file.
        try "x".write(toFile: dir.file("plain-file"), atomically: true, encoding: .utf8)
        ended = try Self.start(data: dir.file("plain-file"), [])
        #expect(ended.reason?.contains("exists and is not a directory") == true, "\(ended)")

        // Site CA: a gateway certificate that is not one (device HTTPS on).
        let tlsData = dir.file("d4")
        try FileManager.default.createDirectory(atPath: "\(tlsData)/keys", withIntermediateDirectories: true)
        for name in ["site-ca.pem", "gateway.pem", "gateway.key"] { try "garbage".write(toFile: "\(tlsData)/keys/\(name)", atomically: true, encoding: .utf8) }
        chmod("\(tlsData)/keys/gateway.key", 0o600)
        ended = try Self.start(data: tlsData, ["--device-tls-listen", "127.0.0.1:0"])
        #expect(ended.reason?.contains("cannot load the gateway certificate") == true, "\(ended)")

        // Config file: not YAML.
        let config = dir.file("otamesh.yaml")
        try "gossip: [unclosed\n".write(toFile: config, atomically: true, encoding: .utf8)
        ended = try Self.start(data: dir.file("d3"), ["--config", config])
        #expect(ended.status == 2 && ended.reason?.contains("\(config): not valid YAML") == true, "\(ended)")
    }

    @Test("each listener whose port is taken (device, admin, gossip): its key and address in the reason, exit 1 (3 runs each)")
    func portsInUse() throws {
        let dir = try TemporaryDirectory()
        let running = try Gateway.start(data: dir.file("running"))
        defer { running.stop() }
        func hostPort(_ url: String) -> String { String(url.split(separator: "/").last ?? "") }
        let taken = [
            ("--device-listen", "device.listen", hostPort(running.device)), ("--admin-listen", "admin.listen", hostPort(running.admin)),
            ("--gossip-listen", "gossip.listen", running.gossip!),
        ]
        for (flag, key, address) in taken {
            for run in 1...3 {
                let ended = try Self.start(data: dir.file("other"), [flag, address])
                let line = try #require(ended.reason, "\(flag) run \(run): \(ended)")
                #expect(line.contains("\(key) \(address): cannot listen: Address already in use"), "\(line)")
                #expect(!ended.stdout.contains(" ready"), "\(ended.stdout)")
            }
        }
        #expect(running.child.process.isRunning)
    }

    @Test("secret files others can read are refused, naming file and mode; --insecure-permissions accepts them")
    func openSecretFiles() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("d")
        // A first start creates the token files 0600 and the keyring 0600.
        let first = try Gateway.start(data: data)
        first.stop()
        for file in ["keys/admin.token", "keys/read.token", "keys/site.keyring"] {
            var info = stat()
            #expect(stat("\(data)/\(file)", &info) == 0 && info.st_mode & 0o777 == 0o600, "\(file)")
        }
        for file in ["keys/admin.token", "keys/site.keyring"] {
            chmod("\(data)/\(file)", 0o644)
            let ended = try Self.start(data: data, [])
            #expect(
                ended.reason == "otamesh agent: \(data)/\(file): mode 0644 gives group/other access; chmod 600 it, or pass --insecure-permissions",
                "\(ended)")
            let accepted = try Gateway.start(data: data, extra: ["--insecure-permissions"])
            accepted.stop()
            chmod("\(data)/\(file)", 0o600)
        }
    }

    @Test("--join without the site keyring: refused with where to get it, and no new site is made")
    func joinWithoutKeyring() throws {
        let dir = try TemporaryDirectory()
        let ended = try Self.start(data: dir.file("d"), ["--join", "127.0.0.1:7946"])
        let line = try #require(ended.reason, "\(ended)")
        #expect(line.contains("no site keyring at \(dir.file("d"))/keys/site.keyring") && line.contains("copy the site's keyring"), "\(line)")
        #expect(!FileManager.default.fileExists(atPath: dir.file("d/keys/site.keyring")))
    }
}
