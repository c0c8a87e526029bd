import Foundation
import Testing

/// Air-gapped bundles: `otamesh release` → `publish` → `export` → `import` → `images`, and
/// bundles that must change nothing.
@Suite("bundles", .serialized)
struct BundleTests {
    static let fixtures = Binaries.packageRoot.appendingPathComponent("Tests/Fixtures").path

    /// A published repository with two images, and its bundle.
    static func publishedBundle(_ dir: TemporaryDirectory, name: String = "repo") throws -> (published: String, bundle: String) {
        let repo = dir.file(name)
        #expect(try run(["release", "init", "--repo", repo]).0 == 0)
        #expect(try run(["release", "add", "--repo", repo, "--path", "esp32/projectMM/2.1.0.bin", "\(fixtures)/esp/esp32s3.bin"]).0 == 0)
        #expect(try run(["release", "add", "--repo", repo, "--path", "w800/app_ota.img", "\(fixtures)/wm/w800_app_ota.img"]).0 == 0)
        let published = dir.file("\(name)-published")
        #expect(try run(["release", "publish", "--repo", repo, published]).0 == 0)
        let bundle = dir.file("\(name).tar")
        let (status, _, err) = try run(["export", "--published", published, bundle])
        #expect(status == 0, "\(err)")
        return (published, bundle)
    }

    /// Everything a user can observe about a gateway's state.
    static func state(_ data: String) throws -> String {
        let tuf = listing("\(data)/tuf").map { name in
            "\(name):\(sha256Hex((try? Data(contentsOf: URL(fileURLWithPath: "\(data)/tuf/\(name)"))) ?? Data()))"
        }
        return try run(["cache", "ls", "--data-dir", data]).1 + tuf.joined(separator: "\n")
    }

    @Test("import verifies, stores through the expected-hash add, lists images; importing twice is a no-op")
    func roundTrip() throws {
        let dir = try TemporaryDirectory()
        let (published, bundle) = try Self.publishedBundle(dir)
        let data = dir.file("gateway")
        let (status, out, err) = try run(["import", "--data-dir", data, "--root", "\(published)/metadata/1.root.json", bundle])
        #expect(status == 0, "\(err)")
        #expect(out == "imported 2 targets (2 new), metadata updated\n")
        let before = try Self.state(data)
        let (again, againOut, _) = try run(["import", "--data-dir", data, bundle])
        #expect(again == 0 && againOut == "imported 2 targets (0 new)\n")
        #expect(try Self.state(data) == before)
        let (_, images, _) = try run(["images", "--data-dir", data, "--json"])
        let lines = images.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].contains("\"hardware\":\"esp32s3\"") && lines[0].contains("\"version\":\"2.1.0-dev.7\"") && lines[0].contains("\"cached\":true"))
        #expect(lines[1].contains("\"format\":\"wm-ota\""))
    }

    @Test("a tampered, truncated or foreign bundle changes nothing and says why")
    func refusals() throws {
        let dir = try TemporaryDirectory()
        let (published, bundle) = try Self.publishedBundle(dir)
        let data = dir.file("gateway")
        // Trust the site root but import nothing yet.
        #expect(try run(["tuf", "--metadata-dir", "\(data)/tuf", "init", "\(published)/metadata/1.root.json"]).0 == 0)
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: bundle)))

        // 1. A byte of the ESP32 image flipped inside the tar.
        let image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(Self.fixtures)/esp/esp32s3.bin")))
        let at = try #require(Self.find(image.prefix(64), in: original))
        var tampered = original
        tampered[at + 300] ^= 0x01
        try Data(tampered).write(to: URL(fileURLWithPath: dir.file("tampered.tar")))
        let (s1, _, e1) = try run(["import", "--data-dir", data, dir.file("tampered.tar")])
        #expect(s1 == 1)
        #expect(e1.contains("esp32/projectMM/2.1.0.bin: sha") && e1.contains(", signed "), "\(e1)")

        // 2. Truncated.
        try Data(original.prefix(original.count / 2)).write(to: URL(fileURLWithPath: dir.file("truncated.tar")))
        let (s2, _, e2) = try run(["import", "--data-dir", data, dir.file("truncated.tar")])
        #expect(s2 == 1 && e2.contains("truncated"), "\(e2)")

        // 3. Signed by someone else's keys.
        let other = try TemporaryDirectory()
        let (_, foreign) = try Self.publishedBundle(other, name: "attacker")
        let (s3, _, e3) = try run(["import", "--data-dir", data, foreign])
        #expect(s3 == 1 && e3.contains("valid signature(s) from distinct trusted keys"), "\(e3)")

        // None of them stored anything.
        #expect(try run(["cache", "ls", "--data-dir", data]).1 == "0 blobs, 0 bytes\n")
        #expect(listing("\(data)/tuf") == ["root.json"])
        // The genuine bundle still imports.
        #expect(try run(["import", "--data-dir", data, bundle]).0 == 0)
    }

    static func find(_ needle: ArraySlice<UInt8>, in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle.first! {
            if haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
        }
        return nil
    }
}

/// Root rotation and offline keys, end to end through a gateway's imports.
@Suite("root rotation", .serialized)
struct RootRotationTests {
    static let fixtures = BundleTests.fixtures

    static func rootKeyIDs(_ repo: String, role: String) throws -> [String] {
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(repo)/metadata/root.json"))) as? [String: Any]
        let roles = (root?["signed"] as? [String: Any])?["roles"] as? [String: Any]
        return ((roles?[role] as? [String: Any])?["keyids"] as? [String]) ?? []
    }

    @Test("a gateway follows root and timestamp key rotation across imports (fast-forward recovery)")
    func rotation() throws {
        let dir = try TemporaryDirectory()
        let (published, bundle) = try BundleTests.publishedBundle(dir)
        let repo = dir.file("repo")
        let data = dir.file("gateway")
        #expect(try run(["import", "--data-dir", data, "--root", "\(published)/metadata/1.root.json", bundle]).0 == 0)
        let oldRoot = try #require(try Self.rootKeyIDs(repo, role: "root").first)
        let oldTimestamp = try #require(try Self.rootKeyIDs(repo, role: "timestamp").first)
        let (status, out, err) = try run([
            "release", "rotate-root", "--repo", repo, "--generate", "root", "--remove-key", "root=\(oldRoot)",
            "--generate", "timestamp=ecdsa", "--remove-key", "timestamp=\(oldTimestamp)",
        ])
        #expect(status == 0 && out.hasPrefix("root v2 signed"), "\(err)")
        #expect(try run(["release", "publish", "--repo", repo, dir.file("published2")]).0 == 0)
        #expect(try run(["export", "--published", dir.file("published2"), dir.file("bundle2.tar")]).0 == 0)
        let (imported, importOut, importErr) = try run(["import", "--data-dir", data, dir.file("bundle2.tar")])
        #expect(imported == 0, "\(importErr)")
        #expect(importOut.contains("metadata updated"))
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(data)/tuf/root.json"))) as? [String: Any]
        #expect((root?["signed"] as? [String: Any])?["version"] as? Int == 2)
        #expect(try ReleaseTests.ngclient(dir.file("published2"), ["esp32/projectMM/2.1.0.bin"]).0 == 0)
    }

    @Test("an offline root key: publish waits for its signature, then clients follow")
    func offlineKey() throws {
        let dir = try TemporaryDirectory()
        let repo = dir.file("repo")
        #expect(try run(["release", "init", "--repo", repo]).0 == 0)
        #expect(try run(["release", "publish", "--repo", repo, dir.file("v1")]).0 == 0)
        let offline = dir.file("offline.pem")
        #expect(try run(["keys", "generate", "--name", "offline", "--dir", dir.path]).0 == 0)
        // Rotation 1: add the offline key (it signs now, from memory) and require 2 root signatures.
        #expect(try run(["release", "rotate-root", "--repo", repo, "--add-key", "root=\(offline)", "--threshold", "root=2"]).0 == 0)
        #expect(!listing("\(repo)/keys").contains { $0.contains("3") }, "the offline key was not copied into the repository")
        // Rotation 2 needs the offline key again: publish refuses until it signs.
        let (rotated, rotatedOut, _) = try run(["release", "rotate-root", "--repo", repo, "--generate", "snapshot"])
        #expect(rotated == 0 && rotatedOut.contains("note: root has 1 of 2 signatures"), "\(rotatedOut)")
        let (refused, _, refusedErr) = try run(["release", "publish", "--repo", repo, dir.file("v3")])
        #expect(refused == 1 && refusedErr.contains("root.json: 1 valid signature(s) from distinct trusted keys, 2 required"), "\(refusedErr)")
        #expect(try run(["release", "sign", "--repo", repo, "--role", "root", "--key", offline]).0 == 0)
        #expect(try run(["release", "publish", "--repo", repo, dir.file("v3")]).0 == 0)
        let (status, err) = try ReleaseTests.ngclient(dir.file("v3"), [])
        #expect(status == 0, "\(err)")
    }
}
