import Foundation
import OTAMeshGateway
import OTAMeshTrust
import Testing

@testable import otamesh

/// The CLI's site-wide pieces: which credential it presents, where it finds the gateway, and
/// how it prints what devices sent.
@Suite("site CLI")
struct SiteCLITests {
    static func temporary() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("otamesh-site-cli-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test("credential: --token-file, --key, OTAMESH_TOKEN, the data directory's tokens, then a key from the environment")
    func credentialOrder() throws {
        let dir = try Self.temporary()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let token = "\(dir)/admin.token"
        try Data("admin-token-0123456789abcdef\n".utf8).write(to: URL(fileURLWithPath: token))
        let key = "\(dir)/alice.pem"
        let signer = try KeyFile.generate(.ed25519)
        try Data(KeyFile.pem(signer).utf8).write(to: URL(fileURLWithPath: key))
        let tokens = { [token] }
        let none = { ["\(dir)/missing"] }
        func source(_ tokenFile: String?, _ keyFile: String?, _ environment: [String: String], _ candidates: () throws -> [String]) throws -> String {
            try AdminCredentialLookup.resolve(tokenFile: tokenFile, keyFile: keyFile, environment: environment, candidates: candidates).source
        }
        #expect(try source(token, key, [:], tokens) == token)
        #expect(try source(nil, key, ["OTAMESH_TOKEN": "env-token-0123456789abc"], tokens) == key)
        #expect(try source(nil, nil, ["OTAMESH_TOKEN": "env-token-0123456789abc", "OTAMESH_ADMIN_KEY_FILE": key], tokens) == "OTAMESH_TOKEN")
        #expect(try source(nil, nil, ["OTAMESH_ADMIN_KEY_FILE": key], tokens) == token, "a gateway's own token first on its host")
        #expect(try source(nil, nil, ["OTAMESH_ADMIN_KEY_FILE": key], none) == key)
        #expect(try source(nil, nil, ["OTAMESH_ADMIN_KEY": KeyFile.pem(signer)], none) == "$OTAMESH_ADMIN_KEY")
        let found = try AdminCredentialLookup.resolve(tokenFile: nil, keyFile: key, environment: [:], candidates: none)
        guard case .key(let parsed) = found.credential else { Issue.record("a key file gives a signing credential"); return }
        #expect(parsed.publicKey == signer.publicKey)
        do {
            _ = try source(nil, nil, [:], none)
            Issue.record("no credential should be found")
        } catch {
            #expect("\(error)".contains("no admin API token") && "\(error)".contains("--key FILE"), "\(error)")
        }
        #expect(throws: (any Error).self) { try source(nil, "\(dir)/nope.pem", [:], tokens) }
    }

    @Test("a signed client signs exactly the target the gateway receives")
    func signedTarget() throws {
        let signer = TUFSigner.ed25519(.init())
        let client = AdminClient(admin: "http://127.0.0.1:8071/", credential: .key(signer))
        #expect(client.target("devices") == "/api/v1/devices")
        #expect(AdminClient(admin: "http://gw:1/prefix", credential: .key(signer)).target("rollouts/r-1") == "/prefix/api/v1/rollouts/r-1")
        let header = try client.authorization("POST", "bundles", body: [1, 2, 3])
        let credentials = try SignedRequest.parse(header)
        let trust = try SiteTrust(site: "s", threshold: 1, admins: [signer.publicKey])
        try SignedRequest.verify(credentials, method: "POST", target: "/api/v1/bundles", trust: trust, now: Int64(Date().timeIntervalSince1970))
        #expect(try AdminClient(admin: "http://x", token: "t-0123456789abcdef").authorization("GET", "members", body: nil) == "Bearer t-0123456789abcdef")
    }

    @Test("admin address: --admin, else DATA/admin.url, else admin.listen made reachable")
    func address() throws {
        let dir = try Self.temporary()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var configuration = AgentConfiguration()
        try configuration.set("dataDir", dir, source: "test")
        #expect(AdminAddress.resolve(configuration) == "http://127.0.0.1:8071")
        // All interfaces: made loopback, and HTTPS, which the admin API speaks off loopback (admin.tls auto).
        try configuration.set("admin.listen", ":9000", source: "test")
        #expect(AdminAddress.resolve(configuration) == "https://127.0.0.1:9000")
        try configuration.set("admin.listen", "[::]:9000", source: "test")
        #expect(AdminAddress.resolve(configuration) == "https://[::1]:9000")
        try configuration.set("admin.tls", "off", source: "test")
        #expect(AdminAddress.resolve(configuration) == "http://[::1]:9000")
        AdminAddress.record(host: "0.0.0.0", port: 41_234, dataDirectory: dir)
        #expect(AdminAddress.resolve(configuration) == "http://127.0.0.1:41234")
        AdminAddress.record(host: "0.0.0.0", port: 41_235, scheme: "https", dataDirectory: dir)
        #expect(AdminAddress.resolve(configuration) == "https://127.0.0.1:41235", "the running agent's scheme wins")
        try Data("garbage\u{1b}\n".utf8).write(to: URL(fileURLWithPath: AdminAddress.recordedPath(dataDirectory: dir)))
        #expect(AdminAddress.resolve(configuration) == "http://[::1]:9000", "an unreadable admin.url is ignored")
        #expect(
            AdminUnreachable(url: "http://127.0.0.1:1").description
                == "no gateway answers at http://127.0.0.1:1: is it running? (--admin URL); an admin API off loopback speaks HTTPS: https://")
        #expect(AdminUnreachable(url: "https://127.0.0.1:1").description == "no gateway answers at https://127.0.0.1:1: is it running? (--admin URL)")
    }

    @Test("device strings print with control characters, bidi overrides and line separators escaped")
    func printable() {
        #expect(Output.printable("esp32\u{1b}[31mred\u{7}") == "esp32\\u{1b}[31mred\\u{7}")
        #expect(Output.printable("a\nb\rc\u{85}d\u{2028}e") == "a\\u{a}b\\u{d}c\\u{85}d\\u{2028}e")
        #expect(Output.printable("abc\u{202e}fed") == "abc\\u{202e}fed")
        #expect(Output.printable("esp32-s3 v1.0.2t45772(a) ünïcode") == "esp32-s3 v1.0.2t45772(a) ünïcode")
    }
}
