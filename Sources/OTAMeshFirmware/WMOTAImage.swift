/// A WinnerMicro W800-family OTA image (`wm_ota_header_t`). Layout confirmed in docs/formats.md.
public struct WMOTAImage: Sendable, Equatable {
    public static let magic: UInt32 = 0xA0FF_FF9F
    static let headerSize = 64

    public let imageType: UInt8
    public let compressed: Bool
    public let signed: Bool
    public let imageAddress: UInt32
    public let imageLength: Int
    public let originalChecksum: UInt32
    public let updateNumber: UInt32
    public let version: String
    public let decompressedLength: Int?
    public let problems: [ImageProblem]

    public static func parse(_ bytes: ArraySlice<UInt8>) throws(ImageProblem) -> WMOTAImage {
        throw .invalidField(format: .wmOTA, field: "header", value: "-", reason: "not yet supported")
    }
}
