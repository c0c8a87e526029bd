import Foundation
import OTAMeshTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The site from any gateway (`otamesh devices --site`), and an air-gapped import into a running
/// agent; read-only commands that find no gateway data create none.
@Suite("site view and live import", .serialized)
struct SiteViewTests {
    static func addDevice(_ id: String, data: String, hardware: String, version: String) throws {
        let (status, out, err) = try run([
            "device", "add", "--data-dir", data, "--id", id, "--family", "projectmm", "--address", "127.0.0.1:9",
            "--hardware", hardware, "--version", version,
        ])
        #expect(status == 0, "\(out) \(err)")
    }

    @Test("otamesh devices --site on either gateway lists both gateways' devices, each once, with the gateway that knows it")
    func siteDevices() throws {
        let site = try SiteAuthTests.Site()
        try Self.addDevice("aa:00:00:00:00:01", data: site.dir.file("d1"), hardware: "esp32", version: "1.0.0")
        try Self.addDevice("aa:00:00:00:00:02", data: site.dir.file("d2"), hardware: "esp32s3", version: "2.0.0")
        // The same device known to both gateways shows once.
        try Self.addDevice("aa:00:00:00:00:03", data: site.dir.file("d1"), hardware: "esp32", version: "1.0.0")
        try Self.addDevice("aa:00:00:00:00:03", data: site.dir.file("d2"), hardware: "esp32", version: "1.0.0")
        for data in ["d1", "d2"] {
            var last = ""
            let complete = waitUntil(timeout: 30) {
                guard let (status, out, _) = try? run(["devices", "--site", "--data-dir", site.dir.file(data), "--json"], timeout: 20), status == 0
                else { return false }
                last = out
                let lines = out.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                let byID = Dictionary(lines.map { ($0["id"] as? String ?? "", $0) }, uniquingKeysWith: { first, _ in first })
                return lines.count == 3 && byID["aa:00:00:00:00:01"]?["gateway"] as? String == "gw1"
                    && byID["aa:00:00:00:00:02"]?["gateway"] as? String == "gw2" && byID["aa:00:00:00:00:02"]?["version"] as? String == "2.0.0"
                    && byID["aa:00:00:00:00:02"]?["hardware"] as? String == "esp32s3"
                    && Set(byID["aa:00:00:00:00:03"]?["gateways"] as? [String] ?? []) == ["gw1", "gw2"]
            }
            #expect(complete, "\(data): \(last)")
        }
        // The table, through the other gateway with a site admin key and no token.
        let (status, out, err) = try run([
            "devices", "--site", "--admin", site.gw2.admin, "--key", "\(site.keys)/admin-a.pem",
            "--data-dir", site.dir.file("nowhere"),
        ])
        #expect(status == 0 && out.contains("3 devices of the site, on 2 gateways (as gateway gw2 sees them)"), "\(out) \(err)")
        #expect(out.contains("aa:00:00:00:00:01") && out.contains("gw1"), "\(out)")
        // Without --site and without a data directory: the site view of the running gateway it names.
        let (fallback, fallbackOut, fallbackErr) = try run([
            "devices", "--admin", site.gw1.admin, "--key", "\(site.keys)/admin-a.pem",
            "--data-dir", site.dir.file("nowhere"),
        ])
        #expect(fallback == 0 && fallbackOut.contains("3 devices of the site"), "\(fallbackOut) \(fallbackErr)")
        #expect(!FileManager.default.fileExists(atPath: site.dir.file("nowhere")))
    }

    @Test("a restarted gateway's device changes reach the site: a device removed while it was down disappears from the other gateway's view")
    func restartedGateway() throws {
        let dir = try TemporaryDirectory()
        try writeSiteKeyring(to: dir.file("site.keyring"), site: "restart-site")
        let common = ["--site-keyring", dir.file("site.keyring")]
        let gw1 = try Gateway.start(data: dir.file("d1"), extra: ["--node-name", "gw1"] + common)
        defer { gw1.stop() }
        try Self.addDevice("bb:00:00:00:00:01", data: dir.file("d2"), hardware: "esp32", version: "1.0.0")
        try Self.addDevice("bb:00:00:00:00:02", data: dir.file("d2"), hardware: "esp32", version: "1.0.0")
        func ids() -> [String] {
            guard let (status, out, _) = try? run(["devices", "--site", "--data-dir", dir.file("d1"), "--json"], timeout: 20), status == 0 else { return ["?"] }
            return out.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])?["id"] as? String }
                .sorted()
        }
        let first = try Gateway.start(data: dir.file("d2"), extra: ["--node-name", "gw2", "--join", gw1.gossip!] + common)
        #expect(waitUntil(timeout: 30) { ids() == ["bb:00:00:00:00:01", "bb:00:00:00:00:02"] }, "\(ids())")
        first.stop()
        let (removed, out, err) = try run(["device", "remove", "--data-dir", dir.file("d2"), "bb:00:00:00:00:02"])
        #expect(removed == 0, "\(out) \(err)")
        let second = try Gateway.start(data: dir.file("d2"), extra: ["--node-name", "gw2", "--join", gw1.gossip!] + common)
        defer { second.stop() }
        #expect(waitUntil(timeout: 30) { ids() == ["bb:00:00:00:00:01"] }, "the retraction of the restarted gateway wins: \(ids())")
    }

    @Test("otamesh import while the agent runs goes through it: the image is listed and served at once; a bad bundle is refused")
    func importIntoRunningAgent() async throws {
        let dir = try TemporaryDirectory()
        let image = try PublishedRelease.Image.esp32("esp32/app/2.0.0.bin", version: "2.0.0", size: 70000, file: dir.file("esp32-2.0.0.bin"))
        _ = try PublishedRelease(in: dir, images: [image], exporting: true)
        let data = dir.file("data")
        let gateway = try Gateway.start(data: data)
        defer { gateway.stop() }

        let (imported, out, err) = try run(["import", "--data-dir", data, "--root", dir.file("pub/metadata/1.root.json"), dir.file("b.tar")])
        #expect(imported == 0 && out.contains("imported 1 targets (1 new), metadata updated through the running agent at \(gateway.admin)"), "\(out) \(err)")
        #expect(out.contains("the agent trusted no root until now: restart it"), "the admin learns rollouts wait for a restart: \(out)")
        let (listed, images, imagesErr) = try run(["images", "--data-dir", data])
        #expect(listed == 0 && images.contains("esp32/app/2.0.0.bin  2.0.0") && images.contains("cached"), "\(images) \(imagesErr)")
        let expected = try Data(contentsOf: URL(fileURLWithPath: image.file))
        var served = Data()
        let serving = waitUntil(timeout: 10) {
            guard let bytes = try? Data(contentsOf: URL(string: "\(gateway.device)/v1/targets/esp32/app/2.0.0.bin")!) else { return false }
            served = bytes
            return bytes == expected
        }
        #expect(serving, "the running agent serves the imported image (\(served.count) bytes)")
        // Again: nothing new. A tampered bundle: refused, with why.
        let (again, againOut, _) = try run(["import", "--data-dir", data, dir.file("b.tar")])
        #expect(again == 0 && againOut.contains("imported 1 targets (0 new)"), "\(againOut)")
        var tar = try Data(contentsOf: URL(fileURLWithPath: dir.file("b.tar")))
        if let range = tar.range(of: expected.prefix(4096).suffix(64)) { tar[range.lowerBound] ^= 0xFF }
        try tar.write(to: URL(fileURLWithPath: dir.file("bad.tar")))
        let (bad, _, badErr) = try run(["import", "--data-dir", data, dir.file("bad.tar")])
        #expect(bad == 1 && badErr.contains("HTTP 422") && badErr.contains("bundle refused"), "\(badErr)")
        // Without an agent, import still works directly.
        gateway.stop()
        let (direct, directOut, directErr) = try run([
            "import", "--data-dir", dir.file("data2"), "--root", dir.file("pub/metadata/1.root.json"), dir.file("b.tar"),
        ])
        #expect(direct == 0 && directOut.contains("imported 1 targets (1 new)") && !directOut.contains("through"), "\(directOut) \(directErr)")
    }

    @Test("read-only commands in a directory without gateway data create nothing and say why")
    func readOnlyCreatesNothing() throws {
        let dir = try TemporaryDirectory()
        let empty = dir.file("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        // A port nothing listens on, so no gateway of this machine answers.
        let nobody = "http://127.0.0.1:9"
        for command in [
            "devices", "devices --site", "images", "cache ls", "members", "rollout list", "rollout status r-0123456789ab",
            "keys site-ca --export-pem",
        ] {
            let admin = command.hasPrefix("images") || command.hasPrefix("cache") || command.hasPrefix("keys") ? "" : " --admin \(nobody)"
            let script = "cd '\(empty)' && exec env -u OTAMESH_CONFIG -u OTAMESH_DATA_DIR -u OTAMESH_TOKEN '\(Binaries.otamesh)' \(command)\(admin)"
            let (status, out, err) = try runProgram("/bin/sh", ["-c", script], timeout: 30)
            #expect(status != 0, "\(command): \(out)")
            let left = try FileManager.default.contentsOfDirectory(atPath: empty)
            #expect(left.isEmpty, "\(command) created \(left)")
            if command == "devices" {
                #expect(err.contains("no gateway data at ./otamesh-data (and no gateway answers at \(nobody))"), "\(err)")
            }
        }
    }
}
