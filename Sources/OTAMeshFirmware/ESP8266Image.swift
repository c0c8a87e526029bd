/// An ESP8266 image: v1 (magic 0xE9, the ROM bootloader format) or OTA v2 (magic 0xEA,
/// the user1.bin/user2.bin format booted by boot.bin), laid out as esptool's
/// `ESP8266ROMFirmwareImage` / `ESP8266V2FirmwareImage` build them.
///
/// v2: an 8-byte 0xEA header, the IROM segment (not part of the checksum), a second
/// 8-byte 0xE9 header, the RAM segments, the XOR checksum at the end of a 16-byte block,
/// then a CRC-32 of everything before it (esptool's `esp8266_crc32`).
public struct ESP8266Image: Sendable, Equatable {
    public static let v1Magic: UInt8 = 0xE9
    public static let v2Magic: UInt8 = 0xEA

    /// 1 or 2.
    public let imageVersion: Int
    public let flashMode: UInt8
    public let flashSizeFrequency: UInt8
    public let entryAddress: UInt32
    /// v2 only: the flash-mapped code segment that precedes the second header.
    public let iromSegment: ESPSegment?
    public let segments: [ESPSegment]
    public let checksumStored: UInt8
    public let checksumComputed: UInt8
    public let crcStored: UInt32?
    public let crcComputed: UInt32?
    public let problems: [ImageProblem]

    /// Parses either version.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(ImageProblem) -> ESP8266Image {
        var reader = ByteReader(bytes, format: .esp8266)
        let magic = try reader.u8("image header")
        switch magic {
        case v1Magic:
            return try parseBody(bytes, &reader, version: 1, irom: nil)
        case v2Magic:
            _ = try reader.u8("v2 header")  // "segment count": always 4, not a count
            try reader.skip(2, "v2 header")
            _ = try reader.u32("v2 header")
            let irom = try ESP32AppImage.readSegment(&reader, index: 0, format: .esp8266)
            let second = try reader.u8("second image header")
            guard second == v1Magic else {
                throw .badMagic(format: .esp8266, what: "second header", expected: UInt32(v1Magic), found: UInt32(second))
            }
            return try parseBody(bytes, &reader, version: 2, irom: irom)
        default:
            throw .badMagic(format: .esp8266, what: "header", expected: UInt32(v1Magic), found: UInt32(magic))
        }
    }

    /// Parses from just after a 0xE9 magic byte: the rest of the 8-byte header, the
    /// segments and the checksum (and, for v2, the trailing CRC-32).
    private static func parseBody(
        _ bytes: ArraySlice<UInt8>, _ reader: inout ByteReader, version: Int, irom: ESPSegment?
    ) throws(ImageProblem) -> ESP8266Image {
        let count = Int(try reader.u8("image header"))
        let flashMode = try reader.u8("image header")
        let sizeFreq = try reader.u8("image header")
        let entry = try reader.u32("image header")
        guard count >= 1, count <= ESP32AppImage.maxSegments else {
            throw .invalidField(
                format: .esp8266, field: "segment count", value: String(count),
                reason: "must be 1...\(ESP32AppImage.maxSegments)")
        }
        var segments: [ESPSegment] = []
        var checksum = ESP32AppImage.checksumSeed
        for index in 0..<count {
            let segment = try ESP32AppImage.readSegment(&reader, index: index, format: .esp8266)
            checksum ^= ESP32AppImage.xorFold(bytes, segment)
            segments.append(segment)
        }
        let (checksumOffset, stored) = try ESP32AppImage.readChecksum(&reader, format: .esp8266)
        var problems: [ImageProblem] = []
        if stored != checksum {
            problems.append(.checksumMismatch(format: .esp8266, what: "checksum", stored: UInt32(stored), computed: UInt32(checksum)))
        }
        var crcStored: UInt32?
        var crcComputed: UInt32?
        if version == 2 {
            let covered = bytes[bytes.startIndex..<(bytes.startIndex + checksumOffset + 1)]
            crcStored = try reader.u32("CRC-32")
            crcComputed = esp8266CRC32(covered)
            if crcStored != crcComputed {
                problems.append(.checksumMismatch(format: .esp8266, what: "CRC-32", stored: crcStored!, computed: crcComputed!))
            }
        }
        return ESP8266Image(
            imageVersion: version, flashMode: flashMode, flashSizeFrequency: sizeFreq, entryAddress: entry,
            iromSegment: irom, segments: segments, checksumStored: stored, checksumComputed: checksum,
            crcStored: crcStored, crcComputed: crcComputed, problems: problems)
    }

    /// esptool's `esp8266_crc32`: zlib CRC-32, then `crc ^ 0xFFFFFFFF` when the top bit is
    /// set, else `crc + 1` (what the v2 boot loader expects).
    static func esp8266CRC32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        let crc = CRC32.ieee(bytes)
        return crc & 0x8000_0000 != 0 ? crc ^ 0xFFFF_FFFF : crc &+ 1
    }
}
