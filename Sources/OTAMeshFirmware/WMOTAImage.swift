/// A WinnerMicro W800-family OTA image (`wm_ota_header_t`, WM IoT SDK `tools/wm/bin2img.py`;
/// older W800 SDK `T_BOOTER` / `wm_tool.c`): a 64-byte header, `img_len` payload bytes, and a
/// 128-byte signature when `img_attr.signature` is set.
///
/// Both checksums are CRC-32/JAMCRC (reflected 0xEDB88320, init 0xFFFFFFFF, no final XOR):
/// `hd_checksum` over header bytes 0..<60, `org_checksum` over the payload. An xz OTA image
/// (`compress_type` 1) carries one xz stream whose content is a complete uncompressed image
/// with its own header and checksums; both levels are checked.
public struct WMOTAImage: Sendable, Equatable {
    public static let magic: UInt32 = 0xA0FF_FF9F
    static let headerSize = 64
    static let signatureSize = 128
    /// Largest decompressed image accepted (W80x flash is at most 16 MiB).
    public static let maxDecompressedSize = 16 << 20

    /// How the payload is stored.
    public enum Compression: String, Sendable { case none, xz, gzip }

    public let attributes: UInt32
    public let imageAddress: UInt32
    public let imageLength: Int
    public let headerAddress: UInt32
    public let upgradeAddress: UInt32
    public let originalChecksum: UInt32
    public let updateNumber: UInt32
    public let version: String
    public let compression: Compression
    /// The decompressed image of an xz OTA image.
    public let inner: Inner?
    public let problems: [ImageProblem]

    /// The decompressed image inside an xz OTA image (boxed: a struct cannot contain itself).
    public final class Inner: Sendable, Equatable {
        public let image: WMOTAImage
        public let length: Int
        init(image: WMOTAImage, length: Int) {
            self.image = image
            self.length = length
        }
        public static func == (a: Inner, b: Inner) -> Bool { a.image == b.image && a.length == b.length }
    }

    /// `img_type` (bits 3:0): 0 boot loader, 1 application, 0xE CPFT.
    public var imageType: UInt8 { UInt8(attributes & 0xF) }
    /// `signature` (bit 8): a 128-byte signature follows the payload.
    public var signed: Bool { attributes & 0x100 != 0 }
    /// `code_encrypt` (bit 4).
    public var encrypted: Bool { attributes & 0x10 != 0 }
    public var compressed: Bool { compression != .none }
    public var decompressedLength: Int? { inner?.length }

    /// Parses an image; `nested` is true for the image inside an xz payload.
    public static func parse(_ bytes: ArraySlice<UInt8>, nested: Bool = false) throws(ImageProblem) -> WMOTAImage {
        var reader = ByteReader(bytes, format: .wmOTA)
        try reader.require(headerSize, for: "64-byte header")
        let magicWord = try reader.u32("header")
        guard magicWord == magic else {
            throw .badMagic(format: .wmOTA, what: nested ? "inner header" : "header", expected: magic, found: magicWord)
        }
        let attributes = try reader.u32("header")
        let imageAddress = try reader.u32("header")
        let imageLength = Int(try reader.u32("header"))
        let headerAddress = try reader.u32("header")
        let upgradeAddress = try reader.u32("header")
        let originalChecksum = try reader.u32("header")
        let updateNumber = try reader.u32("header")
        let version = try reader.slice(16, "header").cString()
        try reader.skip(12, "header")  // flag bits, reserved, next pointer
        let storedHeaderChecksum = try reader.u32("header")

        var problems: [ImageProblem] = []
        let prefix = nested ? "inner " : ""
        let headerChecksum = jamCRC(bytes.prefix(60))
        if headerChecksum != storedHeaderChecksum {
            problems.append(
                .checksumMismatch(
                    format: .wmOTA, what: "\(prefix)header checksum (hd_checksum)",
                    stored: storedHeaderChecksum, computed: headerChecksum))
        }
        let signatureBytes = attributes & 0x100 != 0 ? signatureSize : 0
        let payload = try reader.slice(imageLength, "\(prefix)payload (img_len \(imageLength))")
        try reader.skip(signatureBytes, "\(prefix)signature")
        let payloadChecksum = jamCRC(payload)
        if payloadChecksum != originalChecksum {
            problems.append(
                .checksumMismatch(
                    format: .wmOTA, what: "\(prefix)payload checksum (org_checksum)",
                    stored: originalChecksum, computed: payloadChecksum))
        }

        let gzip = attributes & 0x1_0000 != 0
        let compressType = (attributes >> 20) & 0x3
        var compression = Compression.none
        var inner: Inner?
        switch (gzip, compressType) {
        case (false, 0):
            break
        case (false, 1):
            compression = .xz
            if nested {
                problems.append(.invalidField(format: .wmOTA, field: "inner compress_type", value: "1", reason: "an xz image inside an xz image"))
            } else if problems.isEmpty {
                do {
                    let decoded = try XZDecoder.decompress(trimStreamPadding(payload), outputLimit: maxDecompressedSize)
                    do {
                        let image = try parse(decoded[...], nested: true)
                        inner = Inner(image: image, length: decoded.count)
                        problems += image.problems
                    } catch {
                        problems.append(error)
                    }
                } catch {
                    problems.append(.decompressionFailed(format: .wmOTA, reason: error.description))
                }
            }
        case (true, 0):
            // Legacy W800 SDK gzip OTA: outer checksums verified; the inner image is not decoded.
            compression = .gzip
        default:
            problems.append(
                .invalidField(
                    format: .wmOTA, field: "img_attr", value: hex(attributes),
                    reason: "unknown compression (gzip bit \(gzip ? 1 : 0), compress_type \(compressType))"))
        }
        return WMOTAImage(
            attributes: attributes, imageAddress: imageAddress, imageLength: imageLength, headerAddress: headerAddress,
            upgradeAddress: upgradeAddress, originalChecksum: originalChecksum, updateNumber: updateNumber,
            version: version, compression: compression, inner: inner, problems: problems)
    }

    /// bin2img pads the payload to 4 bytes (0xFF) after the xz stream, which ends in "YZ";
    /// drop up to 3 pad bytes so liblzma sees exactly one stream.
    static func trimStreamPadding(_ payload: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var end = payload.endIndex
        var trimmed = 0
        while trimmed < 3, end - payload.startIndex >= 2,
            !(payload[end - 2] == 0x59 && payload[end - 1] == 0x5A)
        {
            end -= 1
            trimmed += 1
        }
        return payload[payload.startIndex..<end]
    }

    /// CRC-32/JAMCRC: the IEEE CRC register without the final inversion.
    static func jamCRC(_ bytes: ArraySlice<UInt8>) -> UInt32 {
        CRC32.update(0xFFFF_FFFF, bytes)
    }
}
