import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Bad input at the command line: each case gets one clear line on stderr naming the file
/// and the reason, a non-zero exit, and leaves the store as it was.
@Suite("command line: bad input")
struct CLIBadInputTests {
    static let fixtures = Binaries.packageRoot.appendingPathComponent("Tests/Fixtures").path

    @Test("image inspect: one stderr line per bad file, exit 1; good files exit 0")
    func inspectBadFiles() throws {
        let dir = try TemporaryDirectory()
        let empty = dir.file("empty.bin")
        try Data().write(to: URL(fileURLWithPath: empty))
        let garbage = dir.file("garbage.bin")
        var noise = [UInt8](patterned(5_000, seed: 9))
        noise[0] = 0xE9  // claims to be an Espressif image
        try Data(noise).write(to: URL(fileURLWithPath: garbage))
        let absurd = dir.file("absurd.bin")
        var header = [UInt8](repeating: 0, count: 64)
        header.replaceSubrange(0..<4, with: [0x3D, 0xB8, 0xF3, 0x96])  // MCUboot, image size 0xFFFFFFFF
        header[8] = 32
        header.replaceSubrange(12..<16, with: [0xFF, 0xFF, 0xFF, 0xFF])
        try Data(header).write(to: URL(fileURLWithPath: absurd))
        let bad = [
            empty, garbage, absurd,
            "\(Self.fixtures)/esp/esp32s3.trunc.bin", "\(Self.fixtures)/esp/esp32c3.badsum.bin",
            "\(Self.fixtures)/wm/w800_app_huge_img_len.img", dir.file("missing.bin"), dir.path,
        ]
        let good = ["\(Self.fixtures)/esp/esp32.bin", "\(Self.fixtures)/wm/w800_app_ota.img", "\(Self.fixtures)/mcuboot/ed25519.bin"]
        let (status, out, err) = try run(["image", "inspect"] + good + bad)
        #expect(status == 1)
        let lines = err.split(separator: "\n").map(String.init)
        #expect(lines.count == bad.count, "stderr: \(err)")
        for (file, line) in zip(bad, lines) {
            #expect(line.hasPrefix("\(file): "), "\(line)")
        }
        #expect(lines[0] == "\(empty): file is empty (0 bytes)")
        #expect(lines[2] == "\(absurd): MCUboot image truncated: image body (ih_img_size 4294967295) needs 4294967295 bytes at offset 0x20, 32 remain")
        #expect(lines[6] == "\(dir.file("missing.bin")): cannot read: no such file")
        #expect(lines[7] == "\(dir.path): cannot read: is a directory")
        #expect(out.contains("esp32.bin: esp32-app, "))

        let (okStatus, _, okErr) = try run(["image", "inspect"] + good)
        #expect(okStatus == 0)
        #expect(okErr.isEmpty)
    }

    @Test("image inspect --json: one object per file with the documented keys")
    func inspectJSON() throws {
        let (status, out, _) = try run(["image", "inspect", "--json", "\(Self.fixtures)/esp/esp32s3.bin", "\(Self.fixtures)/wm/w800_app_ota.img"])
        #expect(status == 0)
        let objects = try out.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(objects.count == 2)
        #expect(objects[0]["format"] as? String == "esp32-app")
        #expect(objects[0]["chip"] as? String == "esp32s3")
        #expect(objects[0]["version"] as? String == "2.1.0-dev.7")
        #expect(objects[0]["project"] as? String == "otamesh-esp32s3")
        #expect(objects[0]["secureVersion"] as? Int == 3)
        #expect(objects[0]["valid"] as? Bool == true)
        #expect((objects[0]["elfSHA256"] as? String)?.count == 64)
        #expect((objects[0]["sha256"] as? String)?.count == 64)
        #expect(objects[1]["format"] as? String == "wm-ota")
        #expect(objects[1]["compressed"] as? Bool == true)
    }

    @Test("an oversized image (beyond the 512 MiB parse limit) is hashed, not parsed, and rejected with its size")
    func oversizedImage() throws {
        let dir = try TemporaryDirectory()
        let huge = dir.file("huge.bin")
        FileManager.default.createFile(
            atPath: huge, contents: Data(try Data(contentsOf: Binaries.packageRoot.appendingPathComponent("Tests/Fixtures/esp/esp32.bin"))))
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: huge))
        try handle.truncate(atOffset: 600 << 20)  // sparse: 600 MiB that start like an ESP32 image
        try handle.close()
        let (status, out, err) = try run(["image", "inspect", huge])
        #expect(status == 1)
        #expect(err == "\(huge): ESP32 image of 629145600 bytes exceeds the 512 MiB limit for firmware images\n")
        #expect(out.contains("629145600 bytes, INVALID"))
    }

    @Test("cache add with a claimed length of 4 GiB or more fails cleanly and changes nothing")
    func absurdClaimedLength() throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("fw.bin")
        let bytes = patterned(10_000, seed: 11)
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        let digest = sha256Hex(bytes)
        let data = dir.file("data")
        let (status, _, err) = try run(["cache", "add", "--data-dir", data, "--sha256", digest, "--size", "5000000000", file])
        #expect(status == 1)
        #expect(err == "otamesh cache add \(file): content length mismatch: expected 5000000000 bytes, got 10000\n")
        let (status2, _, err2) = try run(["cache", "add", "--data-dir", data, "--sha256", digest, "--size", "99999999999", file])
        #expect(status2 == 1)
        #expect(err2 == "otamesh cache add \(file): blob of 99999999999 bytes does not fit the cache quota of 8589934592 bytes (0 bytes pinned)\n")
        #expect(try run(["cache", "ls", "--data-dir", data]).1 == "0 blobs, 0 bytes\n")
        #expect(listing("\(data)/partial").isEmpty)
    }

    @Test("cache add of content that does not match --sha256 fails and changes nothing")
    func addMismatch() throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("fw.bin")
        try Data(patterned(300_000, seed: 1)).write(to: URL(fileURLWithPath: file))
        let wrong = String(repeating: "ab", count: 32)
        let (status, _, err) = try run(["cache", "add", "--data-dir", dir.file("data"), "--sha256", wrong, file])
        #expect(status == 1)
        #expect(
            err == "otamesh cache add \(file): content sha256 mismatch: expected \(wrong), got \(sha256Hex(try Data(contentsOf: URL(fileURLWithPath: file))))\n"
        )
        let (_, listing, _) = try run(["cache", "ls", "--data-dir", dir.file("data")])
        #expect(listing == "0 blobs, 0 bytes\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.file("data/partial")).isEmpty)
    }

    @Test(
        "cache add on a full disk: one ENOSPC line, exit 1, store as it was",
        .enabled(if: TestEnvironment.isRoot, "needs root to mount a small tmpfs"))
    func addNoSpace() throws {
        let dir = try TemporaryDirectory()
        let disk = try Tmpfs(at: dir.file("disk"), size: "3m")
        let data = "\(disk.path)/data"
        let small = dir.file("small.bin")
        try Data(patterned(100_000, seed: 2)).write(to: URL(fileURLWithPath: small))
        let big = dir.file("big.bin")
        try Data(patterned(8 << 20, seed: 3)).write(to: URL(fileURLWithPath: big))
        #expect(try run(["cache", "add", "--data-dir", data, small]).0 == 0)
        let (_, before, _) = try run(["cache", "ls", "--data-dir", data])
        let (status, _, err) = try run(["cache", "add", "--data-dir", data, big])
        #expect(status == 1)
        #expect(err.split(separator: "\n").count == 1)
        #expect(err.hasPrefix("otamesh cache add \(big): write partial/tmp-"))
        #expect(err.hasSuffix(": No space left on device (ENOSPC)\n"))
        let (_, after, _) = try run(["cache", "ls", "--data-dir", data])
        #expect(after == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(data)/partial").isEmpty)
    }

    @Test("an unusable data directory is one clear line and exit 1")
    func unusableDataDirectory() throws {
        let dir = try TemporaryDirectory()
        let file = dir.file("fw.bin")
        try Data(patterned(1_000, seed: 4)).write(to: URL(fileURLWithPath: file))
        try Data("x".utf8).write(to: URL(fileURLWithPath: dir.file("not-a-dir")))
        let (status, _, err) = try run(["cache", "add", "--data-dir", dir.file("not-a-dir"), file])
        #expect(status == 1)
        #expect(err == "otamesh cache: data directory \(dir.file("not-a-dir")): exists and is not a directory\n")
        let (lsStatus, _, lsErr) = try run(["cache", "ls", "--data-dir", dir.file("nowhere")])
        #expect(lsStatus == 1)
        #expect(lsErr == "otamesh cache ls: no gateway data at \(dir.file("nowhere")): give --data-dir DIR of a gateway\n")
        #expect(!FileManager.default.fileExists(atPath: dir.file("nowhere")))
        if TestEnvironment.isRoot {
            let readOnly = try Tmpfs(at: dir.file("ro"), size: "1m", readOnly: true)
            let (roStatus, _, roErr) = try run(["cache", "add", "--data-dir", "\(readOnly.path)/data", file])
            #expect(roStatus == 1)
            #expect(roErr == "otamesh cache: mkdir \(readOnly.path)/data: Read-only file system (EROFS)\n" || roErr.contains("EROFS"), "\(roErr)")
        }
    }

    @Test("a bad config file or value is one clear line and exit 2")
    func badConfiguration() throws {
        let dir = try TemporaryDirectory()
        let config = dir.file("otamesh.yaml")
        try "cache:\n  qouta: 1GiB\n".write(toFile: config, atomically: true, encoding: .utf8)
        let (status, _, err) = try run(["cache", "ls", "--config", config])
        #expect(status == 2)
        #expect(err.hasPrefix("otamesh: \(config): cache.qouta: unknown configuration key 'cache.qouta'"))
        let (status2, _, err2) = try run(["agent", "--data-dir", dir.file("d"), "--cache-quota", "lots"])
        #expect(status2 == 2)
        #expect(err2 == "otamesh agent: --cache-quota: expected a size like 512MiB, 8GiB or unlimited, got lots\n", "named as typed")
    }
}
