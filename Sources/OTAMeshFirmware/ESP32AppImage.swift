import Crypto
import OTAMeshCommon

/// One loadable segment of an Espressif image: where it loads and where its bytes sit in the file.
public struct ESPSegment: Sendable, Equatable {
    /// Load address (`load_addr`).
    public let loadAddress: UInt32
    /// Offset of the segment's data in the file.
    public let fileOffset: Int
    /// Length of the segment's data (`data_len`).
    public let length: Int
}

/// `esp_app_desc_t`: the application description ESP-IDF places at the start of the first
/// DROM segment. `esp_https_ota` reads it before writing the image.
public struct ESPAppDescription: Sendable, Equatable {
    /// `ESP_APP_DESC_MAGIC_WORD`.
    public static let magic: UInt32 = 0xABCD_5432
    /// The struct's size in bytes.
    public static let size = 256

    public let secureVersion: UInt32
    public let version: String
    public let projectName: String
    public let time: String
    public let date: String
    public let idfVersion: String
    /// `app_elf_sha256`, hex.
    public let elfSHA256: String

    /// Parses the description at the start of `bytes`; nil when the magic word is absent.
    static func parse(_ bytes: ArraySlice<UInt8>) -> ESPAppDescription? {
        guard bytes.count >= size, ByteReader.u32(bytes, at: 0) == magic else { return nil }
        let s = bytes.startIndex
        return ESPAppDescription(
            secureVersion: ByteReader.u32(bytes, at: 4),
            version: bytes[(s + 16)..<(s + 48)].cString(),
            projectName: bytes[(s + 48)..<(s + 80)].cString(),
            time: bytes[(s + 80)..<(s + 96)].cString(),
            date: bytes[(s + 96)..<(s + 112)].cString(),
            idfVersion: bytes[(s + 112)..<(s + 144)].cString(),
            elfSHA256: hexString(bytes[(s + 144)..<(s + 176)])
        )
    }
}

/// A parsed ESP32-family application image (`esp_image_header_t` + segments + checksum
/// + optional appended SHA-256).
///
/// Parsing throws only when the structure cannot be read (bad magic, truncation, impossible
/// header); integrity failures (checksum, digest) are collected in ``problems`` so the rest of
/// the image can still be reported.
public struct ESP32AppImage: Sendable, Equatable {
    public static let magic: UInt8 = 0xE9
    /// esptool refuses images with more segments than this.
    public static let maxSegments = 16
    static let headerSize = 24
    static let checksumSeed: UInt8 = 0xEF

    public let chip: ESPChip
    public let flashMode: UInt8
    public let flashSizeCode: UInt8
    public let flashFrequencyCode: UInt8
    public let entryAddress: UInt32
    /// `min_chip_rev_full` / `max_chip_rev_full` (major × 100 + minor).
    public let minChipRevision: UInt16
    public let maxChipRevision: UInt16
    public let hashAppended: Bool
    public let segments: [ESPSegment]
    public let checksumStored: UInt8
    public let checksumComputed: UInt8
    /// Stored and computed SHA-256 (hex) when ``hashAppended``.
    public let digestStored: String?
    public let digestComputed: String?
    /// Bytes the image proper occupies (up to the checksum, plus the digest if appended).
    public let imageLength: Int
    public let appDescription: ESPAppDescription?
    /// Integrity failures; empty when the image is valid.
    public let problems: [ImageProblem]

    /// True when `bytes` starts like an ESP32-family image: magic 0xE9, a known chip id
    /// and a zero reserved area. ESP8266 v1 images share the magic but have no extended header:
    /// their bytes 8…11 are the first segment's load address (RAM or IROM, 0x3FFE8000…0x40300000),
    /// where an ESP32 image has `wp_pin` and `spi_pin_drv` (0xEE 0 0 0 by default). esptool
    /// itself looks only at byte 12 and so can mistake one for the other; this check cannot.
    static func looksLike(_ bytes: ArraySlice<UInt8>) -> Bool {
        guard bytes.count >= headerSize, bytes.first == magic else { return false }
        let firstWord = ByteReader.u32(bytes, at: 8)
        if (0x3FFE_8000..<0x4030_0000).contains(firstWord) { return false }
        let chipID = ByteReader.u16(bytes, at: 12)
        let reservedZero = (19..<23).allSatisfy { bytes[bytes.startIndex + $0] == 0 }
        let hashFlag = bytes[bytes.startIndex + 23]
        return ESPChip.known[chipID] != nil && reservedZero && hashFlag <= 1
    }

    /// The chip named by the header, when the header itself is complete and names a known chip
    /// (lets a truncated image still say what it was meant for).
    static func headerChip(_ bytes: ArraySlice<UInt8>) -> ESPChip? {
        guard bytes.count >= headerSize, bytes.first == magic else { return nil }
        return ESPChip.known[ByteReader.u16(bytes, at: 12)]
    }

    /// Parses an image. Throws ``ImageProblem`` when the structure cannot be read.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(ImageProblem) -> ESP32AppImage {
        var reader = ByteReader(bytes, format: .esp32App)
        let magicByte = try reader.u8("image header")
        guard magicByte == magic else {
            throw .badMagic(format: .esp32App, what: "header", expected: UInt32(magic), found: UInt32(magicByte))
        }
        let segmentCount = Int(try reader.u8("image header"))
        let flashMode = try reader.u8("image header")
        let sizeFreq = try reader.u8("image header")
        let entry = try reader.u32("image header")
        try reader.skip(4, "extended header")  // wp_pin, spi_pin_drv[3]
        let chipID = try reader.u16("extended header")
        _ = try reader.u8("extended header")  // min_chip_rev (deprecated)
        let minRev = try reader.u16("extended header")
        let maxRev = try reader.u16("extended header")
        try reader.skip(4, "extended header")  // reserved
        let hashFlag = try reader.u8("extended header")

        guard let chip = ESPChip.known[chipID] else {
            throw .invalidField(format: .esp32App, field: "chip id", value: hex(chipID), reason: "not a known Espressif chip")
        }
        guard hashFlag <= 1 else {
            throw .invalidField(format: .esp32App, field: "hash_appended", value: String(hashFlag), reason: "must be 0 or 1")
        }
        guard segmentCount >= 1, segmentCount <= maxSegments else {
            throw .invalidField(
                format: .esp32App, field: "segment count", value: String(segmentCount),
                reason: "must be 1...\(maxSegments)")
        }

        var segments: [ESPSegment] = []
        segments.reserveCapacity(segmentCount)
        var checksum = checksumSeed
        for index in 0..<segmentCount {
            let segment = try readSegment(&reader, index: index, format: .esp32App)
            checksum ^= xorFold(bytes, segment)
            segments.append(segment)
        }
        let (checksumOffset, stored) = try readChecksum(&reader, format: .esp32App)

        var problems: [ImageProblem] = []
        if stored != checksum {
            problems.append(.checksumMismatch(format: .esp32App, what: "checksum", stored: UInt32(stored), computed: UInt32(checksum)))
        }
        var digestStored: String?
        var digestComputed: String?
        var imageLength = checksumOffset + 1
        if hashFlag == 1 {
            let digestBytes = try reader.slice(32, "appended SHA-256")
            let covered = bytes[bytes.startIndex..<(bytes.startIndex + checksumOffset + 1)]
            digestStored = hexString(digestBytes)
            digestComputed = hexString(SHA256.hash(data: covered))
            imageLength += 32
            if digestStored != digestComputed {
                problems.append(.digestMismatch(format: .esp32App, what: "appended SHA-256", stored: digestStored!, computed: digestComputed!))
            }
        }

        let descSegment = segments.first { chip.dromWindow.contains($0.loadAddress) }
        let appDescription = descSegment.flatMap { segment in
            ESPAppDescription.parse(bytes[(bytes.startIndex + segment.fileOffset)...].prefix(segment.length))
        }

        return ESP32AppImage(
            chip: chip, flashMode: flashMode, flashSizeCode: sizeFreq >> 4, flashFrequencyCode: sizeFreq & 0x0F,
            entryAddress: entry, minChipRevision: minRev, maxChipRevision: maxRev, hashAppended: hashFlag == 1,
            segments: segments, checksumStored: stored, checksumComputed: checksum,
            digestStored: digestStored, digestComputed: digestComputed, imageLength: imageLength,
            appDescription: appDescription, problems: problems)
    }

    /// Reads one 8-byte segment header and bounds-checks its data.
    static func readSegment(_ reader: inout ByteReader, index: Int, format: ImageFormat) throws(ImageProblem) -> ESPSegment {
        let address = try reader.u32("segment \(index) header")
        let length = Int(try reader.u32("segment \(index) header"))
        let start = reader.offset
        try reader.skip(length, "segment \(index) (load address \(hex(address)))")
        return ESPSegment(loadAddress: address, fileOffset: start, length: length)
    }

    /// Skips the zero padding and reads the checksum byte, which esptool places so that it
    /// is the last byte of a 16-byte block. Returns its offset and value.
    static func readChecksum(_ reader: inout ByteReader, format: ImageFormat) throws(ImageProblem) -> (Int, UInt8) {
        let padding = 15 - reader.offset % 16
        try reader.skip(padding, "checksum padding")
        let offset = reader.offset
        return (offset, try reader.u8("checksum byte"))
    }

    /// XOR of every byte of a segment's data.
    static func xorFold(_ bytes: ArraySlice<UInt8>, _ segment: ESPSegment) -> UInt8 {
        bytes.withUnsafeBufferPointer { buffer -> UInt8 in
            let data = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(buffer)[segment.fileOffset..<(segment.fileOffset + segment.length)])
            var wide: UInt64 = 0
            var index = 0
            while index + 8 <= data.count {
                wide ^= data.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                index += 8
            }
            var folded =
                UInt8(truncatingIfNeeded: wide) ^ UInt8(truncatingIfNeeded: wide >> 8)
                ^ UInt8(truncatingIfNeeded: wide >> 16) ^ UInt8(truncatingIfNeeded: wide >> 24)
                ^ UInt8(truncatingIfNeeded: wide >> 32) ^ UInt8(truncatingIfNeeded: wide >> 40)
                ^ UInt8(truncatingIfNeeded: wide >> 48) ^ UInt8(truncatingIfNeeded: wide >> 56)
            while index < data.count {
                folded ^= data[index]
                index += 1
            }
            return folded
        }
    }
}
