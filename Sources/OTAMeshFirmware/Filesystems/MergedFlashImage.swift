/// One file to place in a flash image: the flash address it is written to, its bytes, and a
/// name for error messages (`bootloader.bin`).
public struct FlashPart: Sendable, Equatable {
    /// The flash address of the part's first byte.
    public var offset: Int
    /// The bytes written there.
    public var contents: [UInt8]
    /// What the part is called in error messages, usually its file name.
    public var name: String

    public init(offset: Int, contents: [UInt8], name: String) {
        self.offset = offset
        self.contents = contents
        self.name = name
    }
}

/// The single flash image `esptool merge-bin` writes in its default raw format, built in memory:
/// the same bytes as `esptool --chip CHIP merge-bin -o out.bin [--target-offset T]
/// [--pad-to-size S] OFFSET FILE …` for the same parts, so one `write-flash` at the target
/// offset puts every part where separate writes would.
///
/// Layout, as esptool's `merge_bin` does it: the parts in flash-address order (equal addresses
/// keep their given order), the image's byte 0 is flash address `targetOffset` (0 unless given,
/// not the lowest part's address), each gap before a part is 0xFF (erased flash), and with
/// `padToSize` the image is 0xFF-filled up to flash address `padToSize`, so it is
/// `padToSize - targetOffset` bytes long. No padding follows the last part otherwise.
///
/// Flash parameters: otamesh never patches the bootloader's flash mode, frequency or size. That is
/// esptool's default: `--flash-mode`, `--flash-freq` and `--flash-size` default to `keep`, and
/// with all three `keep` esptool copies the part at the bootloader offset unchanged, without
/// even reading its header, so it neither rewrites header bytes 2–3 nor recomputes the appended
/// SHA-256. The build already wrote the board's flash parameters into the bootloader, and
/// rewriting them would break a secure-boot signature over it. The chip therefore does not
/// change the merged bytes, and `merge` takes none.
///
/// Where esptool differs: it reads a file that starts with `:` and parses as Intel HEX as the
/// HEX records it encodes (parts here are always raw bytes), and it ignores a `--pad-to-size`
/// below the end of the data and accepts parts past 16 MiB, which `merge` rejects.
public enum MergedFlashImage {
    /// esptool's flash sector: parts may not share one (`write-flash` erases whole sectors).
    public static let sectorSize = 0x1000
    /// The flash address no part or padding may go past: 16 MiB, the most esptool can write on
    /// chips without 32-bit flash addressing (ESP32, ESP32-S2, ESP32-C3 and others).
    public static let flashAddressLimit = 0x100_0000

    static let filesystem = "flash image"

    /// The merged image of `parts`, whose first byte is flash address `targetOffset`, padded with
    /// 0xFF up to flash address `padToSize` when given.
    ///
    /// Throws for no parts, a negative address, a part below `targetOffset`, two parts in the
    /// same 4 KiB sector (esptool's "Detected overlap"; the error names both), a part or padding
    /// past ``flashAddressLimit``, and a `padToSize` below the end of the last part.
    public static func merge(
        _ parts: [FlashPart], targetOffset: Int = 0, padToSize: Int? = nil
    ) throws(FilesystemImageError) -> [UInt8] {
        let ordered = try validatedOrder(parts, targetOffset: targetOffset)
        // validatedOrder guarantees each part starts at or after the previous one's end.
        var end = ordered.map { $0.offset + $0.contents.count }.max() ?? targetOffset
        if let padToSize {
            try checkPadding(padToSize, end: end, last: ordered.last, targetOffset: targetOffset)
            end = padToSize
        }

        var image: [UInt8] = []
        image.reserveCapacity(end - targetOffset)
        for part in ordered {
            fill(&image, upTo: part.offset - targetOffset)
            image += part.contents
        }
        fill(&image, upTo: end - targetOffset)
        return image
    }

    /// The `esptool write-flash` arguments that write a merged image at `targetOffset`, e.g.
    /// `["write-flash", "0x0", "merged.bin"]` (esptool 5 spells the command with a hyphen;
    /// `write_flash` still works but prints a deprecation warning).
    public static func writeFlashArguments(targetOffset: Int = 0, file: String) -> [String] {
        ["write-flash", address(targetOffset), file]
    }

    /// The parts sorted by address, after esptool's checks (and ours on the 16 MiB limit).
    static func validatedOrder(_ parts: [FlashPart], targetOffset: Int) throws(FilesystemImageError) -> [FlashPart] {
        guard !parts.isEmpty else {
            throw .invalidParameter(
                filesystem: filesystem, parameter: "parts", value: "none", reason: "a flash image needs at least one part")
        }
        guard targetOffset >= 0, targetOffset < flashAddressLimit else {
            throw .invalidParameter(
                filesystem: filesystem, parameter: "target offset", value: address(targetOffset),
                reason: "must be a flash address below \(address(flashAddressLimit)) (16 MiB)")
        }
        for part in parts {
            guard part.offset >= 0 else {
                throw .invalidParameter(
                    filesystem: filesystem, parameter: "\(part.name) offset", value: address(part.offset),
                    reason: "a flash address cannot be negative")
            }
            guard part.offset < flashAddressLimit else {
                throw .invalidParameter(
                    filesystem: filesystem, parameter: "\(part.name) offset", value: address(part.offset),
                    reason: "is past the 16 MiB flash address limit \(address(flashAddressLimit))")
            }
            guard part.contents.count <= flashAddressLimit - part.offset else {
                throw .doesNotFit(
                    filesystem: filesystem, needed: part.offset + part.contents.count, available: flashAddressLimit,
                    detail: "\(part.name) at \(address(part.offset)) (\(part.contents.count) bytes) ends past "
                        + "the 16 MiB flash address limit \(address(flashAddressLimit))")
            }
        }

        let ordered = parts.enumerated()
            .sorted { ($0.element.offset, $0.offset) < ($1.element.offset, $1.offset) }
            .map(\.element)
        if let first = ordered.first, first.offset < targetOffset {
            throw .invalidParameter(
                filesystem: filesystem, parameter: "\(first.name) offset", value: address(first.offset),
                reason: "is below the target offset \(address(targetOffset)), where the merged image starts")
        }

        // esptool's overlap rule, exactly: a part may not start in a sector that the previous
        // part (by address) reaches into. Its last sector byte is one below its end rounded up
        // to a sector, so an empty part at a sector boundary claims nothing.
        var previous: (part: FlashPart, lastSectorByte: Int)?
        for part in ordered {
            let firstSector = part.offset & ~(sectorSize - 1)
            let end = part.offset + part.contents.count
            if let previous, firstSector < previous.lastSectorByte {
                throw overlap(part, previous.part)
            }
            previous = (part, ((end + sectorSize - 1) & ~(sectorSize - 1)) - 1)
        }
        return ordered
    }

    private static func overlap(_ part: FlashPart, _ earlier: FlashPart) -> FilesystemImageError {
        let earlierEnd = earlier.offset + earlier.contents.count
        let what =
            part.offset < earlierEnd
            ? "overlaps \(earlier.name) at \(span(earlier))"
            : "shares the 4 KiB flash sector at \(address(part.offset & ~(sectorSize - 1))) with "
                + "\(earlier.name) at \(span(earlier)), "
                + "and writing one erases the other"
        return .invalidParameter(
            filesystem: filesystem, parameter: "\(part.name) offset", value: address(part.offset), reason: what)
    }

    private static func checkPadding(
        _ padToSize: Int, end: Int, last: FlashPart?, targetOffset: Int
    ) throws(FilesystemImageError) {
        guard padToSize >= 0, padToSize <= flashAddressLimit else {
            throw .invalidParameter(
                filesystem: filesystem, parameter: "pad-to-size", value: address(padToSize),
                reason: "must be a flash size up to the 16 MiB flash address limit \(address(flashAddressLimit))")
        }
        guard padToSize >= end else {
            let lastName = last.map { "\($0.name) at \(address($0.offset)) ends at \(address(end))" } ?? "the parts end at \(address(end))"
            throw .doesNotFit(
                filesystem: filesystem, needed: end - targetOffset, available: padToSize - targetOffset,
                detail: "pad-to-size \(address(padToSize)) is below the end of the data: \(lastName)")
        }
    }

    /// Appends 0xFF, erased flash, until the image is `length` bytes.
    private static func fill(_ image: inout [UInt8], upTo length: Int) {
        if length > image.count {
            image += repeatElement(0xFF, count: length - image.count)
        }
    }

    /// The flash a part occupies: `0x8000–0x8bff`, or `0x9000 (empty)`.
    private static func span(_ part: FlashPart) -> String {
        part.contents.isEmpty
            ? "\(address(part.offset)) (empty)"
            : "\(address(part.offset))–\(address(part.offset + part.contents.count - 1))"
    }

    /// An address as esptool prints it: `0x1000`.
    private static func address(_ value: Int) -> String {
        value < 0 ? "-0x" + String(value.magnitude, radix: 16) : "0x" + String(value, radix: 16)
    }
}
