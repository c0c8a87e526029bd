import Foundation
import Testing

@testable import OTAMeshFirmware

/// `MergedFlashImage.merge` must write the bytes `esptool merge-bin` writes (raw format, flash
/// parameters kept) for the same parts: the live tests write the parts to a temporary directory,
/// run the installed esptool on them and compare byte for byte.
@Suite("merged flash image")
struct MergedFlashImageTests {
    static let esptoolAvailable = runEsptool(["version"])?.status == 0

    /// One cross-check: the parts, the merge options, and the chip named on esptool's command line.
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var chip: String
        var parts: [FlashPart]
        var targetOffset = 0
        var padToSize: Int?
        /// esptool's spelling of `padToSize`, one of its `--pad-to-size` choices.
        var padName: String?

        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "ESP32 layout: bootloader at 0x1000, partitions, otadata, app, filesystem", chip: "esp32", parts: esp32Layout),
        Case(
            name: "ESP32-S3 layout: bootloader at 0x0", chip: "esp32s3",
            parts: [
                FlashPart(offset: 0x0, contents: bootloader("esp32s3"), name: "bootloader.bin"),
                FlashPart(offset: 0x8000, contents: pattern(0xC00, seed: 2), name: "partition-table.bin"),
                FlashPart(offset: 0x10000, contents: app("esp32s3"), name: "app.bin"),
            ]),
        Case(
            name: "ESP32-C3 layout given out of order", chip: "esp32c3",
            parts: [
                FlashPart(offset: 0x210000, contents: pattern(5_000, seed: 4), name: "littlefs.bin"),
                FlashPart(offset: 0x10000, contents: app("esp32c3"), name: "app.bin"),
                FlashPart(offset: 0x0, contents: bootloader("esp32c3"), name: "bootloader.bin"),
                FlashPart(offset: 0x8000, contents: pattern(0xC00, seed: 2), name: "partition-table.bin"),
            ]),
        Case(name: "ESP32 layout with --target-offset 0x1000", chip: "esp32", parts: esp32Layout, targetOffset: 0x1000),
        Case(
            name: "app only, --target-offset 0x8000 below the first part", chip: "esp32",
            parts: [FlashPart(offset: 0x10000, contents: app("esp32"), name: "app.bin")], targetOffset: 0x8000),
        Case(name: "ESP32 layout with --pad-to-size 4MB", chip: "esp32", parts: esp32Layout, padToSize: 0x40_0000, padName: "4MB"),
        Case(
            name: "ESP32 layout with --target-offset 0x1000 and --pad-to-size 4MB", chip: "esp32", parts: esp32Layout,
            targetOffset: 0x1000, padToSize: 0x40_0000, padName: "4MB"),
        Case(
            name: "unaligned offsets, odd lengths, and empty parts (the last pads up to its address)", chip: "esp32",
            parts: [
                FlashPart(offset: 0x30000, contents: [], name: "empty-last.bin"),
                FlashPart(offset: 0x9000, contents: [], name: "nvs.bin"),
                FlashPart(offset: 0x20123, contents: pattern(777, seed: 6), name: "odd.bin"),
                FlashPart(offset: 0x8000, contents: pattern(0x1000, seed: 7), name: "sector.bin"),
                FlashPart(offset: 0x21000, contents: pattern(1, seed: 8), name: "one-byte.bin"),
            ]),
        Case(
            name: "a part ending exactly at 16 MiB", chip: "esp32s3",
            parts: [
                FlashPart(offset: 0x0, contents: pattern(100, seed: 9), name: "first.bin"),
                FlashPart(offset: 0xFF_F000, contents: pattern(0x1000, seed: 10), name: "last.bin"),
            ]),
    ]

    @Test(
        "matches esptool merge-bin byte for byte", .enabled(if: esptoolAvailable, "needs esptool (make deps installs it)"),
        arguments: cases)
    func matchesEsptool(_ example: Case) throws {
        let ours = try MergedFlashImage.merge(example.parts, targetOffset: example.targetOffset, padToSize: example.padToSize)
        var options = ["--target-offset", hex(example.targetOffset)]
        if let padName = example.padName { options += ["--pad-to-size", padName] }
        let theirs = try esptoolMerge(example.parts, chip: example.chip, options: options)
        #expect(firstDifference(ours, theirs) == nil)
    }

    @Test(
        "the bootloader's header is kept, as esptool keeps it unless given flash arguments",
        .enabled(if: esptoolAvailable, "needs esptool (make deps installs it)"))
    func bootloaderHeaderKept() throws {
        let loader = Self.bootloader("esp32")
        #expect(loader.count > 0x100 && loader[0] == 0xE9 && loader[2] == 0x02, "a valid ESP32 image in DIO mode, SHA-256 appended")
        let ours = try MergedFlashImage.merge(Self.esp32Layout)
        #expect(Array(ours[0x1000..<0x1000 + loader.count]) == loader)
        #expect(firstDifference(ours, try esptoolMerge(Self.esp32Layout, chip: "esp32", options: [])) == nil)

        // Asked for QIO, esptool rewrites header byte 2 and the appended digest, and nothing else:
        // so the image is one it would patch, and the default left it alone.
        let patched = try esptoolMerge(Self.esp32Layout, chip: "esp32", options: ["--flash-mode", "qio"])
        try #require(patched.count == ours.count)
        let changed = Set(ours.indices.filter { ours[$0] != patched[$0] })
        let digest = 0x1000 + loader.count - 32..<0x1000 + loader.count
        #expect(patched[0x1002] == 0x00)
        #expect(changed.contains(0x1002) && changed.isSubset(of: Set(digest).union([0x1002])), "\(changed.sorted())")
    }

    @Test(
        "esptool and merge both refuse parts that share a 4 KiB sector",
        .enabled(if: esptoolAvailable, "needs esptool (make deps installs it)"))
    func sharedSectorRefused() throws {
        let parts = [
            FlashPart(offset: 0x8000, contents: Self.pattern(0xC00, seed: 2), name: "partition-table.bin"),
            FlashPart(offset: 0x8C00, contents: Self.pattern(16, seed: 3), name: "extra.bin"),
        ]
        let failure = try esptoolFailure(parts, options: [])
        #expect(failure.contains("Detected overlap at address"), "\(failure)")
        #expect(throws: FilesystemImageError.self) { try MergedFlashImage.merge(parts) }
    }

    @Test(
        "esptool and merge both refuse a part below the target offset",
        .enabled(if: esptoolAvailable, "needs esptool (make deps installs it)"))
    func belowTargetRefused() throws {
        let failure = try esptoolFailure(Self.esp32Layout, options: ["--target-offset", "0x2000"])
        #expect(failure.contains("Input data offset 0x1000 is before this"), "\(failure)")
        #expect(throws: FilesystemImageError.self) { try MergedFlashImage.merge(Self.esp32Layout, targetOffset: 0x2000) }
    }

    // MARK: Pure tests (no esptool)

    @Test("starts at the target offset and fills gaps with 0xFF, parts in address order")
    func layout() throws {
        let image = try MergedFlashImage.merge([
            FlashPart(offset: 0x2000, contents: [3], name: "b"),
            FlashPart(offset: 0x1000, contents: [1, 2], name: "a"),
        ])
        #expect(image.count == 0x2001)
        #expect(image[0..<0x1000].allSatisfy { $0 == 0xFF })
        #expect(image[0x1000] == 1 && image[0x1001] == 2 && image[0x2000] == 3)
        #expect(image[0x1002..<0x2000].allSatisfy { $0 == 0xFF })
        let offset = try MergedFlashImage.merge([FlashPart(offset: 0x1000, contents: [1], name: "a")], targetOffset: 0x1000, padToSize: 0x4000)
        #expect(offset == [1] + [UInt8](repeating: 0xFF, count: 0x2FFF))
    }

    @Test("overlapping parts are refused, naming both parts and their offsets")
    func overlapNamesBoth() {
        let parts = [
            FlashPart(offset: 0x10000, contents: [UInt8](repeating: 0, count: 0x2000), name: "app.bin"),
            FlashPart(offset: 0x11000, contents: [1], name: "storage.bin"),
        ]
        let expected = FilesystemImageError.invalidParameter(
            filesystem: "flash image", parameter: "storage.bin offset", value: "0x11000", reason: "overlaps app.bin at 0x10000–0x11fff")
        #expect(throws: expected) { try MergedFlashImage.merge(parts) }
        #expect(expected.description == "flash image: storage.bin offset 0x11000: overlaps app.bin at 0x10000–0x11fff")
    }

    @Test("parts in one sector without sharing bytes are refused as esptool does, naming both")
    func sharedSectorNamesBoth() {
        let parts = [
            FlashPart(offset: 0x8000, contents: [UInt8](repeating: 0, count: 0xC00), name: "partition-table.bin"),
            FlashPart(offset: 0x8C00, contents: [1], name: "extra.bin"),
        ]
        let expected = FilesystemImageError.invalidParameter(
            filesystem: "flash image", parameter: "extra.bin offset", value: "0x8c00",
            reason: "shares the 4 KiB flash sector at 0x8000 with partition-table.bin at 0x8000–0x8bff, and writing one erases the other")
        #expect(throws: expected) { try MergedFlashImage.merge(parts) }
    }

    @Test("a part below the target offset is refused")
    func belowTargetOffset() {
        let expected = FilesystemImageError.invalidParameter(
            filesystem: "flash image", parameter: "bootloader.bin offset", value: "0x1000",
            reason: "is below the target offset 0x8000, where the merged image starts")
        #expect(throws: expected) { try MergedFlashImage.merge(Self.esp32Layout, targetOffset: 0x8000) }
    }

    @Test("a pad size below the end of the data is refused (esptool silently ignores it)")
    func padTooSmall() {
        let parts = [FlashPart(offset: 0x10000, contents: [UInt8](repeating: 0, count: 0x100), name: "app.bin")]
        let expected = FilesystemImageError.doesNotFit(
            filesystem: "flash image", needed: 0x10100, available: 0x10000,
            detail: "pad-to-size 0x10000 is below the end of the data: app.bin at 0x10000 ends at 0x10100")
        #expect(throws: expected) { try MergedFlashImage.merge(parts, padToSize: 0x10000) }
    }

    @Test("parts, offsets and padding past 16 MiB are refused, and so is an empty part list")
    func limits() {
        let sixteen = MergedFlashImage.flashAddressLimit
        #expect(throws: FilesystemImageError.self) { try MergedFlashImage.merge([FlashPart(offset: sixteen - 1, contents: [1, 2], name: "x")]) }
        #expect(throws: FilesystemImageError.self) { try MergedFlashImage.merge([FlashPart(offset: Int.max, contents: [1], name: "x")]) }
        #expect(throws: FilesystemImageError.self) { try MergedFlashImage.merge([FlashPart(offset: -1, contents: [1], name: "x")]) }
        #expect(throws: FilesystemImageError.self) { try MergedFlashImage.merge([FlashPart(offset: 0, contents: [1], name: "x")], padToSize: 2 * sixteen) }
        #expect(throws: FilesystemImageError.self) { try MergedFlashImage.merge([FlashPart(offset: 0, contents: [1], name: "x")], padToSize: Int.min) }
        #expect(throws: FilesystemImageError.self) { try MergedFlashImage.merge([FlashPart(offset: 0x1000, contents: [1], name: "x")], targetOffset: -1) }
        #expect(throws: FilesystemImageError.self) { try MergedFlashImage.merge([]) }
        #expect((try? MergedFlashImage.merge([FlashPart(offset: sixteen - 1, contents: [1], name: "x")]))?.count == sixteen)
    }

    @Test("write-flash arguments put the merged image at its target offset")
    func writeFlashArguments() {
        #expect(MergedFlashImage.writeFlashArguments(file: "merged.bin") == ["write-flash", "0x0", "merged.bin"])
        #expect(MergedFlashImage.writeFlashArguments(targetOffset: 0x1000, file: "/tmp/m.bin") == ["write-flash", "0x1000", "/tmp/m.bin"])
    }

    // MARK: Parts

    static let esp32Layout = [
        FlashPart(offset: 0x1000, contents: bootloader("esp32"), name: "bootloader.bin"),
        FlashPart(offset: 0x8000, contents: pattern(0xC00, seed: 2), name: "partition-table.bin"),
        FlashPart(offset: 0xD000, contents: [UInt8](repeating: 0xFF, count: 0x2000), name: "ota_data_initial.bin"),
        FlashPart(offset: 0x10000, contents: app("esp32"), name: "app.bin"),
        FlashPart(offset: 0x29_0000, contents: pattern(3_000, seed: 5), name: "spiffs.bin"),
    ]

    /// A valid image with header, extended header and appended SHA-256, in DIO mode, 4 MB,
    /// 40 MHz: the header esptool would patch at the bootloader offset if given flash arguments.
    static func bootloader(_ chip: String) -> [UInt8] {
        guard let chip = ESPChip.named(chip) else { return [] }
        var builder = ESP32ImageBuilder(chip: chip, version: "bootloader", projectName: "bootloader")
        builder.body = pattern(2_000, seed: 1)
        return builder.build()
    }

    static func app(_ chip: String) -> [UInt8] {
        guard let chip = ESPChip.named(chip) else { return [] }
        var builder = ESP32ImageBuilder(chip: chip, version: "1.2.3", projectName: "otamesh-app")
        builder.body = pattern(9_000, seed: 3)
        return builder.build()
    }

    /// Deterministic bytes with 0xFF among them; never starting with `:`, which esptool would
    /// try to read as Intel HEX.
    static func pattern(_ count: Int, seed: UInt8) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ Int(seed) &* 11 &+ ($0 >> 8)) | ($0 == 0 ? 0x80 : 0) }
    }

    // MARK: esptool

    /// Writes the parts to a temporary directory, runs `esptool --chip CHIP merge-bin` on them
    /// and returns its output file; fails the test when esptool exits non-zero or writes to stderr.
    func esptoolMerge(_ parts: [FlashPart], chip: String, options: [String]) throws -> [UInt8] {
        try withPartFiles(parts) { directory, arguments in
            let output = directory.appendingPathComponent("merged.bin")
            let run = try #require(Self.runEsptool(["--chip", chip, "merge-bin", "-o", output.path] + options + arguments))
            try #require(run.status == 0, "esptool exited \(run.status): \(run.stderr)")
            #expect(run.stderr.isEmpty, "esptool stderr: \(run.stderr)")
            return [UInt8](try Data(contentsOf: output))
        }
    }

    /// esptool's stderr for a merge that must fail; fails the test if it succeeds.
    func esptoolFailure(_ parts: [FlashPart], options: [String]) throws -> String {
        try withPartFiles(parts) { directory, arguments in
            let output = directory.appendingPathComponent("merged.bin").path
            let run = try #require(Self.runEsptool(["--chip", "esp32", "merge-bin", "-o", output] + options + arguments))
            #expect(run.status != 0, "esptool accepted what merge refuses")
            // click draws its error in a box: join the lines and drop the border.
            return run.stderr.split(whereSeparator: \.isNewline)
                .map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "│ ")) }.joined(separator: " ")
        }
    }

    private func withPartFiles<T>(_ parts: [FlashPart], _ body: (URL, [String]) throws -> T) throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("otamesh-merge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var arguments: [String] = []
        for (index, part) in parts.enumerated() {
            let file = directory.appendingPathComponent("\(index)-\(part.name)")
            try Data(part.contents).write(to: file)
            arguments += [hex(part.offset), file.path]
        }
        return try body(directory, arguments)
    }

    /// Runs `python3 -m esptool ARGUMENTS` with the ESPTOOL_* environment defaults (which could
    /// turn the flash-parameter `keep` into a mode) removed; nil when it cannot be started.
    static func runEsptool(_ arguments: [String]) -> (status: Int32, stderr: String)? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-m", "esptool"] + arguments
        process.environment = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ESPTOOL_") }
        let stderr = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr
        do { try process.run() } catch { return nil }
        let text = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, text)
    }

    /// Where two images first differ, for the failure message; nil when they are equal.
    func firstDifference(_ ours: [UInt8], _ theirs: [UInt8]) -> String? {
        if let index = ours.indices.first(where: { $0 < theirs.count && ours[$0] != theirs[$0] }) {
            return "first difference at offset \(hex(index)): ours \(hex(Int(ours[index]))), esptool \(hex(Int(theirs[index])))"
        }
        return ours.count == theirs.count ? nil : "ours is \(ours.count) bytes, esptool's \(theirs.count)"
    }

    private func hex(_ value: Int) -> String { "0x" + String(value, radix: 16) }
}
