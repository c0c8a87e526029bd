import Crypto

/// Builds a valid ESP32-family application image — header, one DROM segment that starts with
/// an `esp_app_desc_t`, zero padding, the XOR checksum and (optionally) the appended SHA-256 —
/// the way `esptool elf2image` lays it out. Used by `otamesh-devicesim` and tests to make
/// firmware that real tools (esptool image-info, esp_https_ota) accept.
public struct ESP32ImageBuilder: Sendable {
    public var chip: ESPChip
    public var version: String
    public var projectName: String
    public var secureVersion: UInt32 = 0
    public var idfVersion = "v5.3.1"
    public var date = "Jan  1 2026"
    public var time = "00:00:00"
    /// Bytes placed after the app description in the DROM segment (the "application").
    public var body: [UInt8] = []
    public var hashAppended = true

    public init(chip: ESPChip, version: String, projectName: String) {
        self.chip = chip
        self.version = version
        self.projectName = projectName
    }

    /// The image bytes.
    public func build() -> [UInt8] {
        var segment = appDescription()
        segment += body
        while segment.count % 4 != 0 { segment.append(0) }

        var image: [UInt8] = [ESP32AppImage.magic, 1, ESPFlashMode.dio.rawValue, 0x20]
        append32(&image, chip.dromWindow.lowerBound &+ 0x20)  // entry: anywhere in the image is fine for tools
        image += [0xEE, 0, 0, 0]  // wp_pin, spi_pin_drv
        append16(&image, chip.id)
        image.append(0)  // min_chip_rev (legacy)
        append16(&image, 0)  // min_chip_rev_full
        append16(&image, 0xFFFF)  // max_chip_rev_full: no upper bound
        image += [0, 0, 0, 0]
        image.append(hashAppended ? 1 : 0)

        append32(&image, chip.dromWindow.lowerBound &+ 0x20)
        append32(&image, UInt32(segment.count))
        image += segment

        var checksum = ESP32AppImage.checksumSeed
        for byte in segment { checksum ^= byte }
        while image.count % 16 != 15 { image.append(0) }
        image.append(checksum)
        if hashAppended { image += Array(SHA256.hash(data: image)) }
        return image
    }

    /// `esp_app_desc_t`, 256 bytes.
    func appDescription() -> [UInt8] {
        var desc: [UInt8] = []
        append32(&desc, ESPAppDescription.magic)
        append32(&desc, secureVersion)
        desc += [UInt8](repeating: 0, count: 8)
        desc += fixed(version, 32)
        desc += fixed(projectName, 32)
        desc += fixed(time, 16)
        desc += fixed(date, 16)
        desc += fixed(idfVersion, 32)
        desc += Array(SHA256.hash(data: body))  // app_elf_sha256: no ELF here, so the body's hash
        append16(&desc, 0)  // min_efuse_blk_rev_full
        append16(&desc, 199)  // max_efuse_blk_rev_full
        desc.append(16)  // mmu_page_size: log2(64 KiB)
        desc += [UInt8](repeating: 0, count: 3 + 72)
        return desc
    }

    private func fixed(_ text: String, _ width: Int) -> [UInt8] {
        let bytes = Array(text.utf8.prefix(width))
        return bytes + [UInt8](repeating: 0, count: width - bytes.count)
    }
}

func append16(_ bytes: inout [UInt8], _ value: UInt16) {
    bytes += [UInt8(value & 0xFF), UInt8(value >> 8)]
}

func append32(_ bytes: inout [UInt8], _ value: UInt32) {
    bytes += [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF), UInt8((value >> 16) & 0xFF), UInt8(value >> 24)]
}
