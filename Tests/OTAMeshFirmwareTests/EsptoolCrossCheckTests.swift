import Foundation
import Testing

@testable import OTAMeshFirmware

/// `image inspect` must agree with Espressif's own `esptool image-info` on images made by
/// `esptool elf2image` (Tests/Fixtures/esp/generate.py), for every ESP32 chip and ESP8266.
@Suite("esptool cross-check")
struct EsptoolCrossCheckTests {
    static let expected: [String: EsptoolView] = (try? Fixtures.decode("esp/expected.json")) ?? [:]
    static let names = expected.keys.sorted()

    @Test("fixture table is present and covers every chip")
    func coverage() {
        let chips = Set(Self.expected.values.compactMap(\.chip))
        for chip in ["esp32", "esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c6", "esp32h2", "esp32p4", "esp8266"] {
            #expect(chips.contains(chip), "no esptool fixture for \(chip)")
        }
        #expect(Self.names.count >= 60)
    }

    @Test("agrees with esptool image-info", arguments: names)
    func agrees(name: String) throws {
        let esptool = try #require(Self.expected[name])
        let report = ImageInspector.inspect(try Fixtures.bytes("esp/\(name)"))
        try Self.compare(name: name, report: report, esptool: esptool)
    }

    /// The comparison rules, shared with the live cross-check.
    static func compare(name: String, report: ImageReport, esptool: EsptoolView) throws {
        let esptoolValid = esptool.valid ?? false
        if esptool.chip == nil {
            // esptool refuses it as an image at all (the raw ESP8266 irom0 file): to us it is raw data.
            #expect(report.format == .raw, "\(name)")
            return
        }
        #expect(report.chip == esptool.chip, "\(name): chip")
        if name.contains(".badcrc") {
            // esptool image-info does not check the v2 CRC-32; the v2 boot loader does, and so do we.
            #expect(esptoolValid)
            #expect(!report.valid)
            #expect(report.problems.contains { $0.contains("CRC-32 mismatch") }, "\(name): \(report.problems)")
            return
        }
        #expect(report.valid == esptoolValid, "\(name): valid (ours \(report.problems))")
        if !esptoolValid { #expect(!report.problems.isEmpty, "\(name): invalid needs a reason") }
        if let version = esptool.version { #expect(report.version == version, "\(name): version") }
        if let project = esptool.project { #expect(report.project == project, "\(name): project") }
        if let secure = esptool.secureVersion { #expect(report.secureVersion == UInt32(secure), "\(name): secure version") }
        if let idf = esptool.idfVersion { #expect(report.idfVersion == idf, "\(name): IDF version") }
        if let elf = esptool.elfSHA256 { #expect(report.elfSHA256 == elf, "\(name): ELF SHA-256") }
        if let segments = esptool.segments { #expect(report.details["segments"] == String(segments), "\(name): segments") }
        if let stored = esptool.checksumStored, let computed = esptool.checksumComputed, stored != computed {
            #expect(
                report.problems.contains("ESP32 image checksum mismatch: stored \(hex(stored)), computed \(hex(computed))")
                    || report.problems.contains("ESP8266 image checksum mismatch: stored \(hex(stored)), computed \(hex(computed))"),
                "\(name): \(report.problems)")
        }
    }

    @Test("tampered twins are rejected with a reason naming what failed")
    func tamperedReasons() throws {
        let badsum = ImageInspector.inspect(try Fixtures.bytes("esp/esp32.badsum-rehash.bin"))
        #expect(badsum.problems == ["ESP32 image checksum mismatch: stored 0xb0, computed 0xb1"])
        let badhash = ImageInspector.inspect(try Fixtures.bytes("esp/esp32.badhash.bin"))
        #expect(badhash.problems.count == 1)
        #expect(badhash.problems[0].hasPrefix("ESP32 image appended SHA-256 mismatch: stored "))
        let trunc = ImageInspector.inspect(try Fixtures.bytes("esp/esp32.trunc.bin"))
        #expect(trunc.problems == ["ESP32 image truncated: segment 0 (load address 0x3f400020) needs 352 bytes at offset 0x20, 176 remain"])
    }

    /// Runs the installed esptool on every fixture now (not the recorded table), so a newer
    /// esptool that disagrees fails the build. `make test` installs esptool.
    @Test("live: agrees with the installed esptool")
    func live() throws {
        let files = Self.names.map { Fixtures.url("esp/\($0)").path }
        guard let live = try esptoolView(files) else {
            Issue.record("esptool is not installed (run `make deps`): the live cross-check cannot run")
            return
        }
        #expect(live.count == files.count)
        for (path, esptool) in live {
            let name = URL(fileURLWithPath: path).lastPathComponent
            let report = ImageInspector.inspect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
            try Self.compare(name: name, report: report, esptool: esptool)
        }
    }
}

/// What esptool image-info said about one file (as generate.py / esptool_view.py record it).
struct EsptoolView: Decodable, Sendable {
    var chip: String?
    var valid: Bool?
    var version: String?
    var project: String?
    var secureVersion: Int?
    var idfVersion: String?
    var elfSHA256: String?
    var segments: Int?
    var checksumStored: Int?
    var checksumComputed: Int?
    var esptoolError: String?
}

/// Images from ``ESP32ImageBuilder`` (what otamesh-devicesim emits) must be accepted by esptool.
@Suite("image builder")
struct ImageBuilderTests {
    static let chips = ["esp32", "esp32s2", "esp32s3", "esp32c2", "esp32c3", "esp32c6", "esp32h2", "esp32p4"]

    @Test("built images parse back with every field, for every chip", arguments: chips)
    func roundTrip(chip: String) throws {
        var builder = ESP32ImageBuilder(chip: try #require(ESPChip.named(chip)), version: "3.1.0-dev.4", projectName: "sim-\(chip)")
        builder.secureVersion = 2
        builder.body = Array(repeating: 0x5A, count: 1_001)
        let report = ImageInspector.inspect(builder.build())
        #expect(report.valid, "\(report.problems)")
        #expect(report.chip == chip && report.version == "3.1.0-dev.4" && report.project == "sim-\(chip)")
        #expect(report.secureVersion == 2)
        builder.hashAppended = false
        #expect(ImageInspector.inspect(builder.build()).valid)
    }

    @Test("live: esptool image-info accepts built images")
    func esptoolAccepts() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("otamesh-builder-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var paths: [String] = []
        for chip in Self.chips {
            var builder = ESP32ImageBuilder(chip: try #require(ESPChip.named(chip)), version: "1.0.\(paths.count)", projectName: "sim")
            builder.body = Array(repeating: UInt8(paths.count), count: 777)
            let path = dir.appendingPathComponent("\(chip).bin").path
            try Data(builder.build()).write(to: URL(fileURLWithPath: path))
            paths.append(path)
        }
        let views = try #require(try esptoolView(paths), "esptool is not installed (run `make deps`)")
        for (index, path) in paths.enumerated() {
            let view = try #require(views[path])
            #expect(view.valid == true, "\(path): \(view.esptoolError ?? "")")
            #expect(view.chip == Self.chips[index])
            #expect(view.version == "1.0.\(index)")
        }
    }
}

/// Runs Tests/Fixtures/esp/esptool_view.py (esptool image-info) on files; nil when esptool is missing.
func esptoolView(_ paths: [String]) throws -> [String: EsptoolView]? {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", Fixtures.url("esp/esptool_view.py").path] + paths
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    if process.terminationStatus == 2 { return nil }
    return try JSONDecoder().decode([String: EsptoolView].self, from: data)
}
