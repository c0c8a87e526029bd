/// An Espressif chip as named by the `chip_id` field of the ESP32 extended image header.
///
/// IDs and memory maps follow esptool's `targets/` (the reference parser); see docs/formats.md.
public struct ESPChip: Sendable, Hashable, CustomStringConvertible {
    /// The `chip_id` value of the image header.
    public let id: UInt16
    /// esptool's lowercase name, e.g. `esp32s3`.
    public let name: String
    /// The address window the chip maps flash data (DROM) into; the app description
    /// lives at the start of the first segment loaded there.
    public let dromWindow: Range<UInt32>

    public var description: String { name }

    /// Every chip otamesh knows, keyed by header chip id.
    public static let known: [UInt16: ESPChip] = {
        let table: [(UInt16, String, Range<UInt32>)] = [
            (0, "esp32", 0x3F40_0000..<0x3F80_0000),
            (2, "esp32s2", 0x3F00_0000..<0x3FF8_0000),
            (5, "esp32c3", 0x3C00_0000..<0x3C80_0000),
            (9, "esp32s3", 0x3C00_0000..<0x3D00_0000),
            (12, "esp32c2", 0x3C00_0000..<0x3C40_0000),
            (13, "esp32c6", 0x4200_0000..<0x4300_0000),
            (16, "esp32h2", 0x4200_0000..<0x4300_0000),
            (18, "esp32p4", 0x4000_0000..<0x4C00_0000),
            (20, "esp32c61", 0x4200_0000..<0x4400_0000),
            (23, "esp32c5", 0x4200_0000..<0x4400_0000),
            (25, "esp32h21", 0x4200_0000..<0x4300_0000),
            (28, "esp32h4", 0x4200_0000..<0x4400_0000),
            (31, "esp32e22", 0x3C00_0000..<0x4000_0000),
            (32, "esp32s31", 0x4000_0000..<0x5400_0000),
        ]
        return Dictionary(uniqueKeysWithValues: table.map { ($0.0, ESPChip(id: $0.0, name: $0.1, dromWindow: $0.2)) })
    }()

    /// Looks a chip up by name (`esp32s3`), as esptool spells it.
    public static func named(_ name: String) -> ESPChip? {
        known.values.first { $0.name == name.lowercased() }
    }
}

/// SPI flash mode of the image header (`spi_mode`).
public enum ESPFlashMode: UInt8, Sendable, Codable {
    case qio = 0, qout = 1, dio = 2, dout = 3, fastRead = 4, slowRead = 5

    /// esptool's name for the mode.
    public var name: String {
        switch self {
        case .qio: "qio"
        case .qout: "qout"
        case .dio: "dio"
        case .dout: "dout"
        case .fastRead: "fast_read"
        case .slowRead: "slow_read"
        }
    }
}

/// The flash size encoded in the high nibble of the `spi_speed/spi_size` byte.
func espFlashSizeName(_ code: UInt8) -> String? {
    let names = ["1MB", "2MB", "4MB", "8MB", "16MB", "32MB", "64MB", "128MB"]
    return Int(code) < names.count ? names[Int(code)] : nil
}
