import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `otamesh release` builds repositories that python-tuf's reference client (ngclient) and
/// otamesh's own client accept, with generated or openssl-made keys of every supported type.
@Suite("release repositories", .serialized)
struct ReleaseTests {
    static let fixtures = Binaries.packageRoot.appendingPathComponent("Tests/Fixtures").path
    static let verifier = "\(fixtures)/tuf/ngclient_verify.py"

    /// Runs python-tuf's ngclient on a published repository; nil when python-tuf is missing.
    static func ngclient(_ published: String, _ targets: [String]) throws -> (Int32, String) {
        let child = try Child("/usr/bin/env", ["python3", verifier, published, "\(published)/metadata/1.root.json"] + targets)
        let status = child.wait(timeout: 60)
        return (status, child.stderr.text)
    }

    static func makeRepository(_ dir: TemporaryDirectory, _ initArguments: [String]) throws -> String {
        let repo = dir.file("repo")
        let (status, _, err) = try run(["release", "init", "--repo", repo] + initArguments)
        #expect(status == 0, "\(err)")
        for (file, path) in [("esp/esp32s3.bin", "esp32/projectMM/2.1.0.bin"), ("wm/w800_app_ota.img", "w800/app_ota.img")] {
            let (addStatus, _, addErr) = try run(["release", "add", "--repo", repo, "--path", path, "\(fixtures)/\(file)"])
            #expect(addStatus == 0, "\(addErr)")
        }
        #expect(try run(["release", "publish", "--repo", repo, dir.file("published")]).0 == 0)
        return dir.file("published")
    }

    @Test("python-tuf's ngclient verifies otamesh repositories", arguments: ["ed25519", "ecdsa", "rsa"])
    func ngclientAccepts(keyType: String) throws {
        let dir = try TemporaryDirectory()
        let published = try Self.makeRepository(dir, ["--key-type", keyType, "--root-keys", "3", "--root-threshold", "2"])
        let (status, err) = try Self.ngclient(published, ["esp32/projectMM/2.1.0.bin", "w800/app_ota.img"])
        try #require(status != 2, "python-tuf is not installed (make deps installs tuf==7.0.1)")
        #expect(status == 0, "\(err)")
    }

    @Test("keys made by the openssl CLI sign; the repository verifies in both clients")
    func opensslKeys() throws {
        let dir = try TemporaryDirectory()
        var keyArguments: [String] = []
        for (role, algorithm) in [
            ("root", ["-algorithm", "ed25519"]), ("targets", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
            ("snapshot", ["-algorithm", "ed25519"]), ("timestamp", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
        ] {
            let file = dir.file("\(role).pem")
            let openssl = try Child("/usr/bin/openssl", ["genpkey"] + algorithm + ["-out", file])
            #expect(openssl.wait() == 0, "\(openssl.stderr.text)")
            keyArguments += ["--key", "\(role)=\(file)"]
        }
        // A key file others can read is refused (openssl writes them 0600), unless --insecure-permissions.
        chmod(dir.file("root.pem"), 0o644)
        let (open, _, openErr) = try run(["release", "init", "--repo", dir.file("open-repo")] + keyArguments)
        #expect(open == 1 && openErr.contains("\(dir.file("root.pem")): mode 0644 gives group/other access"), "\(openErr)")
        chmod(dir.file("root.pem"), 0o600)
        let published = try Self.makeRepository(dir, keyArguments)
        let (status, err) = try Self.ngclient(published, ["esp32/projectMM/2.1.0.bin"])
        #expect(status == 0, "\(err)")
        // otamesh's own client, reading the published tree directly.
        let meta = dir.file("meta")
        #expect(try run(["tuf", "--metadata-dir", meta, "init", "\(published)/metadata/1.root.json"]).0 == 0)
    }

    @Test("refresh-timestamp renews freshness; remove drops a target; tampered bytes are refused by both clients")
    func lifecycle() throws {
        let dir = try TemporaryDirectory()
        let published = try Self.makeRepository(dir, [])
        let repo = dir.file("repo")
        #expect(try run(["release", "refresh-timestamp", "--repo", repo]).0 == 0)
        #expect(try run(["release", "remove", "--repo", repo, "--path", "w800/app_ota.img"]).0 == 0)
        let republished = dir.file("republished")
        #expect(try run(["release", "publish", "--repo", repo, republished]).0 == 0)
        #expect(try Self.ngclient(republished, ["esp32/projectMM/2.1.0.bin"]).0 == 0)
        let (goneStatus, goneErr) = try Self.ngclient(republished, ["w800/app_ota.img"])
        #expect(goneStatus == 1 && goneErr.contains("not found"), "\(goneErr)")
        let (lsStatus, listed, _) = try run(["release", "ls", "--repo", repo])
        #expect(lsStatus == 0 && listed.contains("esp32/projectMM/2.1.0.bin") && !listed.contains("w800"))
        #expect(listed.contains("format=esp32-app") && listed.contains("hardware=esp32s3") && listed.contains("version=2.1.0-dev.7"))

        // Flip a byte of a published target: both clients refuse it.
        let targetDir = "\(published)/targets/esp32/projectMM"
        let name = try #require(listing(targetDir).first)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: "\(targetDir)/\(name)")))
        bytes[100] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: "\(targetDir)/\(name)"))
        let (tamperedStatus, tamperedErr) = try Self.ngclient(published, ["esp32/projectMM/2.1.0.bin"])
        #expect(tamperedStatus == 1, "\(tamperedErr)")
    }

    @Test("release add refuses an invalid image and a path that escapes the repository")
    func refusals() throws {
        let dir = try TemporaryDirectory()
        let repo = dir.file("repo")
        #expect(try run(["release", "init", "--repo", repo]).0 == 0)
        let (status, _, err) = try run(["release", "add", "--repo", repo, "--path", "x.bin", "\(Self.fixtures)/esp/esp32.badsum-rehash.bin"])
        #expect(status == 1)
        #expect(
            err
                == "otamesh release add: \(Self.fixtures)/esp/esp32.badsum-rehash.bin: not a valid image: ESP32 image checksum mismatch: stored 0xb0, computed 0xb1\n"
        )
        let (escape, _, escapeErr) = try run(["release", "add", "--repo", repo, "--path", "../x.bin", "\(Self.fixtures)/esp/esp32.bin"])
        #expect(escape == 1 && escapeErr.contains("target paths are relative"))
        let (again, _, againErr) = try run(["release", "init", "--repo", repo])
        #expect(again == 1 && againErr.contains("already holds a repository"))
    }

    @Test("release add over an existing path says it replaces it; a path naming another version than the image's is warned about")
    func replaceAndVersionWarning() throws {
        let dir = try TemporaryDirectory()
        let repo = dir.file("repo")
        #expect(try run(["release", "init", "--repo", repo]).0 == 0)
        var images: [String: String] = [:]
        for version in ["1.9.0", "2.0.0"] {
            images[version] = dir.file("app-\(version).bin")
            let made = try runProgram(Binaries.devicesim, ["make-image", "--chip", "esp32", "--version", version, "--size", "60000", "-o", images[version]!])
            #expect(made.0 == 0, "\(made.2)")
        }
        // The path names 2.0.0, the image says 1.9.0: added, with a warning on stderr.
        let (first, firstOut, firstErr) = try run(["release", "add", "--repo", repo, "--path", "esp32/app/2.0.0.bin", images["1.9.0"]!])
        #expect(first == 0 && firstOut.hasPrefix("added esp32/app/2.0.0.bin: "), "\(firstOut)")
        #expect(
            firstErr == "warning: esp32/app/2.0.0.bin names version 2.0.0, but the image is version 1.9.0; devices and admins read the path\n", "\(firstErr)")
        // The right image over it: replaced, says what was there, no warning.
        let (second, secondOut, secondErr) = try run(["release", "add", "--repo", repo, "--path", "esp32/app/2.0.0.bin", images["2.0.0"]!])
        #expect(second == 0 && secondErr.isEmpty, "\(secondErr)")
        #expect(secondOut.hasPrefix("replaced esp32/app/2.0.0.bin (was version 1.9.0, "), "\(secondOut)")
        // Paths that name no version, or the image's own, are quiet.
        let (third, _, thirdErr) = try run(["release", "add", "--repo", repo, "--path", "esp32/app/latest.bin", images["2.0.0"]!])
        #expect(third == 0 && thirdErr.isEmpty, "\(thirdErr)")
    }
}
