import Foundation
import Testing

@testable import OTAMeshFirmware

/// WinnerMicro OTA images built as the WM IoT SDK's bin2img.py builds them
/// (Tests/Fixtures/wm/generate.py): full, xz OTA, legacy gzip, and one-defect twins.
@Suite("WinnerMicro OTA images")
struct WMOTATests {
    struct Expected: Decodable, Sendable {
        var valid: Bool
        var compressed: Bool
        var version: String?
        var imgLen: Int?
        var updNo: Int?
    }

    static let expected: [String: Expected] = (try? Fixtures.decode("wm/expected.json")) ?? [:]

    @Test("each fixture is judged as the SDK would judge it", arguments: expected.keys.sorted())
    func judged(name: String) throws {
        let want = try #require(Self.expected[name])
        let report = ImageInspector.inspect(try Fixtures.bytes("wm/\(name)"), as: .wmOTA)
        #expect(report.format == .wmOTA)
        #expect(report.valid == want.valid, "\(name): \(report.problems)")
        if !want.valid { #expect(!report.problems.isEmpty) }
        if want.valid {
            #expect(report.version == want.version)
            #expect(report.compressed == want.compressed)
            #expect(report.details["imgLen"] == want.imgLen.map(String.init))
        }
    }

    @Test("detection finds every WM image by its magic; a damaged magic is raw unless --format says otherwise")
    func detection() throws {
        for name in Self.expected.keys where name != "w800_app_wrong_magic.img" {
            #expect(ImageInspector.detect(try Fixtures.bytes("wm/\(name)")[...]) == .wmOTA, "\(name)")
        }
        let wrong = try Fixtures.bytes("wm/w800_app_wrong_magic.img")
        #expect(ImageInspector.inspect(wrong).format == .raw)
        #expect(ImageInspector.inspect(wrong, as: .wmOTA).problems == ["WM OTA image bad header magic: expected 0xa0ffff9f, found 0xa0ffff9e"])
    }

    @Test("xz OTA image: both levels checked, decompressed length reported")
    func xzLevels() throws {
        let ota = ImageInspector.inspect(try Fixtures.bytes("wm/w800_app_ota.img"))
        #expect(ota.valid && ota.compressed == true && ota.details["compression"] == "xz")
        #expect(ota.details["decompressedLength"] == "8256")
        let inner = ImageInspector.inspect(try Fixtures.bytes("wm/w800_app_ota_inner_bad_checksum.img"))
        #expect(!inner.valid)
        #expect(inner.problems.count == 1)
        #expect(inner.problems.first?.hasPrefix("WM OTA image inner payload checksum (org_checksum) mismatch") == true)
        let corrupt = ImageInspector.inspect(try Fixtures.bytes("wm/w800_app_ota_xz_corrupted.img"))
        #expect(corrupt.problems.first?.hasPrefix("WM OTA image payload does not decompress: ") == true)
        let huge = ImageInspector.inspect(try Fixtures.bytes("wm/w800_app_huge_img_len.img"))
        #expect(huge.problems == ["WM OTA image truncated: payload (img_len 4294967280) needs 4294967280 bytes at offset 0x40, 8192 remain"])
    }
}

/// MCUboot images signed by imgtool (Tests/Fixtures/mcuboot/generate.py).
@Suite("MCUboot images")
struct MCUbootTests {
    struct Expected: Decodable, Sendable {
        var valid: Bool
        var version: String?
        var signatureType: String?
        var securityCounter: Int?
    }

    static let expected: [String: Expected] = (try? Fixtures.decode("mcuboot/expected.json")) ?? [:]
    /// Failures only a signature check with the signer's public key can see (issue: trust).
    static let signatureOnly: Set<String> = ["ed25519_sig_flipped.bin"]

    @Test("hash, TLV structure, version, signature type and security counter", arguments: expected.keys.sorted())
    func judged(name: String) throws {
        let want = try #require(Self.expected[name])
        let report = ImageInspector.inspect(try Fixtures.bytes("mcuboot/\(name)"), as: .mcuboot)
        if Self.signatureOnly.contains(name) {
            #expect(report.valid, "the SHA256 TLV still matches; only the signature is wrong")
        } else {
            #expect(report.valid == want.valid, "\(name): \(report.problems)")
        }
        if report.valid || name.contains("flipped") || name.contains("tampered") {
            #expect(report.version == want.version)
            #expect(report.details["signatureType"] == want.signatureType)
            #expect(report.details["securityCounter"] == want.securityCounter.map(String.init))
        }
    }

    @Test("the SHA256 TLV covers the protected TLV area")
    func protectedAreaHashed() throws {
        let report = ImageInspector.inspect(try Fixtures.bytes("mcuboot/ed25519_seccnt_sec_cnt_tampered.bin"))
        #expect(!report.valid)
        #expect(report.problems.first?.hasPrefix("MCUboot image SHA256 TLV mismatch") == true)
    }
}

@Suite("xz decoder")
struct XZDecoderTests {
    @Test("round trip through the xz CLI, output limit, truncation and garbage")
    func decode() throws {
        let original = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let compressed = try run("/usr/bin/xz", ["-c", "-6"], input: original)
        #expect(try XZDecoder.decompress(compressed[...], outputLimit: 1 << 20) == original)
        #expect(throws: XZError.outputLimitExceeded(limit: 100_000)) {
            try XZDecoder.decompress(compressed[...], outputLimit: 100_000)
        }
        #expect(throws: XZError.truncated) { try XZDecoder.decompress(compressed[0..<(compressed.count / 2)], outputLimit: 1 << 20) }
        #expect(throws: XZError.notXZ) { try XZDecoder.decompress(Array("plain text, not xz".utf8)[...], outputLimit: 1 << 20) }
        var damaged = compressed
        damaged[damaged.count / 2] ^= 0x40
        #expect(throws: XZError.self) { try XZDecoder.decompress(damaged[...], outputLimit: 1 << 20) }
    }

    func run(_ tool: String, _ arguments: [String], input: [UInt8]) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tool)
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        let writer = Thread {
            stdin.fileHandleForWriting.write(Data(input)); try? stdin.fileHandleForWriting.close()
        }
        writer.start()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return [UInt8](output)
    }
}
