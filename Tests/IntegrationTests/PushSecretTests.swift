import Foundation
import OTAMeshTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A push device added by hand with its password in the secret store, updated by a real
/// rollout through a real agent: the agent sends the password (the twin wants it), the
/// registry learns the confirmed version, and the password appears in nothing the agent prints
/// or writes besides the secret store, nor in `otamesh devices`.
@Suite("push devices with secrets", .serialized)
struct PushSecretTests {
    static let password = "pw-Zq81-never-print-me"

    @Test("device add with --password-file (and a fetch-url device with options), a rollout pushes to both; the password leaks nowhere")
    func rolloutWithSecret() throws {
        let dir = try TemporaryDirectory()
        let data = dir.file("data")
        let keys = dir.file("admins")
        let image = try PublishedRelease.Image.esp32("esp32/app/2.0.0.bin", version: "2.0.0", size: 120000, file: dir.file("esp32-2.0.0.bin"))
        _ = try PublishedRelease(in: dir, images: [image], importingInto: [data])
        let signing = try SignedSite(site: "push-site", admins: ["admin-a"], threshold: 1)
        try signing.writeKeys(to: keys)
        try signing.writeTrustFile(to: dir.file("site-trust.json"))

        let twin = try PushTwin.start(
            family: "http-upload",
            [
                "--version", "1.0.0", "--user", "ota", "--password", Self.password,
                "--reboot-delay-ms", "100", "--reboot-ms", "500", "--duration", "300",
            ])
        defer { twin.stop() }
        let passwordFile = dir.file("password")
        try (Self.password + "\n").write(toFile: passwordFile, atomically: true, encoding: .utf8)

        // Bad input changes nothing: an unreadable password file leaves no device behind.
        let (bad, _, badErr) = try run([
            "device", "add", "--data-dir", data, "--id", "lamp-1", "--family", "http-upload", "--address", twin.address,
            "--password-file", dir.file("missing"),
        ])
        #expect(bad != 0 && badErr.contains("--password-file"), "\(badErr)")
        #expect(try run(["devices", "--data-dir", data]).1.contains("lamp-1") == false)

        let (added, addOut, addErr) = try run([
            "device", "add", "--data-dir", data, "--id", "lamp-1", "--family", "http-upload", "--address", twin.address,
            "--hardware", "esp32", "--version", "1.0.0", "--user", "ota", "--password-file", passwordFile,
            "--tags", "lobby",
        ])
        #expect(added == 0, "\(addOut) \(addErr)")
        #expect(addOut.contains("password stored") && !addOut.contains(Self.password))
        let secrets = "\(data)/keys/device-secrets.json"
        var info = stat()
        #expect(stat(secrets, &info) == 0 && info.st_mode & 0o777 == 0o600)

        // A fetch-url device whose command differs from the default: its options travel from the
        // registry to the adapter.
        let fetcher = try PushTwin.start(
            family: "fetch-url",
            [
                "--version", "1.0.0", "--method", "PUT", "--path", "/api/upgrade",
                "--reboot-delay-ms", "100", "--reboot-ms", "500", "--duration", "300",
            ])
        defer { fetcher.stop() }
        let (addedFetcher, fetcherOut, fetcherErr) = try run([
            "device", "add", "--data-dir", data, "--id", "lamp-2", "--family", "fetch-url",
            "--address", fetcher.address, "--hardware", "esp32", "--version", "1.0.0", "--tags", "lobby",
            "--option", "method=PUT", "--option", "path=/api/upgrade", "--option", "accept=202",
        ])
        #expect(addedFetcher == 0, "\(fetcherOut) \(fetcherErr)")

        let gateway = try Gateway.start(data: data, extra: ["--node-name", "gw1", "--site-trust", dir.file("site-trust.json"), "--log-level", "debug"])
        defer { gateway.stop() }
        let (started, out, err) = try run(
            [
                "rollout", "start", "--target", "esp32/app/2.0.0.bin", "--select", "tag=lobby", "--stages", "100",
                "--soak", "1s", "--max-failures", "0", "--min-finished", "1", "--concurrency", "2",
                "--admin", gateway.admin, "--key", "\(keys)/admin-a.pem",
            ] + gateway.tokenArguments, timeout: 30)
        #expect(started == 0, "\(out) \(err)")
        let id = try #require(RolloutTests.Site.id(in: out), "no rollout id in: \(out)")

        func status() -> [String: Any]? {
            guard let (code, out, _) = try? run(["rollout", "status", id, "--json", "--admin", gateway.admin] + gateway.tokenArguments, timeout: 30), code == 0
            else { return nil }
            return try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any]
        }
        #expect(
            waitUntil(timeout: 90) { (status()?["stages"] as? [[String: Any]])?.last?["succeeded"] as? Int == 2 },
            "both pushes succeed: \(String(describing: status())) \(gateway.child.stdout.text.suffix(2000)) \(twin.child.stdout.text) \(fetcher.child.stdout.text)"
        )
        #expect(twin.count("installed") == 1 && twin.count("unauthorized") == 0, "\(twin.child.stdout.text)")
        #expect(fetcher.count("post") == 1 && fetcher.count("installed") == 1, "PUT /api/upgrade reached the twin: \(fetcher.child.stdout.text)")

        // The registry learnt the confirmed version.
        #expect(
            waitUntil(timeout: 10) { (try? run(["devices", "--data-dir", data, "--json"]))?.1.components(separatedBy: "\"version\":\"2.0.0\"").count == 3 })
        let (_, listed, _) = try run(["devices", "--data-dir", data])
        let (_, json, _) = try run(["devices", "--data-dir", data, "--json"])
        #expect(listed.contains("lamp-1") && listed.contains("source manual") && listed.contains("segment 127.0.0.0/24"), "\(listed)")
        #expect(!listed.contains(Self.password) && !json.contains(Self.password))

        let printed = gateway.child.stdout.text + gateway.child.stderr.text
        #expect(printed.contains("rollout push started"), "the push is logged")
        #expect(!printed.contains(Self.password), "the agent never prints the password")
        // Nor does any file the agent wrote, besides the secret store itself.
        for file in Self.files(under: data) where file != secrets {
            guard let bytes = FileManager.default.contents(atPath: file) else { continue }
            #expect(bytes.range(of: Data(Self.password.utf8)) == nil, "\(file) holds the password")
        }
    }

    static func files(under root: String) -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: root) else { return [] }
        return walker.compactMap { $0 as? String }.map { "\(root)/\($0)" }.filter {
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: $0, isDirectory: &isDirectory) && !isDirectory.boolValue
        }
    }
}
