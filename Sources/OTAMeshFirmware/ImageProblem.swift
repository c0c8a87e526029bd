/// The image formats otamesh recognises.
public enum ImageFormat: String, Sendable, Codable, CaseIterable {
    /// ESP32-family application image (`esp_image_header_t`, magic 0xE9, extended header).
    case esp32App = "esp32-app"
    /// ESP8266 image: v1 (magic 0xE9) or OTA v2 user1/user2 (magic 0xEA).
    case esp8266 = "esp8266"
    /// WinnerMicro W800-family OTA image (`wm_ota_header_t`), full or xz-compressed.
    case wmOTA = "wm-ota"
    /// MCUboot image (magic 0x96f3b83d) with its TLV trailer.
    case mcuboot = "mcuboot"
    /// Anything else: only its size and SHA-256 are known.
    case raw = "raw"

    /// The name used in error messages ("ESP32 image checksum mismatch: …").
    public var displayName: String {
        switch self {
        case .esp32App: "ESP32 image"
        case .esp8266: "ESP8266 image"
        case .wmOTA: "WM OTA image"
        case .mcuboot: "MCUboot image"
        case .raw: "image"
        }
    }
}

/// Why an image is not valid. Each case renders as one line that names the format,
/// the field and both values, e.g. `ESP32 image checksum mismatch: stored 0x81, computed 0xdb`.
public enum ImageProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// The file ends before a structure the header promises.
    case truncated(format: ImageFormat, what: String, offset: Int, needed: Int, available: Int)
    /// The magic number is not the format's.
    case badMagic(format: ImageFormat, what: String, expected: UInt32, found: UInt32)
    /// A stored checksum differs from the one computed over the bytes.
    case checksumMismatch(format: ImageFormat, what: String, stored: UInt32, computed: UInt32)
    /// A stored digest (SHA-256, …) differs from the one computed over the bytes.
    case digestMismatch(format: ImageFormat, what: String, stored: String, computed: String)
    /// A header field holds a value the format forbids or the file cannot contain.
    case invalidField(format: ImageFormat, field: String, value: String, reason: String)
    /// The compressed payload could not be decoded.
    case decompressionFailed(format: ImageFormat, reason: String)
    /// The file has no bytes at all.
    case empty

    public var description: String {
        switch self {
        case let .truncated(format, what, offset, needed, available):
            "\(format.displayName) truncated: \(what) needs \(needed) bytes at offset \(hex(offset)), \(available) remain"
        case let .badMagic(format, what, expected, found):
            "\(format.displayName) bad \(what) magic: expected \(hex(expected)), found \(hex(found))"
        case let .checksumMismatch(format, what, stored, computed):
            "\(format.displayName) \(what) mismatch: stored \(hex(stored)), computed \(hex(computed))"
        case let .digestMismatch(format, what, stored, computed):
            "\(format.displayName) \(what) mismatch: stored \(stored), computed \(computed)"
        case let .invalidField(format, field, value, reason):
            "\(format.displayName) invalid \(field) \(value): \(reason)"
        case let .decompressionFailed(format, reason):
            "\(format.displayName) payload does not decompress: \(reason)"
        case .empty:
            "file is empty (0 bytes)"
        }
    }
}
