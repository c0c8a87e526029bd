import Crypto
import OTAMeshCommon

/// An MCUboot image: `image_header`, the image body, then the TLV area — an optional
/// protected block (info magic 0x6908, covered by the hash) and the unprotected block
/// (info magic 0x6907) that carries the SHA-256 and signature TLVs.
///
/// The SHA256 TLV covers the header, the body and the protected TLV block
/// (mcu-tools/mcuboot `bootutil_img_hash`).
public struct MCUbootImage: Sendable, Equatable {
    public static let magic: UInt32 = 0x96F3_B83D
    static let headerSize = 32
    static let tlvInfoMagic: UInt16 = 0x6907
    static let protectedTLVInfoMagic: UInt16 = 0x6908

    /// One TLV entry.
    public struct TLV: Sendable, Equatable {
        public let type: UInt16
        public let protected: Bool
        public let value: [UInt8]
    }

    /// `ih_ver`: major.minor.revision+build.
    public struct Version: Sendable, Equatable, CustomStringConvertible {
        public let major: UInt8
        public let minor: UInt8
        public let revision: UInt16
        public let build: UInt32
        public var description: String { "\(major).\(minor).\(revision)+\(build)" }
    }

    public let loadAddress: UInt32
    public let headerSize: Int
    public let protectedTLVSize: Int
    public let imageSize: Int
    public let flags: UInt32
    public let version: Version
    public let tlvs: [TLV]
    public let digestStored: String?
    public let digestComputed: String
    public let problems: [ImageProblem]

    /// The signature TLV's algorithm, if any: `rsa-2048`, `rsa-3072` (both RSA-PSS),
    /// `ecdsa-p224`, `ecdsa-p256`, `ecdsa-p384`, `ed25519`, `pure`.
    public var signatureType: String? {
        for tlv in tlvs {
            if tlv.type == 0x22 {
                // ECDSA_SIG serves P-256 and P-384: a DER P-256 signature is at most 72 bytes.
                return tlv.value.count <= 72 ? "ecdsa-p256" : "ecdsa-p384"
            }
            if let name = Self.signatureNames[tlv.type] { return name }
        }
        return nil
    }

    /// `SEC_CNT` (0x50): the image's security counter, if present.
    public var securityCounter: UInt32? {
        guard let tlv = tlvs.first(where: { $0.type == 0x50 }), tlv.value.count == 4 else { return nil }
        return ByteReader.u32(tlv.value[...], at: 0)
    }

    /// `KEYHASH` (0x01) in hex, if present.
    public var keyHash: String? {
        tlvs.first(where: { $0.type == 0x01 }).map { hexString($0.value) }
    }

    /// True when the body is encrypted (`IMAGE_F_ENCRYPTED_AES128/256`): the hash covers the
    /// plaintext, which the gateway does not have.
    public var isEncrypted: Bool { flags & 0x0C != 0 }

    static let signatureNames: [UInt16: String] = [
        0x20: "rsa-2048", 0x21: "ecdsa-p224", 0x23: "rsa-3072", 0x24: "ed25519", 0x25: "pure",
    ]

    /// Parses an image; integrity failures are collected in ``problems``.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws(ImageProblem) -> MCUbootImage {
        var reader = ByteReader(bytes, format: .mcuboot)
        let magicWord = try reader.u32("image header")
        guard magicWord == magic else {
            throw .badMagic(format: .mcuboot, what: "header", expected: magic, found: magicWord)
        }
        let loadAddress = try reader.u32("image header")
        let headerSize = Int(try reader.u16("image header"))
        let protectedSize = Int(try reader.u16("image header"))
        let imageSize = Int(try reader.u32("image header"))
        let flags = try reader.u32("image header")
        let version = Version(
            major: try reader.u8("image header"), minor: try reader.u8("image header"),
            revision: try reader.u16("image header"), build: try reader.u32("image header"))
        guard headerSize >= Self.headerSize else {
            throw .invalidField(format: .mcuboot, field: "ih_hdr_size", value: String(headerSize), reason: "smaller than the 32-byte header")
        }
        try reader.seek(to: 0, "image header")
        try reader.skip(headerSize, "header padding (ih_hdr_size \(headerSize))")
        try reader.skip(imageSize, "image body (ih_img_size \(imageSize))")
        let hashedEnd = reader.offset + protectedSize

        var tlvs: [TLV] = []
        if protectedSize > 0 {
            tlvs += try readTLVBlock(&reader, magic: protectedTLVInfoMagic, protected: true, declaredSize: protectedSize)
        }
        tlvs += try readTLVBlock(&reader, magic: tlvInfoMagic, protected: false, declaredSize: nil)

        guard hashedEnd <= bytes.count else {
            throw .truncated(format: .mcuboot, what: "protected TLV area", offset: hashedEnd, needed: protectedSize, available: 0)
        }
        let computed = hexString(SHA256.hash(data: bytes[bytes.startIndex..<(bytes.startIndex + hashedEnd)]))
        let stored = tlvs.first(where: { $0.type == 0x10 }).map { hexString($0.value) }
        var problems: [ImageProblem] = []
        if let stored {
            if stored != computed && flags & 0x0C == 0 {
                problems.append(.digestMismatch(format: .mcuboot, what: "SHA256 TLV", stored: stored, computed: computed))
            }
        } else if !tlvs.contains(where: { $0.type == 0x11 || $0.type == 0x12 }) {
            problems.append(.invalidField(format: .mcuboot, field: "TLV area", value: "\(tlvs.count) entries", reason: "no image hash TLV"))
        }
        return MCUbootImage(
            loadAddress: loadAddress, headerSize: headerSize, protectedTLVSize: protectedSize, imageSize: imageSize,
            flags: flags, version: version, tlvs: tlvs, digestStored: stored, digestComputed: computed, problems: problems)
    }

    /// Reads one TLV block: a 4-byte info header (magic, total length including itself) and entries.
    private static func readTLVBlock(
        _ reader: inout ByteReader, magic: UInt16, protected: Bool, declaredSize: Int?
    ) throws(ImageProblem) -> [TLV] {
        let what = protected ? "protected TLV info" : "TLV info"
        let start = reader.offset
        let found = try reader.u16(what)
        guard found == magic else {
            throw .badMagic(format: .mcuboot, what: what, expected: UInt32(magic), found: UInt32(found))
        }
        let total = Int(try reader.u16(what))
        if let declaredSize, declaredSize != total {
            throw .invalidField(
                format: .mcuboot, field: "protected TLV size", value: String(total),
                reason: "header says ih_protect_tlv_size \(declaredSize)")
        }
        guard total >= 4 else {
            throw .invalidField(format: .mcuboot, field: "\(what) length", value: String(total), reason: "shorter than its own header")
        }
        try reader.require(total - 4, for: "TLV area (\(total) bytes)")
        let end = start + total
        var entries: [TLV] = []
        while reader.offset < end {
            let type = try reader.u16("TLV entry")
            let length = Int(try reader.u16("TLV entry"))
            guard reader.offset + length <= end else {
                throw .invalidField(
                    format: .mcuboot, field: "TLV \(hex(type)) length", value: String(length),
                    reason: "runs past the end of the TLV area")
            }
            entries.append(TLV(type: type, protected: protected, value: Array(try reader.slice(length, "TLV \(hex(type))"))))
        }
        return entries
    }
}
