import Crypto
import OTAMeshFirmware

/// What the firmwares read from image bytes before or after flashing them. Pure.
enum ImageFacts {
    /// `esp_image_header_t` (24) + `esp_image_segment_header_t` (8): where `esp_app_desc_t` sits.
    static let appDescOffset = 32

    /// `esp_https_ota_get_img_desc`: the app description's version, or nil when its magic word
    /// (0xABCD5432) is absent ("Incorrect app descriptor magic").
    static func appDescVersion(_ head: ArraySlice<UInt8>) -> String? {
        let s = head.startIndex + appDescOffset
        guard head.count >= appDescOffset + 256 else { return nil }
        let magic = UInt32(head[s]) | UInt32(head[s + 1]) << 8 | UInt32(head[s + 2]) << 16 | UInt32(head[s + 3]) << 24
        guard magic == 0xABCD_5432 else { return nil }
        return String(decoding: WiPhoneRules.cString(head[(s + 16)..<(s + 48)]), as: UTF8.self)
    }

    /// `esp_image_header_t.chip_id` (bytes 12–13), nil for a short header or another magic.
    static func chipID(_ head: ArraySlice<UInt8>) -> UInt16? {
        guard head.count >= 24, head.first == 0xE9 else { return nil }
        let s = head.startIndex
        return UInt16(head[s + 12]) | UInt16(head[s + 13]) << 8
    }

    /// ESP8266 `ESP.magicFlashChipSize(code)` for the header's flash-size nibble
    /// (`(buf[3] & 0xf0) >> 4`); 0 for unknown codes.
    static func esp8266MagicFlashSize(_ code: UInt8) -> Int {
        switch code {
        case 0x0: return 512 << 10
        case 0x1: return 256 << 10
        case 0x2: return 1 << 20
        case 0x3: return 2 << 20
        case 0x4: return 4 << 20
        case 0x8: return 8 << 20
        case 0x9: return 16 << 20
        default: return 0
        }
    }

    static func md5Hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        hex(Insecure.MD5.hash(data: Array(bytes)))
    }

    static func sha256Hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        hex(SHA256.hash(data: Array(bytes)))
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        let digits: [Character] = Array("0123456789abcdef")
        var out = ""
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return out
    }
}

/// The sketch a device runs, with the values its firmware reports about it.
struct RunningImage: Sendable, Equatable {
    var bytes: [UInt8]
    /// The version the firmware reports (compiled-in version string).
    var version: String
    /// `ESP.getSketchSize()`: the image length (ESP32: through the appended digest).
    var sketchSize: Int
    /// `ESP.getSketchMD5()`: lowercase MD5 of the first `sketchSize` bytes.
    var sketchMD5: String
    /// arduino-esp32 2.x `x-ESP32-sketch-sha256`: `esp_partition_get_sha256` of the running app
    /// partition, upper-case hex. For an image with an appended digest that is the *stored
    /// digest* (SHA-256 of the image up to the digest), otherwise the SHA-256 of the image
    /// (esp-idf `bootloader_common_get_sha256_of_partition`).
    var partitionSHA256: String

    init(bytes: [UInt8], version: String) {
        self.bytes = bytes
        self.version = version
        var length = bytes.count
        var partitionDigest: String?
        if ImageInspector.detect(bytes[...]) == .esp32App, let image = try? ESP32AppImage.parse(bytes[...]) {
            length = min(image.imageLength, bytes.count)
            if image.hashAppended { partitionDigest = image.digestStored }
        }
        sketchSize = length
        sketchMD5 = ImageFacts.md5Hex(bytes.prefix(length))
        partitionSHA256 = (partitionDigest ?? ImageFacts.sha256Hex(bytes.prefix(length))).uppercased()
    }

    /// The image a device of `chip` runs before the test: a real ESP32 app image carrying
    /// `version`, or for ESP8266 a v1 image whose body depends on the version.
    static func initial(chip: String, version: String, seed: UInt64) -> RunningImage {
        let bodySeed = seed ^ UInt64(truncatingIfNeeded: version.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 })
        if chip == "esp8266" {
            return RunningImage(bytes: ESP8266V1Builder.build(body: DeterministicBytes.make(count: 4096, seed: bodySeed)), version: version)
        }
        let espChip = ESPChip.named(chip) ?? ESPChip.named("esp32")!
        var builder = ESP32ImageBuilder(chip: espChip, version: version, projectName: "otamesh-devicesim")
        builder.body = DeterministicBytes.make(count: 4096, seed: bodySeed)
        return RunningImage(bytes: builder.build(), version: version)
    }
}

/// A minimal valid ESP8266 v1 image (esptool `ESP8266ROMFirmwareImage`): 8-byte header, one
/// IRAM segment, padding so the XOR checksum (seed 0xEF) ends a 16-byte block.
enum ESP8266V1Builder {
    static func build(body: [UInt8]) -> [UInt8] {
        var segment = body
        while segment.count % 4 != 0 { segment.append(0) }
        let load: UInt32 = 0x4010_0000
        var image: [UInt8] = [0xE9, 1, 0x02, 0x40]  // 1 segment, DIO, 4 MB / 40 MHz
        append32(&image, load)
        append32(&image, load)
        append32(&image, UInt32(segment.count))
        image += segment
        var checksum: UInt8 = 0xEF
        for byte in segment { checksum ^= byte }
        while image.count % 16 != 15 { image.append(0) }
        image.append(checksum)
        return image
    }

    static func append32(_ out: inout [UInt8], _ value: UInt32) {
        out += [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24)]
    }
}

/// A running MD5 or SHA-256 over bytes as they arrive.
struct StreamDigest {
    private enum Kind {
        case md5(Insecure.MD5)
        case sha256(SHA256)
    }

    private var kind: Kind

    static func md5() -> StreamDigest { StreamDigest(kind: .md5(Insecure.MD5())) }
    static func sha256() -> StreamDigest { StreamDigest(kind: .sha256(SHA256())) }

    mutating func add(_ bytes: ArraySlice<UInt8>) {
        bytes.withUnsafeBytes { buffer in
            switch kind {
            case .md5(var h):
                h.update(bufferPointer: buffer)
                kind = .md5(h)
            case .sha256(var h):
                h.update(bufferPointer: buffer)
                kind = .sha256(h)
            }
        }
    }

    /// Lowercase hex of the digest so far.
    var hex: String {
        switch kind {
        case .md5(let h): ImageFacts.hex(h.finalize())
        case .sha256(let h): ImageFacts.hex(h.finalize())
        }
    }
}
