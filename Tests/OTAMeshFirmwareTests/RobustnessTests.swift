import OTAMeshCommon
import OTAMeshTestSupport
import Testing

@testable import OTAMeshFirmware

/// Any bytes from disk or network: never a crash, never an allocation sized by a header,
/// and a recognised-but-broken image is always reported invalid with a reason.
@Suite("robustness against hostile bytes")
struct RobustnessTests {
    static let validFixtures = [
        "esp/esp32.bin", "esp/esp32s3.bin", "esp/esp32c6.bin", "esp/esp32h2-padseg.bin", "esp/esp32c3-nodigest.bin",
        "esp/esp8266-v1-0x00000.bin", "esp/esp8266-v2-user1.bin",
    ]

    @Test("every truncation of a valid image is invalid and names the truncation", arguments: validFixtures)
    func truncations(fixture: String) throws {
        let bytes = try Fixtures.bytes(fixture)
        #expect(ImageInspector.inspect(bytes).valid)
        let format = ImageInspector.detect(bytes[...])
        for length in 0..<bytes.count {
            let report = ImageInspector.inspect(Array(bytes[0..<length]))
            #expect(!report.valid, "\(fixture) cut to \(length) bytes was accepted")
            #expect(!report.problems.isEmpty)
            if length >= 24 {
                #expect(report.format == format, "\(fixture) cut to \(length) bytes detected as \(report.format)")
                #expect(report.chip != nil)
            }
        }
    }

    @Test("random byte flips never crash and flips in checked data are caught", arguments: validFixtures)
    func flips(fixture: String) throws {
        let original = try Fixtures.bytes(fixture)
        var rng = SplitMix64(seed: 0x07A_3E5)
        var caught = 0
        for _ in 0..<400 {
            var bytes = original
            let index = Int(rng.next() % UInt64(bytes.count))
            bytes[index] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            let report = ImageInspector.inspect(bytes)
            if !report.valid { caught += 1 }
        }
        // Headers carry a few unchecked bytes (flash mode, entry point); everything else is covered.
        #expect(caught > 300, "\(fixture): only \(caught)/400 flips detected")
    }

    @Test("random garbage, with and without a format's magic, never crashes")
    func garbage() {
        var rng = SplitMix64(seed: 42)
        let magics: [[UInt8]] = [[], [0xE9], [0xEA], [0x3D, 0xB8, 0xF3, 0x96], [0x9F, 0xFF, 0xFF, 0xA0]]
        for round in 0..<2000 {
            let length = Int(rng.next() % 700)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let magic = magics[round % magics.count]
            if bytes.count >= magic.count { bytes.replaceSubrange(0..<magic.count, with: magic) }
            let report = ImageInspector.inspect(bytes)
            if report.format != .raw { #expect(!report.valid || report.problems.isEmpty) }
            if !report.valid { #expect(!report.problems.isEmpty) }
        }
    }

    @Test("headers claiming absurd lengths (≥ 4 GiB) are rejected without allocating")
    func absurdLengths() {
        // ESP32: one segment claiming 0xFFFFFFFF bytes.
        var esp32 = [UInt8](repeating: 0, count: 64)
        esp32[0] = 0xE9; esp32[1] = 1; esp32[8] = 0xEE; esp32[12] = 9
        esp32.replaceSubrange(24..<32, with: [0x20, 0, 0, 0x3C, 0xFF, 0xFF, 0xFF, 0xFF])
        let r1 = ImageInspector.inspect(esp32)
        #expect(r1.format == .esp32App && !r1.valid)
        #expect(r1.problems == ["ESP32 image truncated: segment 0 (load address 0x3c000020) needs 4294967295 bytes at offset 0x20, 32 remain"])

        // MCUboot: image size 0xFFFFFFFF.
        var mcuboot = [UInt8](repeating: 0, count: 64)
        mcuboot.replaceSubrange(0..<4, with: [0x3D, 0xB8, 0xF3, 0x96])
        mcuboot[8] = 32
        mcuboot.replaceSubrange(12..<16, with: [0xFF, 0xFF, 0xFF, 0xFF])
        let r2 = ImageInspector.inspect(mcuboot)
        #expect(r2.format == .mcuboot && !r2.valid)
        #expect(r2.problems.first?.contains("needs 4294967295 bytes") == true)

        // ESP32 with 255 segments.
        var many = esp32
        many[1] = 255
        #expect(ImageInspector.inspect(many).problems == ["ESP32 image invalid segment count 255: must be 1...16"])
    }

    @Test("empty and wrong-magic files")
    func emptyAndWrongMagic() {
        let empty = ImageInspector.inspect([])
        #expect(!empty.valid && empty.problems == ["file is empty (0 bytes)"])
        let text = ImageInspector.inspect(Array("hello firmware".utf8))
        #expect(text.format == .raw && text.valid)
        // 0xE9 with an unknown chip id and a non-ESP8266 first word: parsed as ESP8266 and rejected.
        var wrong = [UInt8](repeating: 0xAB, count: 48)
        wrong[0] = 0xE9
        wrong[1] = 2
        let report = ImageInspector.inspect(wrong)
        #expect(report.format == .esp8266 && !report.valid)
    }
}
