import Crypto
import OTAMeshCommon

/// Detects an image's format from its leading bytes and checks everything the format
/// carries. Pure: it works on bytes in memory and never throws — a broken image yields a
/// report with `valid == false` and the reasons.
public enum ImageInspector {
    /// Detects the format from the first bytes. Anything unrecognised is ``ImageFormat/raw``.
    public static func detect(_ bytes: ArraySlice<UInt8>) -> ImageFormat {
        guard let first = bytes.first else { return .raw }
        if bytes.count >= 4 {
            let word = ByteReader.u32(bytes, at: 0)
            if word == MCUbootImage.magic { return .mcuboot }
            if word == WMOTAImage.magic { return .wmOTA }
        }
        if first == ESP8266Image.v2Magic { return .esp8266 }
        if first == ESP32AppImage.magic {
            return ESP32AppImage.looksLike(bytes) ? .esp32App : .esp8266
        }
        return .raw
    }

    /// Inspects an image held in memory.
    public static func inspect(_ bytes: [UInt8]) -> ImageReport {
        inspect(bytes[...], sha256: hexString(SHA256.hash(data: bytes)))
    }

    /// Inspects an image held in memory, parsing it as `format` whatever its leading bytes say
    /// (so a file that must be, say, `wm-ota` but has a damaged magic is reported as such).
    public static func inspect(_ bytes: [UInt8], as format: ImageFormat?) -> ImageReport {
        inspect(bytes[...], sha256: hexString(SHA256.hash(data: bytes)), as: format)
    }

    /// Inspects an image whose SHA-256 the caller has already computed (e.g. while streaming it).
    public static func inspect(_ bytes: ArraySlice<UInt8>, sha256: String, as expected: ImageFormat? = nil) -> ImageReport {
        let format = expected ?? detect(bytes)
        var report = ImageReport(format: format, size: bytes.count, sha256: sha256)
        do throws(ImageProblem) {
            switch format {
            case .esp32App: describe(try ESP32AppImage.parse(bytes), into: &report)
            case .esp8266: describe(try ESP8266Image.parse(bytes), into: &report)
            case .wmOTA: describe(try WMOTAImage.parse(bytes), into: &report)
            case .mcuboot: describe(try MCUbootImage.parse(bytes), into: &report)
            case .raw where bytes.isEmpty: throw ImageProblem.empty
            case .raw: break
            }
        } catch {
            report.fail(error)
            // Say what the image was meant for even when its body is broken.
            if format == .esp32App { report.chip = ESP32AppImage.headerChip(bytes)?.name }
            if format == .esp8266 { report.chip = "esp8266" }
        }
        return report
    }

    static func describe(_ image: ESP32AppImage, into report: inout ImageReport) {
        report.chip = image.chip.name
        report.details["segments"] = String(image.segments.count)
        report.details["entry"] = hex(image.entryAddress)
        report.details["flashMode"] = ESPFlashMode(rawValue: image.flashMode)?.name ?? hex(image.flashMode)
        report.details["flashSize"] = espFlashSizeName(image.flashSizeCode) ?? hex(image.flashSizeCode)
        report.details["flashFrequencyCode"] = hex(image.flashFrequencyCode)
        report.details["minChipRevision"] = chipRevision(image.minChipRevision)
        report.details["maxChipRevision"] = chipRevision(image.maxChipRevision)
        report.details["hashAppended"] = String(image.hashAppended)
        report.details["checksum"] = hex(image.checksumStored)
        if image.imageLength < report.size {
            report.details["trailingBytes"] = String(report.size - image.imageLength)
        }
        if let desc = image.appDescription {
            report.setVersion(desc.version)
            report.project = desc.projectName
            report.secureVersion = desc.secureVersion
            report.idfVersion = desc.idfVersion
            report.elfSHA256 = desc.elfSHA256
            report.details["buildDate"] = desc.date
            report.details["buildTime"] = desc.time
        }
        image.problems.forEach { report.fail($0) }
    }

    static func describe(_ image: ESP8266Image, into report: inout ImageReport) {
        report.chip = "esp8266"
        report.details["imageVersion"] = String(image.imageVersion)
        // Counted as esptool counts them: the v2 IROM segment is one of them.
        report.details["segments"] = String(image.segments.count + (image.iromSegment == nil ? 0 : 1))
        report.details["entry"] = hex(image.entryAddress)
        report.details["flashMode"] = ESPFlashMode(rawValue: image.flashMode)?.name ?? hex(image.flashMode)
        report.details["checksum"] = hex(image.checksumStored)
        if let irom = image.iromSegment {
            report.details["iromLength"] = String(irom.length)
        }
        image.problems.forEach { report.fail($0) }
    }

    static func describe(_ image: WMOTAImage, into report: inout ImageReport) {
        report.setVersion(image.version)
        report.compressed = image.compressed
        report.details["compression"] = image.compression.rawValue
        if image.compression == .gzip { report.details["innerImage"] = "not checked (legacy gzip)" }
        report.details["imageType"] = String(image.imageType)
        report.details["imgAddr"] = hex(image.imageAddress)
        report.details["imgLen"] = String(image.imageLength)
        report.details["orgChecksum"] = hex(image.originalChecksum)
        report.details["updNo"] = String(image.updateNumber)
        report.details["signed"] = String(image.signed)
        if let length = image.decompressedLength {
            report.details["decompressedLength"] = String(length)
        }
        image.problems.forEach { report.fail($0) }
    }

    static func describe(_ image: MCUbootImage, into report: inout ImageReport) {
        report.setVersion(image.version.description)
        report.details["loadAddress"] = hex(image.loadAddress)
        report.details["headerSize"] = String(image.headerSize)
        report.details["imageSize"] = String(image.imageSize)
        report.details["flags"] = hex(image.flags)
        report.details["tlvTypes"] = image.tlvs.map { hex($0.type) }.joined(separator: ",")
        if let signature = image.signatureType { report.details["signatureType"] = signature }
        if let counter = image.securityCounter { report.details["securityCounter"] = String(counter) }
        if let keyHash = image.keyHash { report.details["keyHash"] = keyHash }
        if image.isEncrypted { report.details["encrypted"] = "true" }
        image.problems.forEach { report.fail($0) }
    }

    /// `min_chip_rev_full` encodes major × 100 + minor; printed as esptool does (`v0.0`; 0xFFFF = `v655.35`, no upper bound).
    static func chipRevision(_ full: UInt16) -> String {
        "v\(full / 100).\(full % 100)"
    }
}
